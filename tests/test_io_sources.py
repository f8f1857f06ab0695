"""Image sources: decoding, windows past the frame, bands, stretch, nodata, bad files."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from PIL import Image
from pyproj import CRS
from rasterio.enums import ColorInterp
from rasterio.transform import Affine
import cv2

from sspnet_cli.errors import InputError, SSPNetError
from sspnet_cli.imagery.sources import DecodedImageSource, RasterSource, Stretch, open_source
from sspnet_cli.types import Window

pytestmark = [
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
]


def pattern(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A random RGB image with no zero pixels (so padding and nodata stand out)."""
    return np.random.default_rng(seed).integers(1, 256, size=(h, w, 3), dtype=np.uint8)


def write_png(path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb)
    assert ok
    path.write_bytes(buf.tobytes())


def write_tif(path, data: np.ndarray, crs=None, transform=None, nodata=None, colorinterp=None, mask=None):
    """``data`` is (bands, H, W)."""
    count, h, w = data.shape
    profile = dict(driver="GTiff", width=w, height=h, count=count, dtype=data.dtype)
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        if colorinterp is not None:
            ds.colorinterp = colorinterp
        if mask is not None:
            ds.write_mask(mask)
    return path


# -- JPEG / PNG ---------------------------------------------------------------------------


def test_png_is_rgb_and_windows_inside_are_exact(tmp_path):
    img = pattern(60, 100)
    path = tmp_path / "frame.png"
    write_png(path, img)
    with open_source(path) as src:
        assert isinstance(src, DecodedImageSource)
        assert (src.width, src.height, src.georef, src.nodata, src.stretch) == (100, 60, None, None, None)
        rgb, valid = src.read(Window(10, 5, 30, 20))
        assert valid is None
        assert rgb.dtype == np.uint8 and rgb.flags.c_contiguous and rgb.shape == (20, 30, 3)
        np.testing.assert_array_equal(rgb, img[5:25, 10:40])
        rgb[:] = 0  # the caller owns its copy
        np.testing.assert_array_equal(src.read(Window(10, 5, 30, 20))[0], img[5:25, 10:40])


def test_window_past_a_small_frame_is_padded_not_stretched(tmp_path):
    img = pattern(60, 100)
    path = tmp_path / "small.png"
    write_png(path, img)
    with open_source(path) as src:
        rgb, valid = src.read(Window(-10, -5, 640, 512))
    assert rgb.shape == (512, 640, 3) and valid.shape == (512, 640)
    np.testing.assert_array_equal(rgb[5:65, 10:110], img)
    assert valid[5:65, 10:110].all() and valid.sum() == 60 * 100
    assert not rgb[~valid].any()


def test_window_fully_outside_is_all_invalid(tmp_path):
    path = tmp_path / "small.png"
    write_png(path, pattern(20, 20))
    with open_source(path) as src:
        rgb, valid = src.read(Window(100, 100, 8, 4))
    assert rgb.shape == (4, 8, 3) and not rgb.any() and not valid.any()


def test_read_rows_and_overview(tmp_path):
    img = pattern(300, 500)
    path = tmp_path / "rows.png"
    write_png(path, img)
    with open_source(path) as src:
        rgb, valid = src.read_rows(250, 100)
        assert rgb.shape == (100, 500, 3)
        np.testing.assert_array_equal(rgb[:50], img[250:])
        assert valid[:50].all() and not valid[50:].any()
        small, _ = src.read_overview(100)
        assert small.shape == (60, 100, 3)
        full, _ = src.read_overview(10_000)  # never up-scaled
        np.testing.assert_array_equal(full, img)


