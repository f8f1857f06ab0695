"""The page's static files (``report.css``, ``report.js``), shipped as package data."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from sspnet_cli.outputs.report.page import CSS_PATH, JS_PATH

_PACKAGE = "sspnet_cli.outputs.report"
STATIC = {CSS_PATH: "static/report.css", JS_PATH: "static/report.js"}


def asset_text(name: str) -> str:
    """The text of a static file, by its path inside the report (``assets/report.js``)."""
    return resources.files(_PACKAGE).joinpath(STATIC[name]).read_text(encoding="utf-8")


def write_assets(folder: Path) -> list[Path]:
    """Copy the static files into ``folder`` at their paths inside the report; returns them."""
    written = []
    for name in STATIC:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(asset_text(name), encoding="utf-8", newline="\n")
        written.append(target)
    return written
