"""Table rows and plot files."""
from __future__ import annotations

import subprocess
import sys

import pytest

from sspnet_cli.evaluation import ap_table, evaluate_tinyperson, format_value, mr_table

GT = {
    "images": [{"id": 1, "file_name": "a.jpg"}],
    "annotations": [
        {"id": 1, "image_id": 1, "bbox": [10, 10, 10, 10]},
        {"id": 2, "image_id": 1, "bbox": [100, 10, 10, 10]},
        {"id": 3, "image_id": 1, "bbox": [200, 10, 25, 25]},
    ],
}
DETS = [
    {"image_id": 1, "bbox": [10, 10, 10, 10], "score": 0.9},
    {"image_id": 1, "bbox": [200, 10, 25, 25], "score": 0.8},
]


def test_tables_follow_the_paper_layout():
    result = evaluate_tinyperson(GT, DETS)
    table = ap_table({"ours": result, "baseline": {"AP50_tiny": 57.05}})
    assert table.headers == (
        "Method", "AP50 tiny", "AP50 tiny1", "AP50 tiny2", "AP50 tiny3", "AP50 small", "AP25 tiny", "AP75 tiny",
    )
    assert table.keys[0] == "AP50_tiny" and table.higher_is_better
    ours, baseline = table.rows
    assert ours[0] == "ours" and len(ours) == len(table.headers)
    # tiny: 2 GTs (10 px), one found first -> 51/101; tiny1 has no GT -> None; small: found -> 100
    assert ours[1] == pytest.approx(100 * 51 / 101)
    assert ours[2] is None and ours[5] == pytest.approx(100.0)
    assert baseline == ("baseline", 57.05, None, None, None, None, None, None)

    mr = mr_table({"ours": result})
    assert mr.headers[1] == "MR50 tiny" and mr.headers[-1] == "MR75 tiny" and not mr.higher_is_better
    assert mr.rows[0][1] == pytest.approx(50.0)
    assert format_value(mr.rows[0][1]) == "50.00" and format_value(None) == "-"


def test_plots_write_png(tmp_path):
    from sspnet_cli.evaluation.plots import plot_miss_rate, plot_precision_recall

    result = evaluate_tinyperson(GT, DETS)
    for fn, name in ((plot_precision_recall, "pr.png"), (plot_miss_rate, "mr.png")):
        path = fn(result, tmp_path / "sub" / name)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a result with no curves still gives a (blank) figure rather than an error
    empty = evaluate_tinyperson({"images": [{"id": 1}], "annotations": []}, [])
    assert plot_miss_rate(empty, tmp_path / "empty.png").exists()


def test_importing_the_package_does_not_import_matplotlib():
    code = "import sys, sspnet_cli.evaluation; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