def test_png_alpha_marks_invalid_pixels(tmp_path):
    bgra = np.dstack([pattern(40, 50)[..., ::-1], np.full((40, 50), 255, np.uint8)])
    bgra[:10, :, 3] = 0
    path = tmp_path / "alpha.png"
    ok, buf = cv2.imencode(".png", bgra)
    path.write_bytes(buf.tobytes())
    with open_source(path) as src:
        assert src.nodata is not None and src.nodata.mask == "alpha"
        rgb, valid = src.read(Window(0, 0, 50, 40))
    assert not valid[:10].any() and valid[10:].all()
    assert not rgb[:10].any()
    np.testing.assert_array_equal(rgb[10:], bgra[10:, :, 2::-1])


def test_sixteen_bit_grey_png_is_stretched(tmp_path):
    ramp = np.tile(np.linspace(1000, 60000, 200).astype(np.uint16), (50, 1))
    path = tmp_path / "grey16.png"
    ok, buf = cv2.imencode(".png", ramp)
    path.write_bytes(buf.tobytes())
    with open_source(path) as src:
        rgb, _ = src.read(Window(0, 0, 200, 50))
    assert src.stretch is not None
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255
    assert (np.diff(rgb[0, :, 0].astype(int)) >= 0).all()
    assert 100 < rgb[0, 100, 0] < 155


def test_non_ascii_names_and_spaces(tmp_path):
    img = pattern(30, 40)
    folder = tmp_path / "vol 2 — équipe"
    folder.mkdir()
    path = folder / "DJI 0001 Ørsted, 森.png"
    write_png(path, img)
    with open_source(str(path)) as src:
        np.testing.assert_array_equal(src.read(Window(0, 0, 40, 30))[0], img)


def gps_jpeg(path, orientation: int = 1) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestMake"
    exif.get_ifd(0x8825).update({1: "S", 2: (33.0, 51.0, 54.0), 3: "W", 4: (70.0, 30.0, 36.0), 5: b"\x00", 6: 120.5})
    Image.fromarray(pattern(30, 40)).save(path, exif=exif, quality=95)


def test_jpeg_exif_gps_becomes_camera(tmp_path):
    path = tmp_path / "gps.jpg"
    gps_jpeg(path)
    with open_source(path) as src:
        cam = src.camera
    assert cam["lat"] == pytest.approx(-(33 + 51 / 60 + 54 / 3600))
    assert cam["lon"] == pytest.approx(-(70 + 30 / 60 + 36 / 3600))
    assert cam["altitude"] == pytest.approx(120.5)
    assert cam["make"] == "TestMake"


def test_exif_orientation_is_not_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    gps_jpeg(path, orientation=6)  # "rotate 90 CW to view": would swap width and height
    with open_source(path) as src:
        assert (src.width, src.height) == (40, 30)
        assert src.orientation == 6
        assert any("orientation" in w for w in src.warnings)


def test_plain_png_has_no_camera(tmp_path):
    path = tmp_path / "plain.png"
    write_png(path, pattern(10, 10))
    with open_source(path) as src:
        assert src.camera is None and src.orientation == 1


def test_world_file_georeferences_a_png(tmp_path):
    path = tmp_path / "ortho.png"
    write_png(path, pattern(10, 20))
    (tmp_path / "ortho.pgw").write_text("0.5\n0\n0\n-0.5\n500000.25\n5000000.25\n")
    (tmp_path / "ortho.png.aux.xml").write_text(
        f"<PAMDataset><SRS>{CRS.from_epsg(32633).to_wkt()}</SRS></PAMDataset>"
    )
    with open_source(path) as src:
        assert src.georef is not None
        assert src.georef.transform == pytest.approx((0.5, 0.0, 500000.0, 0.0, -0.5, 5000000.0))
        assert CRS.from_wkt(src.georef.crs_wkt).to_epsg() == 32633


# -- bad files ----------------------------------------------------------------------------


