"""The rows of the paper's Tables I (AP) and II (MR), as plain data for any renderer.

Columns, as in the SSPNet paper: IoU 0.5 for tiny, tiny1, tiny2, tiny3 and small, then tiny at
IoU 0.25 and at IoU 0.75.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Optional, Union

from sspnet_cli.evaluation.tinyperson import EvalResult

# (metric suffix, column header) in table order; the metric is "AP" or "MR" + suffix.
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("50_tiny", "{m}50 tiny"),
    ("50_tiny1", "{m}50 tiny1"),
    ("50_tiny2", "{m}50 tiny2"),
    ("50_tiny3", "{m}50 tiny3"),
    ("50_small", "{m}50 small"),
    ("25_tiny", "{m}25 tiny"),
    ("75_tiny", "{m}75 tiny"),
)

Metrics = Mapping[str, Optional[float]]


@dataclass(frozen=True)
class Table:
    """A titled table: ``headers[0]`` is the method column, then one column per metric.

    ``rows`` hold the method name followed by the values in percent (None where undefined);
    ``keys`` are the metric names behind the value columns.
    """

    title: str
    headers: tuple[str, ...]
    keys: tuple[str, ...]
    rows: tuple[tuple[Union[str, Optional[float]], ...], ...]
    higher_is_better: bool


def _metrics(result: Union[EvalResult, Metrics]) -> Metrics:
    return result.metrics if isinstance(result, EvalResult) else result


def _table(kind: str, results: Mapping[str, Union[EvalResult, Metrics]]) -> Table:
    keys = tuple(kind + suffix for suffix, _ in _COLUMNS)
    rows = tuple((name, *(_metrics(res).get(k) for k in keys)) for name, res in results.items())
    return Table(
        title="Average precision (%)" if kind == "AP" else "Log-average miss rate (%)",
        headers=("Method", *(header.format(m=kind) for _, header in _COLUMNS)),
        keys=keys,
        rows=rows,
        higher_is_better=kind == "AP",
    )


def ap_table(results: Mapping[str, Union[EvalResult, Metrics]]) -> Table:
    """Table I layout: one row per method (``{"name": result_or_metrics}``, in that order)."""
    return _table("AP", results)


def mr_table(results: Mapping[str, Union[EvalResult, Metrics]]) -> Table:
    """Table II layout: one row per method; lower is better."""
    return _table("MR", results)


def format_value(value: Optional[float], digits: int = 2) -> str:
    """A table cell: ``57.05`` for a number, ``"-"`` where the metric is undefined."""
    return "-" if value is None else f"{value:.{digits}f}"
