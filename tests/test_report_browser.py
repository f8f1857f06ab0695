"""The review report in a real browser: Debian's chromium, headless, driven by playwright.

Skipped where playwright or chromium is missing (``.ci/run`` installs chromium with apt, and the
test extra installs playwright). Pages are opened from disk (file://), as searchers open them.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sspnet_cli.imagery.sources import open_source
from sspnet_cli.outputs.report import write_report
from sspnet_cli.types import Detections, ImageResult
from test_report_page import ODD_NAME, geotiff, scene_results, write_jpeg

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run",
]


def _chromium() -> str | None:
    for candidate in (os.environ.get("SSPNET_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Tab:
    """A page in a fresh browser context that records errors and every request it makes."""

    def __init__(self, browser, index: Path) -> None:
        self.context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 800})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"requestfailed {r.url}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(index.resolve().as_uri())
        self.settle()

    def settle(self) -> None:
        """Wait for the lazy images too: they start after "load", and a reload or close while
        they are in flight aborts them (reported as failed requests)."""
        self.page.wait_for_load_state("load")
        self.page.wait_for_load_state("networkidle")

    def current(self) -> str | None:
        return self.page.evaluate("document.querySelector('li.det.current')?.id ?? null")

    def decision(self, entry_id: str) -> str:
        return self.page.get_attribute(f"#{entry_id}", "data-decision")

    def press(self, *keys: str) -> None:
        for key in keys:
            self.page.keyboard.press(key)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_tab(browser):
    tabs: list[Tab] = []

    def opener(index: Path) -> Tab:
        tabs.append(Tab(browser, index))
        return tabs[-1]

    yield opener
    for tab in tabs:
        tab.close()


@pytest.fixture
def report(tmp_path) -> Path:
    write_report(tmp_path / "rep", scene_results(tmp_path / "frames"), {"weights": "m.pt"}, report_thr=0.3)
    return tmp_path / "rep" / "index.html"


def test_the_page_loads_offline_without_errors(report, open_tab):
    tab = open_tab(report)
    tab.page.wait_for_timeout(300)
    assert tab.errors == []
    assert tab.requests and all(url.startswith("file://") for url in tab.requests), tab.requests
    assert tab.page.locator("[data-score]").count() == 6
    assert tab.page.text_content("#counts") == "0 persons, 0 not, 6 undecided of 6"
    # the stylesheet applied (a grid), the script ran (counts above)
    assert tab.page.evaluate("getComputedStyle(document.getElementById('detections')).display") == "grid"


def test_keys_move_confirm_and_reject(report, open_tab):
    tab = open_tab(report)
    tab.press("j")
    assert tab.current() == "d1"
    tab.press("j", "j")
    assert tab.current() == "d3"
    tab.press("k")
    assert tab.current() == "d2"
    tab.press("c")
    assert tab.decision("d2") == "confirmed"
    tab.press("j", "x")
    assert tab.decision("d3") == "rejected"
    tab.press("x")  # again: back to undecided
    assert tab.decision("d3") == "undecided"
    tab.press("x", "k", "k", "k")  # k stops at the first entry
    assert tab.current() == "d1"
    tab.press("c", "u")
    assert tab.decision("d1") == "undecided"
    assert tab.page.text_content("#counts") == "1 person, 1 not, 4 undecided of 6"
    tab.page.click("#d5 button[data-set='rejected']")
    assert tab.decision("d5") == "rejected" and tab.current() == "d5"
    assert tab.errors == []


def test_decisions_survive_a_reload(report, open_tab):
    tab = open_tab(report)
    tab.press("j", "c", "j", "j", "x")
    tab.page.reload()
    tab.settle()
    assert [tab.decision(f"d{i}") for i in (1, 2, 3)] == ["confirmed", "undecided", "rejected"]
    assert tab.errors == []


def test_the_csv_export_holds_the_decisions(report, open_tab, tmp_path):
    tab = open_tab(report)
    tab.press("j", "c", "j", "x")
    with tab.page.expect_download() as info:
        tab.page.click("#export")
    download = info.value
    assert download.suggested_filename == "sspnet-decisions.csv"
    path = tmp_path / "decisions.csv"
    download.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert list(rows[0]) == ["image", "x1", "y1", "x2", "y2", "lon", "lat", "score", "decision"]
    assert [r["decision"] for r in rows] == ["confirmed", "rejected"] + ["undecided"] * 4
    assert rows[0]["image"].endswith(ODD_NAME) and rows[0]["score"] == "0.9500"
    assert [rows[0][k] for k in ("x1", "y1", "x2", "y2")] == ["10.00", "10.00", "20.00", "30.00"]
    assert tab.errors == []


def test_the_filter_shows_one_kind_and_keys_follow_it(report, open_tab):
    tab = open_tab(report)
    tab.press("j", "c", "j", "j", "c")  # d1 and d3 are persons
    tab.page.select_option("#filter", "confirmed")
    assert tab.page.locator("li.det:visible").count() == 2
    tab.press("k", "j")
    assert tab.current() == "d3"
    tab.press("k")
    assert tab.current() == "d1"
    assert tab.errors == []


def test_crops_load_lazily(tmp_path, open_tab):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 600, (400, 2))
    boxes = np.concatenate([xy, xy + 12], axis=1)
    frame = write_jpeg(tmp_path / "big.jpg", 640, 640)
    det = Detections(torch.tensor(boxes, dtype=torch.float32), torch.tensor(rng.uniform(0.3, 1, 400), dtype=torch.float32),
                     torch.ones(400, dtype=torch.int64))
    write_report(tmp_path / "rep", [ImageResult(str(frame), 640, 640, det)])
    tab = open_tab(tmp_path / "rep" / "index.html")
    assert wait_until(tab, lambda: any("/crops/" in url for url in tab.requests))
    tab.page.wait_for_timeout(300)
    crops = [url for url in tab.requests if "/crops/" in url]
    assert 0 < len(crops) < 200, len(crops)
    tab.press("End")
    # a busy machine can take seconds to scroll and fetch: poll instead of one fixed wait
    assert wait_until(tab, lambda: any(url.endswith("/crops/000400.jpg") for url in tab.requests))
    assert tab.errors == []


def wait_until(tab, condition, seconds: float = 15.0) -> bool:
    """Poll ``condition`` while the page runs, for up to ``seconds``."""
    for _ in range(int(seconds / 0.1)):
        if condition():
            return True
        tab.page.wait_for_timeout(100)
    return condition()


def test_an_empty_report_loads_without_errors(tmp_path, open_tab):
    results = [ImageResult(r.image, r.width, r.height, Detections.empty()) for r in scene_results(tmp_path / "frames")]
    write_report(tmp_path / "rep", results)
    tab = open_tab(tmp_path / "rep" / "index.html")
    tab.press("j", "c")
    assert tab.page.locator("[data-score]").count() == 0
    assert "nothing to review" in tab.page.text_content("#review")
    assert tab.errors == []


def test_the_map_links_dots_to_entries(tmp_path, open_tab):
    path = geotiff(tmp_path / "ortho.tif")
    with open_source(path) as src:
        det = Detections(torch.tensor([[10.0, 20, 30, 40], [150, 50, 160, 70]]), torch.tensor([0.9, 0.6]), torch.ones(2, dtype=torch.int64))
        result = ImageResult(str(path), src.width, src.height, det, src.georef)
    write_report(tmp_path / "rep", [result])
    tab = open_tab(tmp_path / "rep" / "index.html")
    assert tab.page.locator("svg.map circle").count() == 2
    tab.page.locator("svg.map a[href='#d2']").click()
    assert tab.page.evaluate("location.hash") == "#d2"
    assert tab.errors == []