def good_jpeg_bytes() -> bytes:
    ok, buf = cv2.imencode(".jpg", pattern(64, 64))
    return buf.tobytes()


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("empty.jpg", b"", "empty file"),
        ("text.jpg", b"hello, this is not a picture\n1 2 3\n", "not an image"),
        ("random.png", bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), "not an image"),
        ("random.tif", b"II*\x00" + bytes(np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8)), "not an image"),
        ("half.jpg", good_jpeg_bytes()[: len(good_jpeg_bytes()) // 2], "truncated JPEG"),
        ("no_eoi.jpg", good_jpeg_bytes()[:-2], "truncated JPEG"),
        ("header_only.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", "truncated JPEG"),
        ("garbage_after_magic.jpg", b"\xff\xd8\xff" + b"\x00" * 100, "not an image or damaged"),
        ("garbage_after_magic.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not an image"),
    ],
)
def test_bad_files_give_one_line_input_error(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        open_source(path)
    message = str(info.value)
    assert expected in message and "\n" not in message and str(path) in message
    assert info.value.path == str(path)


@pytest.mark.parametrize(
    "params",
    [[], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 4]],
    ids=["baseline", "progressive", "restart-markers"],
)
def test_complete_jpegs_are_accepted_and_cut_ones_refused(tmp_path, params):
    img = pattern(64, 96)
    ok, buf = cv2.imencode(".jpg", img, params)
    data = buf.tobytes()
    # bytes appended after the image (a phone's motion-photo video) may hold any marker pair
    trailer = b"\x00\x00\x00\x18ftypmp42" + b"\xff\xda\x00\x08junk" * 3
    path = tmp_path / "ok.jpg"
    path.write_bytes(data + trailer)
    with open_source(path) as src:
        assert (src.width, src.height) == (96, 64)
    for cut in (len(data) - 1, len(data) * 3 // 4):
        path.write_bytes(data[:cut])
        with pytest.raises(InputError, match="truncated JPEG"):
            open_source(path)


def test_truncated_png_is_refused(tmp_path):
    path = tmp_path / "cut.png"
    write_png(path, pattern(100, 100))
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(InputError, match="not an image or damaged"):
        open_source(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_source(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="folder"):
        open_source(tmp_path)


def test_bands_option_is_validated(tmp_path):
    path = tmp_path / "x.png"
    write_png(path, pattern(10, 10))
    with pytest.raises(SSPNetError, match="bands"):
        open_source(path, bands=(1, 2))
    with pytest.raises(SSPNetError, match="bands"):
        open_source(path, bands=(0, 1, 2))
    with pytest.raises(InputError, match="band 4"):
        open_source(path, bands=(4, 2, 1))
    with open_source(path, bands=(3, 2, 1)) as src:
        rgb, _ = src.read(Window(0, 0, 10, 10))
    np.testing.assert_array_equal(rgb, pattern(10, 10)[..., ::-1])


# -- GDAL rasters -------------------------------------------------------------------------

UTM = "EPSG:32633"
TRANSFORM = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 5000000.0)


def test_geotiff_georef_and_padded_windows(tmp_path):
    data = pattern(50, 80).transpose(2, 0, 1).copy()
    path = write_tif(tmp_path / "geo.tif", data, crs=UTM, transform=TRANSFORM)
    with open_source(path) as src:
        assert isinstance(src, RasterSource)
        assert (src.width, src.height, src.stretch, src.nodata) == (80, 50, None, None)
        assert src.georef.transform == (0.5, 0.0, 500000.0, 0.0, -0.5, 5000000.0)
        assert CRS.from_wkt(src.georef.crs_wkt).to_epsg() == 32633
        rgb, valid = src.read(Window(60, 40, 64, 32))
    assert rgb.shape == (32, 64, 3)
    np.testing.assert_array_equal(rgb[:10, :20], data[:, 40:, 60:].transpose(1, 2, 0))
    assert valid[:10, :20].all() and valid.sum() == 200 and not rgb[~valid].any()


def test_raster_reads_only_the_window(tmp_path, monkeypatch):
    path = write_tif(tmp_path / "big.tif", np.ones((3, 400, 600), np.uint8), crs=UTM, transform=TRANSFORM)
    with open_source(path) as src:
        calls = []
        real_read = src._ds.read

        def spy(*args, **kwargs):
            calls.append(kwargs.get("window"))
            return real_read(*args, **kwargs)

        monkeypatch.setattr(src._ds, "read", spy)
        src.read(Window(590, 390, 64, 32))
        src.read_rows(100, 16)
    (w1, w2) = calls
    assert (w1.col_off, w1.row_off, w1.width, w1.height) == (590, 390, 10, 10)
    assert (w2.col_off, w2.row_off, w2.width, w2.height) == (0, 100, 600, 16)


def test_plain_tiff_without_crs_has_no_georef(tmp_path):
    path = write_tif(tmp_path / "plain.tif", np.ones((3, 10, 10), np.uint8))
    with open_source(path) as src:
        assert src.georef is None and src.warnings == []
    path = write_tif(tmp_path / "nocrs.tif", np.ones((3, 10, 10), np.uint8), crs=None)
    with rasterio.open(path, "r+") as ds:
        ds.transform = TRANSFORM
    with open_source(path) as src:
        assert src.georef is None and "no CRS" in src.warnings[0]


def test_crs_that_cannot_reach_wgs84_falls_back_to_pixels(tmp_path):
    local = CRS.from_wkt('LOCAL_CS["site grid",LOCAL_DATUM["x",0],UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
    path = write_tif(tmp_path / "local.tif", np.ones((3, 10, 10), np.uint8), crs=local, transform=TRANSFORM)
    from sspnet_cli.geo.transform import check_source_georef

    with open_source(path) as src:
        assert src.georef is not None  # imagery reads it; geo decides it cannot be used
        assert check_source_georef(src).georef is None
        assert "WGS84" in src.warnings[0] and "pixels" in src.warnings[0]


def test_drone_tiff_without_georef_gets_exif_camera(tmp_path):
    from PIL import TiffImagePlugin

    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[0x8825] = {1: "N", 2: (45.0, 2.0, 16.77), 3: "W", 4: (94.0, 20.0, 55.53), 6: 422.5}
    path = tmp_path / "DJI_0001.TIF"
    Image.fromarray(pattern(10, 20)).save(path, tiffinfo=info)
    with open_source(path) as src:
        assert isinstance(src, RasterSource) and src.georef is None
        assert src.camera["lat"] == pytest.approx(45.0380, abs=1e-4)
        assert src.camera["lon"] == pytest.approx(-94.3488, abs=1e-4)
        assert src.camera["altitude"] == pytest.approx(422.5)


def test_grey_raster_is_replicated(tmp_path):
    grey = pattern(20, 30)[..., :1].transpose(2, 0, 1).copy()
    path = write_tif(tmp_path / "grey.tif", grey)
    with open_source(path) as src:
        assert src.bands == (1, 1, 1)
        rgb, _ = src.read(Window(0, 0, 30, 20))
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], grey[0])


