"""The server-drawn charts and the runs table's columns, on their own."""

from __future__ import annotations

import re

import pytest

from modelyard.backends.metadata.base import LatestMetric, RunInfo, RunRecord
from modelyard.errors import InvalidInputError
from modelyard.tracking.filters import parse_order_by
from modelyard.ui.charts import MAX_POINTS, Series, line_chart, nice_ticks
from modelyard.ui.runs_table import Column, default_columns, order_text, parse_columns


def test_ticks_are_round_and_cover_the_range() -> None:
    assert [round(t, 9) for t in nice_ticks(0, 1)] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert [round(t, 9) for t in nice_ticks(0.013, 0.0871)] == [0.02, 0.04, 0.06, 0.08]
    assert nice_ticks(5, 5) == [5]
    assert nice_ticks(float("nan"), 1) == []


def test_a_long_history_is_reduced_but_keeps_its_spike() -> None:
    xs = list(range(100_000))
    ys = [1.0] * 100_000
    ys[54_321] = 50.0
    svg = line_chart([Series("loss", xs, ys)], x_label="step", y_label="loss")
    [points] = re.findall(r'points="([^"]+)"', svg)
    pairs = points.split()
    assert len(pairs) <= MAX_POINTS
    assert min(float(p.split(",")[1]) for p in pairs) < 20  # the spike is near the top
    assert 'role="img"' in svg and "<title>loss</title>" in svg


def test_series_are_told_apart_without_colour_and_names_are_escaped() -> None:
    svg = line_chart([Series("<a>", [0, 1], [1, 2]), Series("b", [0, 1], [2, 3])],
                     x_label="step")
    assert svg.count("<polyline") == 2 and 'stroke-dasharray="6 3"' in svg
    assert "&lt;a&gt;" in svg and "<a>" not in svg
    empty = line_chart([Series("x", [], [])], x_label="step", x_range=(5, 6))
    assert "No points to draw" in empty and "in this range" in empty


def _run(run_id: str, params: dict[str, str], metrics: dict[str, float]) -> RunRecord:
    info = RunInfo(run_id, 1, run_id, "finished", 0, 1, None, "u", "h", 1, 0)
    return RunRecord(info, params, {}, {k: LatestMetric(v, 0, 0) for k, v in metrics.items()})


def test_columns_parse_from_the_address_and_sort_in_the_search_language() -> None:
    assert parse_columns(["metrics.val loss:min", "params.a", "tags.x.y", "params.a"]) == [
        Column("metric", "val loss", "min"), Column("param", "a"), Column("tag", "x.y")]
    with pytest.raises(InvalidInputError, match=r"metrics\., params\. or tags\."):
        parse_columns(["r2"])
    text = order_text(Column("metric", 'val "loss"'), True)
    [order] = parse_order_by(text)
    assert (order.entity, order.key, order.descending) == ("metric", 'val "loss"', True)
    assert order_text("start_time", False) == "start_time asc"
    runs = [_run("a", {"d": "1", "lr": "0.1"}, {"r2": 1, "rmse": 2}),
            _run("b", {"d": "2", "lr": "0.1"}, {"r2": 1}),
            _run("c", {"lr": "0.1"}, {"r2": 1, "loss": 3})]
    assert default_columns(runs) == [Column("metric", "r2"), Column("metric", "loss"),
                                     Column("metric", "rmse"), Column("param", "d")]
