"""The review page's HTML: summary, overview, heatmaps and the list of detections to triage.

Everything the page shows is escaped here; every link is a relative path inside the report
folder (percent-encoded). Styles and the triage script are separate files in ``assets/`` (see
:mod:`sspnet_cli.outputs.report.assets`); the page sets a Content-Security-Policy that lets it
load only those and its own images, so nothing can be fetched from a network.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from typing import Any, Optional, Sequence
from urllib.parse import quote

from sspnet_cli.outputs.report.crops import CROP_PX
from sspnet_cli.outputs.report.overview import score_class
from sspnet_cli.outputs.report.selection import Entry, Selection

CSS_PATH = "assets/report.css"
#: the overview's grid of frames starts open up to this many frames (else one click away)
OPEN_GRID_MAX = 24
JS_PATH = "assets/report.js"
# file: is what 'self' means for a page opened from disk in some browsers; neither allows a network
_CSP = (
    "default-src 'none'; img-src 'self' file:; style-src 'self' file:; script-src 'self' file:; "
    "connect-src 'none'; form-action 'none'; base-uri 'none'"
)


@dataclass
class ImageCard:
    """One frame as the overview and heatmap sections show it; paths are inside the report."""

    name: str
    detections: int
    listed: int
    overlay: Optional[str] = None
    thumb: Optional[str] = None
    on_map: bool = False
    heatmaps: dict[str, str] = field(default_factory=dict)  # level or "combined" -> path
    problem: Optional[str] = None  # why it has no pictures


@dataclass
class PageData:
    """Everything :func:`render_page` needs."""

    report_id: str
    selection: Selection
    images: list[ImageCard]
    map_svgs: list[str] = field(default_factory=list)  # one map per site
    meta: dict[str, Any] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    heatmaps_requested: bool = False
    created: str = ""
    version: str = ""


def _href(path: str) -> str:
    return escape(quote(path, safe="/"), quote=True)


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _box_text(box: Sequence[float]) -> str:
    x1, y1, x2, y2 = box
    return f"at x {x1:.0f}, y {y1:.0f}; {_num(x2 - x1)} x {_num(y2 - y1)} px"


def short_name(name: str) -> str:
    """The last two components of an image path (``flight2/DJI_0005.JPG``): enough to tell
    frames apart on the page without paths that run over several lines."""
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    return "/".join(parts[-2:]) if parts else name


def _name(name: str) -> str:
    return f"<span class=\"name\" title=\"{_attr(name)}\">{escape(short_name(name))}</span>"


def _option_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_option_text(v) for v in value)
    if value is None:
        return "-"
    return str(value)


def _summary(data: PageData) -> str:
    sel = data.selection
    meta = data.meta
    with_dets = sum(1 for im in data.images if im.detections)
    rows: list[tuple[str, str]] = []
    images = f"{_count(len(data.images), 'image')}, {with_dets:,} with detections"
    if data.failures:
        images += f"; {_count(len(data.failures), 'input')} failed"
    rows.append(("Images", escape(images)))
    bands = "".join(f"<li><span class=\"band\">{escape(label)}</span> {count:,}</li>" for label, count in sel.bands)
    rows.append(("Detections", f"{sel.total:,} in all, by score: <ul class=\"bands\">{bands}</ul>"))
    listed = f"{len(sel.entries):,} scoring at least {sel.threshold:.2f}, best first"
    if sel.left_out:
        listed += f"; {sel.left_out:,} more above the threshold left out (limit {sel.limit:,})"
    rows.append(("Listed for review", escape(listed)))
    weights = meta.get("weights")
    rows.append(("Model", escape(str(weights)) if weights else "not recorded"))
    options = meta.get("options")
    if isinstance(options, dict) and options:
        items = "".join(f"<li>{escape(str(k))}: {escape(_option_text(v))}</li>" for k, v in sorted(options.items()))
        rows.append(("Options", f"<ul class=\"options\">{items}</ul>"))
    seconds = meta.get("seconds")
    rows.append(("Run time", f"{float(seconds):.1f} s" if isinstance(seconds, (int, float)) else "not recorded"))
    if meta.get("device"):
        rows.append(("Device", escape(str(meta["device"]))))
    if meta.get("results"):
        rows.append(("Results file", escape(str(meta["results"]))))
    created = f"{escape(data.created)} by sspnet {escape(data.version)}" if data.created else f"sspnet {escape(data.version)}"
    rows.append(("Report", created))
    body = "".join(f"<tr><th scope=\"row\">{k}</th><td>{v}</td></tr>" for k, v in rows)
    parts = [f"<section id=\"summary\"><h2>Summary</h2><table class=\"summary\">{body}</table>"]
    if data.failures:
        items = "".join(f"<li>{escape(name)}: {escape(problem)}</li>" for name, problem in data.failures)
        parts.append(f"<details class=\"failures\"><summary>Failed inputs</summary><ul>{items}</ul></details>")
    if data.notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in data.notes)
        parts.append(f"<ul class=\"notes\">{items}</ul>")
    parts.append("</section>")
    return "".join(parts)


def _thumb(card: ImageCard) -> str:
    count = f"{_count(card.detections, 'detection')}" + (f", {card.listed:,} listed" if card.listed != card.detections else "")
    if card.thumb:
        img = f"<img src=\"{_href(card.thumb)}\" loading=\"lazy\" alt=\"{_attr(card.name)}\">"
        picture = f"<a href=\"{_href(card.overlay)}\">{img}</a>" if card.overlay else img
    else:
        picture = f"<div class=\"missing\">{escape(card.problem or 'no picture')}</div>"
    return (
        f"<li class=\"frame\" data-count=\"{card.detections}\">{picture}"
        f"{_name(card.name)}<span class=\"count\">{escape(count)}</span></li>"
    )


def _overview(data: PageData) -> str:
    parts = ["<section id=\"overview\"><h2>Overview</h2>"]
    if data.map_svgs:
        parts.append(
            "<p>Frame footprints and the positions of the listed detections in lon/lat, north up "
            "(click a frame for its overlay, a dot for its entry)"
            + (f"; {len(data.map_svgs)} sites more than 5 km apart, one map each" if len(data.map_svgs) > 1 else "")
            + ".</p>"
        )
        for svg in data.map_svgs:
            parts.append(f"<figure class=\"map\">{svg}<figcaption class=\"legend\">"
                         "<span class=\"dot s90\"></span> &gt;= 0.90 <span class=\"dot s70\"></span> 0.70-0.90 "
                         "<span class=\"dot s50\"></span> 0.50-0.70 <span class=\"dot s00\"></span> below 0.50"
                         "</figcaption></figure>")
    plain = [card for card in data.images if not card.on_map]
    if plain:
        if data.map_svgs:
            parts.append("<h3>Frames without a map position</h3>")
        with_dets = sum(1 for card in plain if card.detections)
        summary = f"{_count(len(plain), 'frame')}, {with_dets:,} with detections"
        opened = " open" if len(plain) <= OPEN_GRID_MAX else ""
        parts.append(f"<details class=\"frames\"{opened}><summary>{escape(summary)}</summary>"
                     f"<ul class=\"thumbs\">{''.join(_thumb(card) for card in plain)}</ul></details>")
    if not data.images:
        parts.append("<p>No images.</p>")
    parts.append("</section>")
    return "".join(parts)


def _heatmaps(data: PageData) -> str:
    if not data.heatmaps_requested:
        return ""
    cards = [card for card in data.images if card.heatmaps]
    parts = ["<section id=\"heatmaps\"><h2>Attention heatmaps</h2>"]
    if not cards:
        parts.append("<p>None: the model produced no attention maps (an FPN baseline has none).</p></section>")
        return "".join(parts)
    parts.append(
        "<p>SSPNet's scale-selection attention per pyramid level (P2 sees the smallest people) blended "
        "over each frame; <em>combined</em> is the per-pixel maximum over the levels. "
        "<span class=\"turbo\"></span> 0 to 1.</p><ul class=\"heat\">"
    )
    for card in cards:
        combined = card.heatmaps.get("combined")
        img = f"<img src=\"{_href(combined)}\" loading=\"lazy\" alt=\"{_attr(card.name)} attention\">" if combined else ""
        links = " ".join(f"<a href=\"{_href(path)}\">{escape(level)}</a>" for level, path in card.heatmaps.items())
        picture = f"<a href=\"{_href(combined)}\">{img}</a>" if combined else ""
        parts.append(f"<li>{picture}{_name(card.name)}<span class=\"levels\">{links}</span></li>")
    parts.append("</ul></section>")
    return "".join(parts)


def _position(entry: Entry) -> tuple[str, str, str]:
    """(text shown, data-lon, data-lat)."""
    if entry.lonlat is None:
        return "", "", ""
    lon, lat = entry.lonlat
    text = f"lat {lat:.6f}, lon {lon:.6f}"
    if entry.error_m is not None:
        text += f" (about {entry.error_m:.0f} m)"
    if entry.position_source:
        text += f" from the {entry.position_source}"
    if entry.quality:
        text += f", {entry.quality} view"
    return text, f"{lon:.8f}", f"{lat:.8f}"


def _size(entry: Entry) -> str:
    """The box's ground size, and a warning badge when no person has that size."""
    if entry.size_m is None:
        return ""
    text = f"<span class=\"size\">{entry.size_m[0]:.1f} x {entry.size_m[1]:.1f} m</span>"
    if entry.plausible is False:
        text += "<span class=\"implausible\" title=\"outside the person-size range (--person-size)\">size implausible</span>"
    return text