def test_uint16_single_band_stretch_is_the_same_for_every_window(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.integers(200, 4000, size=(1, 300, 400)).astype(np.uint16)
    path = write_tif(tmp_path / "u16.tif", data, crs=UTM, transform=TRANSFORM)
    with open_source(path) as src:
        lo, hi = np.percentile(data, [2, 98])
        assert src.stretch.lo[0] == pytest.approx(lo, rel=0.02) and src.stretch.hi[0] == pytest.approx(hi, rel=0.02)
        a, _ = src.read(Window(0, 0, 200, 200))
        b, _ = src.read(Window(100, 100, 200, 200))
    np.testing.assert_array_equal(a[100:, 100:], b[:100, :100])
    expected = Stretch(src.stretch.lo, src.stretch.hi).apply(np.repeat(data[0, :200, :200, None], 3, axis=2))
    np.testing.assert_array_equal(a, expected)
    assert a.min() == 0 and a.max() == 255


def test_stretch_of_a_huge_raster_is_measured_on_patches(tmp_path, monkeypatch):
    import sspnet_cli.imagery.sources as sources

    rng = np.random.default_rng(4)
    data = rng.normal(3000, 500, size=(3, 1200, 1600)).astype(np.int16)
    path = write_tif(tmp_path / "big16.tif", data)
    monkeypatch.setattr(sources, "STRETCH_FULL_READ_PIXELS", 1000)  # pretend it is huge
    reads = []
    real_raw = sources.RasterSource._raw
    monkeypatch.setattr(sources.RasterSource, "_raw", lambda self, win, shape, *a: reads.append((win, shape)) or real_raw(self, win, shape, *a))
    with open_source(path) as src:
        stretch = src.stretch
    assert len(reads) == 64 and all(shape is None and win.width == 128 for win, shape in reads)
    for band in range(3):
        lo, hi = np.percentile(data[band], [2, 98])
        assert stretch.lo[band] == pytest.approx(lo, rel=0.02) and stretch.hi[band] == pytest.approx(hi, rel=0.02)


def test_rgba_raster_alpha_is_a_mask(tmp_path):
    rgba = np.concatenate([pattern(20, 30).transpose(2, 0, 1), np.full((1, 20, 30), 255, np.uint8)])
    rgba[3, :, :5] = 0
    interp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    path = write_tif(tmp_path / "rgba.tif", rgba, colorinterp=interp)
    with open_source(path) as src:
        assert src.bands == (1, 2, 3) and src.nodata.mask == "alpha"
        rgb, valid = src.read(Window(0, 0, 30, 20))
    assert not valid[:, :5].any() and valid[:, 5:].all()
    assert not rgb[:, :5].any()
    np.testing.assert_array_equal(rgb[:, 5:], rgba[:3, :, 5:].transpose(1, 2, 0))


def test_band_selection_on_a_multispectral_raster(tmp_path):
    data = np.stack([np.full((10, 10), v, np.uint8) for v in (10, 20, 30, 40, 50)])
    path = write_tif(tmp_path / "ms.tif", data)
    with open_source(path, bands=(4, 3, 2)) as src:
        rgb, _ = src.read(Window(0, 0, 10, 10))
        assert rgb[0, 0].tolist() == [40, 30, 20]
    with open_source(path) as src:
        assert src.read(Window(0, 0, 1, 1))[0][0, 0].tolist() == [10, 20, 30]
    with pytest.raises(InputError, match="has 5 band"):
        open_source(path, bands=(6, 1, 1))


def test_nodata_value_requires_all_bands(tmp_path):
    data = pattern(10, 10).transpose(2, 0, 1).copy()
    data[:, 0, 0] = 0  # all bands nodata: invalid
    data[0, 1, 1] = 0  # one band only: a dark but valid pixel
    path = write_tif(tmp_path / "nd.tif", data, nodata=0)
    with open_source(path) as src:
        assert src.nodata.value == 0.0
        _, valid = src.read(Window(0, 0, 10, 10))
    assert not valid[0, 0] and valid[1, 1] and valid.sum() == 99


def test_float_raster_with_nan_and_nodata(tmp_path):
    data = np.linspace(0.0, 1.0, 3 * 20 * 20, dtype=np.float32).reshape(3, 20, 20)
    data[1, 2, 3] = np.nan  # NaN in any band: invalid
    data[:, 5, 5] = -9999.0
    path = write_tif(tmp_path / "f.tif", data, nodata=-9999.0)
    with open_source(path) as src:
        assert src.nodata.nan and src.nodata.value == -9999.0
        assert src.stretch is not None and src.stretch.lo[0] > -1  # nodata left out of the stats
        rgb, valid = src.read(Window(0, 0, 20, 20))
    assert not valid[2, 3] and not valid[5, 5] and valid.sum() == 398
    assert rgb[2, 3].tolist() == [0, 0, 0]
    path = write_tif(tmp_path / "fnan.tif", data, nodata=float("nan"))
    with open_source(path) as src:
        assert src.nodata.nan and src.nodata.value is None
        _, valid = src.read(Window(0, 0, 20, 20))
    assert not valid[2, 3] and valid[5, 5]


def test_internal_mask_marks_invalid(tmp_path):
    mask = np.full((20, 20), 255, np.uint8)
    mask[10:] = 0
    path = write_tif(tmp_path / "m.tif", pattern(20, 20).transpose(2, 0, 1).copy(), mask=mask)
    with open_source(path) as src:
        assert src.nodata.mask == "mask"
        _, valid = src.read(Window(0, 0, 20, 20))
    assert valid[:10].all() and not valid[10:].any()


def test_palette_raster_is_expanded(tmp_path):
    idx = np.zeros((1, 10, 10), np.uint8)
    idx[0, 5:] = 1
    path = tmp_path / "pal.tif"
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8") as ds:
        ds.write(idx)
        ds.write_colormap(1, {0: (255, 0, 0, 255), 1: (0, 0, 255, 255)})
    with open_source(path) as src:
        rgb, _ = src.read(Window(0, 0, 10, 10))
    assert rgb[0, 0].tolist() == [255, 0, 0] and rgb[9, 9].tolist() == [0, 0, 255]


def test_raster_overview_is_small(tmp_path):
    path = write_tif(tmp_path / "o.tif", pattern(300, 600).transpose(2, 0, 1).copy())
    with open_source(path) as src:
        rgb, _ = src.read_overview(150)
    assert rgb.shape == (75, 150, 3) and rgb.dtype == np.uint8


def test_closed_source_refuses_reads(tmp_path):
    path = write_tif(tmp_path / "c.tif", np.ones((3, 4, 4), np.uint8))
    src = open_source(path)
    src.close()
    src.close()
    with pytest.raises(SSPNetError, match="after close"):
        src.read(Window(0, 0, 2, 2))


# -- real files ---------------------------------------------------------------------------


def test_real_geotiff(shared_dir):
    with open_source(shared_dir / "data" / "geo" / "OSBS_029.tif") as src:
        assert (src.width, src.height) == (400, 400)
        assert CRS.from_wkt(src.georef.crs_wkt).to_epsg() == 32617
        assert src.nodata.value == 255
        rgb, _ = src.read(Window(0, 0, 640, 512))
        assert rgb.shape == (512, 640, 3) and rgb[:400, :400].any() and not rgb[400:].any()


def test_real_drone_jpeg_with_spaces(shared_dir):
    with open_source(shared_dir / "data" / "geo" / "AWPE Pigeon Lake 2020 DJI_0005.JPG") as src:
        assert (src.width, src.height) == (1058, 997)
        assert src.camera["lat"] == pytest.approx(45.0380, abs=1e-4)
        assert src.camera["lon"] == pytest.approx(-94.3488, abs=1e-4)
        assert src.camera["altitude"] == pytest.approx(422.6, abs=0.1)
        assert src.camera["relative_altitude"] == pytest.approx(61.1)
        assert src.georef is None


def test_real_large_png_and_tinyperson_jpegs(shared_dir):
    with open_source(shared_dir / "data" / "geo" / "2019_YELL_2_528000_4978000_image_crop2.png") as src:
        assert (src.width, src.height) == (2299, 2472)
    jpgs = sorted((shared_dir / "data" / "tinyperson-rf" / "test" / "labeled_images").glob("*.jpg"))[:10]
    if not jpgs:
        pytest.skip("tinyperson-rf test images not present (SSPNET_SHARED_DIR points at the real-data folder)")
    for path in jpgs:
        with open_source(path) as src:
            rgb, _ = src.read(Window(0, 0, 640, 512))
            assert rgb.shape == (512, 640, 3)
