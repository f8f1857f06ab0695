"""The review report as files: HTML structure, links, counts, crops, overview, heatmaps, folder."""
from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

from sspnet_cli.errors import SSPNetError
from sspnet_cli.imagery.sources import open_source
from sspnet_cli.outputs.report import check_report_dir, write_report
from sspnet_cli.outputs.report.crops import CROP_PX, crop_window
from sspnet_cli.outputs.report.folder import MARKER
from sspnet_cli.types import Detections, ImageResult

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
ODD_NAME = "vol 2/Héé ß 東京 #1 50%.jpg"


class StrictHTML(HTMLParser):
    """Collects tags, attributes and text; fails on unbalanced or mis-nested elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.problems: list[str] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):  # <line ... /> inside SVG
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(index: Path) -> StrictHTML:
    page = StrictHTML()
    page.feed(index.read_text(encoding="utf-8"))
    page.close()
    assert page.doctype and not page.problems and not page.stack, (page.problems, page.stack)
    return page


def check_report(folder: Path) -> StrictHTML:
    """The checks every report must pass; returns the parsed page."""
    page = parse(folder / "index.html")
    ids = {attrs["id"] for _, attrs in page.tags if "id" in attrs}
    root = folder.resolve()
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            if name not in attrs:
                continue
            url = attrs[name]
            if url.startswith("#"):
                assert url[1:] in ids, f"{tag} {name}={url!r} points to no element"
                continue
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc and not url.startswith("/"), url
            target = (folder / unquote(parts.path)).resolve()
            assert target.is_relative_to(root) and target.is_file(), f"{tag} {name}={url!r}"
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            assert b"http://" not in data and b"https://" not in data, path
    return page


def entries(page: StrictHTML) -> list[dict[str, str]]:
    return [attrs for _, attrs in page.tags if "data-score" in attrs]


def text_of(page: StrictHTML) -> str:
    return re.sub(r"\s+", " ", " ".join(page.text))


def dets(boxes, scores) -> Detections:
    n = len(scores)
    return Detections(torch.tensor(boxes, dtype=torch.float32).reshape(n, 4), torch.tensor(scores, dtype=torch.float32),
                      torch.ones(n, dtype=torch.int64))


def write_jpeg(path: Path, width: int = 320, height: int = 240, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(40, 200, (height, width, 3), dtype=np.uint8)
    ok, data = cv2.imencode(path.suffix, rgb)
    path.write_bytes(data.tobytes())
    return path


def scene_results(folder: Path) -> list[ImageResult]:
    """Three plain frames (one with an odd name, one with nothing found): 7 detections."""
    a = write_jpeg(folder / ODD_NAME, seed=1)
    b = write_jpeg(folder / "b.png", 200, 150, seed=2)
    c = write_jpeg(folder / "c.jpg", 100, 80, seed=3)
    return [
        ImageResult(str(a), 320, 240, dets(
            [[10, 10, 20, 30], [100, 100, 108, 116], [300, 220, 320, 240], [50, 60, 70, 100], [0, 0, 4, 4]],
            [0.95, 0.42, 0.77, 0.31, 0.12])),
        ImageResult(str(b), 200, 150, dets([[150, 20, 162, 44], [20, 20, 30, 30]], [0.88, 0.55])),
        ImageResult(str(c), 100, 80, Detections.empty()),
    ]


def geotiff(path: Path) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=200, height=100, count=3, dtype="uint8", crs="EPSG:32633",
                       transform=Affine(0.5, 0, 500000, 0, -0.5, 5000000)) as ds:
        ds.write(np.random.default_rng(4).integers(0, 255, (3, 100, 200), dtype=np.uint8))
    return path


# -- the list ----------------------------------------------------------------------------


def test_lists_detections_above_the_threshold_best_first(tmp_path):
    summary = write_report(tmp_path / "rep", scene_results(tmp_path), {"weights": "m.pt", "seconds": 12.5}, report_thr=0.4)
    page = check_report(tmp_path / "rep")
    listed = entries(page)
    assert [float(e["data-score"]) for e in listed] == [0.95, 0.88, 0.77, 0.55, 0.42]
    assert (summary.listed, summary.above, summary.left_out, summary.images) == (5, 5, 0, 3)
    assert [e["id"] for e in listed] == [f"d{i}" for i in range(1, 6)]
    assert listed[1]["data-box"] == "150.00,20.00,162.00,44.00" and listed[1]["data-image"].endswith("b.png")
    text = text_of(page)
    assert "m.pt" in text and "12.5 s" in text and "7 in all" in text
    for _, attrs in page.tags:
        if attrs.get("src", "").startswith("crops/"):
            crop = cv2.imread(str(tmp_path / "rep" / unquote(attrs["src"])))
            assert crop.shape == (CROP_PX, CROP_PX, 3) and attrs["loading"] == "lazy"
    assert len(list((tmp_path / "rep" / "crops").iterdir())) == 5
    assert summary.warnings == []


def test_report_max_caps_the_page_and_says_how_many_were_left_out(tmp_path):
    summary = write_report(tmp_path / "rep", scene_results(tmp_path), report_thr=0.3, report_max=2)
    page = check_report(tmp_path / "rep")
    assert [float(e["data-score"]) for e in entries(page)] == [0.95, 0.88]
    assert (summary.above, summary.left_out) == (6, 4)
    assert "4 more scoring at least 0.30 are left out" in text_of(page)


def test_non_ascii_names_work(tmp_path):
    write_report(tmp_path / "rep", scene_results(tmp_path))
    page = check_report(tmp_path / "rep")
    first = entries(page)[0]
    assert first["data-image"].endswith(ODD_NAME)
    assert "Héé ß 東京 #1 50%.jpg" in text_of(page)
    overlay = [attrs["href"] for _, attrs in page.tags if attrs.get("class") == "crop"][0]
    assert overlay.isascii() and (tmp_path / "rep" / unquote(overlay)).is_file()


@pytest.mark.parametrize("threshold", [0.5, 0.99])
def test_nothing_to_review_still_gives_a_valid_report(tmp_path, threshold):
    results = scene_results(tmp_path)
    if threshold == 0.5:
        results = [ImageResult(r.image, r.width, r.height, Detections.empty()) for r in results]
    summary = write_report(tmp_path / "rep", results, report_thr=threshold)
    page = check_report(tmp_path / "rep")
    assert entries(page) == [] and summary.listed == 0
    assert "nothing to review" in text_of(page)
    assert not (tmp_path / "rep" / "crops").exists()


def test_no_results_at_all(tmp_path):
    write_report(tmp_path / "rep", [])
    assert "No detections: nothing to review" in text_of(check_report(tmp_path / "rep"))


def test_crop_window_gives_context_around_the_box():
    assert crop_window((100, 100, 110, 120)) == (57, 62, 96, 96)  # at least 96 px
    x, y, w, h = crop_window((0, 0, 50, 30))  # 4x the longer side
    assert (w, h) == (200, 200) and (x + w / 2, y + h / 2) == (25, 15)


def test_crops_show_the_box_with_context(tmp_path):
    rgb = np.zeros((200, 200, 3), np.uint8)
    rgb[90:110, 95:105] = 255  # a white 10 x 20 "person"
    cv2.imwrite(str(tmp_path / "w.png"), rgb)
    write_report(tmp_path / "rep", [ImageResult(str(tmp_path / "w.png"), 200, 200, dets([[95, 90, 105, 110]], [0.9]))])
    crop = cv2.cvtColor(cv2.imread(str(tmp_path / "rep" / "crops" / "000001.jpg")), cv2.COLOR_BGR2RGB).astype(int)
    c = CROP_PX // 2
    assert crop[c, c].min() > 200  # the person, not hidden by the box outline
    magenta = (crop[..., 0] > 150) & (crop[..., 1] < 100) & (crop[..., 2] > 150)
    rows, cols = np.nonzero(magenta)
    assert rows.min() < c - 20 < c + 20 < rows.max() and cols.min() < c - 10 < c + 10 < cols.max()
    assert crop[5, 5].max() < 60  # context around it


# -- overview --------------------------------------------------------------------------


def test_plain_frames_get_a_grid_of_thumbnails_with_counts(tmp_path):
    write_report(tmp_path / "rep", scene_results(tmp_path))
    page = check_report(tmp_path / "rep")
    frames = [attrs for tag, attrs in page.tags if tag == "li" and attrs.get("class") == "frame"]
    assert [f["data-count"] for f in frames] == ["5", "2", "0"]
    thumbs = [attrs["src"] for tag, attrs in page.tags if tag == "img" and attrs.get("src", "").startswith("thumbs/")]
    assert len(thumbs) == 3
    assert not any(tag == "svg" for tag, _ in page.tags)


def test_georeferenced_frames_get_a_map_of_footprints_and_positions(tmp_path):
    path = geotiff(tmp_path / "ortho.tif")
    with open_source(path) as src:
        geo = ImageResult(str(path), src.width, src.height, dets([[10, 20, 30, 40], [150, 50, 160, 70]], [0.9, 0.6]), src.georef)
    results = [geo, scene_results(tmp_path)[1]]
    write_report(tmp_path / "rep", results)
    page = check_report(tmp_path / "rep")
    tags = [tag for tag, _ in page.tags]
    assert tags.count("svg") == 1 and tags.count("polygon") == 1
    circles = [attrs for tag, attrs in page.tags if tag == "circle"]
    assert len(circles) == 2
    listed = entries(page)
    assert listed[0]["data-lon"] and listed[0]["data-lat"]
    assert float(listed[0]["data-lat"]) == pytest.approx(45.1, abs=0.1)  # UTM 33N, 5,000 km north
    assert [e["data-image"].endswith("b.png") for e in listed] == [False, True, False, True]
    assert listed[1]["data-lon"] == listed[1]["data-lat"] == ""  # b.png has no position
    text = text_of(page)
    assert "from the raster" in text and "Frames without a map position" in text
    frames = [attrs for tag, attrs in page.tags if tag == "li" and attrs.get("class") == "frame"]
    assert len(frames) == 1  # only b.png in the grid


# -- heatmaps ----------------------------------------------------------------------------


def test_heatmaps_are_written_and_linked(tmp_path):
    results = scene_results(tmp_path)
    rng = np.random.default_rng(0)
    results[0].attention = {f"P{l}": rng.random((240 // 2**l, 320 // 2**l), dtype=np.float32) for l in range(2, 6)}
    summary = write_report(tmp_path / "rep", results, heatmaps=True)
    page = check_report(tmp_path / "rep")
    links = [attrs["href"] for _, attrs in page.tags if attrs.get("href", "").startswith("heatmaps/")]
    assert sorted({Path(link).stem.rsplit("_", 1)[1] for link in links}) == ["P2", "P3", "P4", "P5", "combined"]
    for link in set(links):
        assert cv2.imread(str(tmp_path / "rep" / unquote(link))).shape == (240, 320, 3)
    assert summary.heatmaps == 1


def test_heatmaps_asked_of_a_model_without_attention_says_so(tmp_path):
    write_report(tmp_path / "rep", scene_results(tmp_path), heatmaps=True)
    page = check_report(tmp_path / "rep")
    assert "an FPN baseline has none" in text_of(page)
    assert not (tmp_path / "rep" / "heatmaps").exists()


# -- frames that cannot be read, the folder ----------------------------------------------


def test_a_missing_frame_keeps_its_detections_without_pictures(tmp_path):
    results = scene_results(tmp_path)
    os.remove(results[1].image)
    summary = write_report(tmp_path / "rep", results)
    page = check_report(tmp_path / "rep")
    assert len(entries(page)) == 6
    assert len(summary.warnings) == 1 and "b.png" in summary.warnings[0]
    assert text_of(page).count("image not available") == 3  # 2 entries and the thumbnail


def test_the_folder_is_replaced_whole_and_never_left_half_written(tmp_path):
    target = tmp_path / "rep"
    write_report(target, scene_results(tmp_path), report_thr=0.0)
    assert len(list((target / "crops").iterdir())) == 7 and (target / MARKER).is_file()
    write_report(target, scene_results(tmp_path), report_thr=0.9)
    assert len(list((target / "crops").iterdir())) == 1  # no stale crops of the first report
    before = (target / "index.html").read_bytes()

    def broken(result):
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_report(target, scene_results(tmp_path), open_image=broken)
    assert (target / "index.html").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_other_folders_are_not_overwritten(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "keep.jpg").write_bytes(b"x")
    with pytest.raises(SSPNetError, match="not empty"):
        write_report(tmp_path / "photos", scene_results(tmp_path))
    assert (tmp_path / "photos" / "keep.jpg").read_bytes() == b"x"
    (tmp_path / "file").write_text("x")
    with pytest.raises(SSPNetError, match="not a folder"):
        check_report_dir(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    assert check_report_dir(tmp_path / "empty") == tmp_path / "empty"


def test_decisions_are_saved_under_an_id_of_the_frames(tmp_path):
    def report_id(folder):
        page = (folder / "index.html").read_text(encoding="utf-8")
        return re.search(r'"id": "([0-9a-f]+)"', page).group(1)

    results = scene_results(tmp_path)
    write_report(tmp_path / "a", results, report_thr=0.3)
    write_report(tmp_path / "b", results, report_thr=0.8)
    write_report(tmp_path / "c", results[:2])
    assert report_id(tmp_path / "a") == report_id(tmp_path / "b") != report_id(tmp_path / "c")


def test_sites_far_apart_get_a_map_each():
    from sspnet_cli.outputs.report.overview import Footprint, MapPoint, group_sites

    def square(lon, lat, d=0.001):
        return np.array([[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]])

    here = [Footprint(square(-82.0, 29.7), None, "a"), Footprint(square(-82.003, 29.7), None, "b")]
    there = [Footprint(square(-94.3, 45.0), None, "c")]
    points = [MapPoint(-82.0005, 29.7005, 0.9, "#d1", "1"), MapPoint(-94.2995, 45.0005, 0.8, "#d2", "2"),
              MapPoint(10.0, 50.0, 0.5, "#d3", "alone")]
    sites = group_sites(here + there, points)
    assert [([f.label for f in fps], [p.label for p in pts]) for fps, pts in sites] == [
        (["a", "b"], ["1"]), (["c"], ["2"]), ([], ["alone"])]
    # neighbours within the gap chain into one site
    chain = [MapPoint(0.0, 0.03 * k, 0.9, f"#d{k}", str(k)) for k in range(5)]  # 3.3 km steps
    assert len(group_sites([], chain)) == 1
    assert group_sites([], []) == []


def test_a_camera_placed_photo_has_its_ground_footprint_on_the_map():
    from sspnet_cli.geo.camera import apply_camera_model
    from sspnet_cli.outputs.report.overview import raster_footprint
    from sspnet_cli.types import Detections, ImageResult

    camera = {"lon": 7.25, "lat": 46.5, "altitude": 530.0, "relative_altitude": 100.0, "gimbal_yaw": 0.0,
              "gimbal_pitch": -90.0, "gimbal_roll": 0.0, "calibrated_focal_length": 1000.0,
              "calibrated_cx": 320.0, "calibrated_cy": 240.0}
    empty = Detections(torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.int64))
    placed = apply_camera_model(ImageResult("p.jpg", 640, 480, empty, None, camera))
    ring = raster_footprint(placed)
    assert ring.shape == (5, 2) and np.allclose(ring[0], ring[-1])
    # 640 x 480 px at 100 m with f = 1000 px: 64 m x 48 m around the camera, north up
    lon_span = (ring[:, 0].max() - ring[:, 0].min()) * 111_320 * np.cos(np.radians(46.5))
    lat_span = (ring[:, 1].max() - ring[:, 1].min()) * 111_132
    assert lon_span == pytest.approx(64.0, rel=0.01) and lat_span == pytest.approx(48.0, rel=0.01)
    assert raster_footprint(ImageResult("q.jpg", 640, 480, empty)) is None