def _entry(entry: Entry) -> str:
    where, lon, lat = _position(entry)
    where_html = f"<span class=\"where\">{escape(where)}</span>" if where else ""
    box = ",".join(f"{v:.2f}" for v in entry.box)
    key = f"{entry.image}|{box}"
    if entry.crop:
        img = (f"<img src=\"{_href(entry.crop)}\" loading=\"lazy\" width=\"{CROP_PX}\" height=\"{CROP_PX}\" "
               f"alt=\"detection {entry.rank}\">")
        picture = f"<a class=\"crop\" href=\"{_href(entry.overlay)}\">{img}</a>" if entry.overlay else f"<span class=\"crop\">{img}</span>"
    else:
        picture = "<span class=\"crop missing\">image not available</span>"
    return (
        f"<li class=\"det\" id=\"d{entry.rank}\" tabindex=\"-1\" data-score=\"{entry.score:.4f}\" "
        f"data-key=\"{_attr(key)}\" data-image=\"{_attr(entry.image)}\" data-box=\"{box}\" "
        f"data-lon=\"{lon}\" data-lat=\"{lat}\" data-decision=\"undecided\">{picture}"
        f"<div class=\"info\"><span class=\"score {score_class(entry.score)}\">{entry.score:.2f}</span> "
        f"<span class=\"rank\">#{entry.rank}</span>"
        f"{_name(entry.image)}<span class=\"box\">{escape(_box_text(entry.box))}</span>"
        f"{where_html}{_size(entry)}</div>"
        "<div class=\"decide\"><button type=\"button\" data-set=\"confirmed\" title=\"a person (key c)\">&#10003; person</button>"
        "<button type=\"button\" data-set=\"rejected\" title=\"not a person (key x)\">&#10007; reject</button></div></li>"
    )


def _review(data: PageData) -> str:
    sel = data.selection
    parts = ["<section id=\"review\"><h2>Detections to review</h2>"]
    if not sel.entries:
        if sel.total:
            parts.append(f"<p class=\"empty\">No detection scored at least {sel.threshold:.2f} "
                         f"({_count(sel.total, 'detection')} below it): nothing to review.</p></section>")
        else:
            parts.append("<p class=\"empty\">No detections: nothing to review.</p></section>")
        return "".join(parts)
    shown = f"{len(sel.entries):,} detections scoring at least {sel.threshold:.2f}, best first."
    if sel.left_out:
        shown += (f" {sel.left_out:,} more scoring at least {sel.threshold:.2f} are left out of this page "
                  f"(limit {sel.limit:,}); they are all in the results file.")
    parts.append(f"<p class=\"shown\">{escape(shown)}</p>")
    parts.append(
        "<div id=\"toolbar\" class=\"toolbar\">"
        "<span class=\"keys\"><kbd>j</kbd>/<kbd>k</kbd> next/previous, <kbd>c</kbd> person, "
        "<kbd>x</kbd> not a person, <kbd>u</kbd> undecided</span>"
        "<label>show <select id=\"filter\"><option value=\"all\">all</option><option value=\"undecided\">undecided</option>"
        "<option value=\"confirmed\">persons</option><option value=\"rejected\">not persons</option></select></label>"
        "<span id=\"counts\" class=\"counts\"></span>"
        "<button type=\"button\" id=\"export\">Export decisions (CSV)</button>"
        "<button type=\"button\" id=\"export-gpx\" title=\"waypoints of the detections confirmed as persons, for a handheld\">Export confirmed (GPX)</button>"
        "<span id=\"storage-note\" class=\"storage-note\" hidden>This browser does not keep decisions "
        "for pages opened from disk: export before closing.</span></div>"
    )
    parts.append(f"<ol id=\"detections\" class=\"detections\">{''.join(_entry(e) for e in sel.entries)}</ol></section>")
    return "".join(parts)


def _nav(data: PageData) -> str:
    links = [("summary", "Summary"), ("overview", "Overview")]
    if data.heatmaps_requested:
        links.append(("heatmaps", "Attention heatmaps"))
    sel = data.selection
    links.append(("review", f"Review ({len(sel.entries):,} of {sel.above:,})" if sel.left_out else f"Review ({len(sel.entries):,})"))
    return "<nav>" + " ".join(f"<a href=\"#{anchor}\">{text}</a>" for anchor, text in links) + "</nav>"


def render_page(data: PageData) -> str:
    """The whole ``index.html``."""
    config = json.dumps({"id": data.report_id, "csv": "sspnet-decisions.csv", "gpx": "sspnet-confirmed.gpx"}).replace("<", "\\u003c")
    sel = data.selection
    listed = _count(len(sel.entries), "detection")
    # a page cut by the limit says so in its title: "2,000 of 2,002 detections"
    title = f"sspnet review: {len(sel.entries):,} of {_count(sel.above, 'detection')}" if sel.left_out else f"sspnet review: {listed}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{escape(title)}</title>\n"
        f"<link rel=\"stylesheet\" href=\"{CSS_PATH}\">\n"
        f"<script src=\"{JS_PATH}\" defer></script>\n"
        f"<script type=\"application/json\" id=\"report-config\">{config}</script>\n"
        "</head>\n<body>\n"
        "<header><h1>People found: review</h1>"
        "<p>A detector can miss people and can take other things for people: this list helps, "
        "it does not replace looking at the frames. Click a crop for its whole frame.</p>"
        f"{_nav(data)}</header>\n"
        f"{_summary(data)}\n{_overview(data)}\n{_heatmaps(data)}\n{_review(data)}\n"
        "</body>\n</html>\n"
    )
