"""Parallel coordinates: on the compare page over real runs (the params that differ and the
chosen metric), and drawn directly for text values and missing ones."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from modelyard.ui import ui_app
from modelyard.ui.parallel import Line, parallel_coordinates
from tests.ui.support import Project, client, connect

TOP, BOTTOM = 28.0, 278.0  # the plot's top and bottom in a 300 px high chart


@pytest.fixture(scope="module")
def web(browse: Project) -> Iterator[Any]:
    with connect(browse.root) as yard, client(ui_app(yard)) as test_client:
        yield test_client


def _lines(svg: str) -> dict[str, list[tuple[float, float]]]:
    found = re.findall(r'points="([^"]+)"><title>([^:]+):', svg)
    return {label: [tuple(map(float, p.split(","))) for p in points.split()]  # type: ignore[misc]
            for points, label in found}


def test_compare_draws_the_differing_params_and_the_chosen_metric(web: Any,
                                                                  browse: Project) -> None:
    ids = [browse.runs[n] for n in ("depth-2", "depth-5", "depth-13")]
    page = web.get("/compare", params={"run": ids, "metric": "r2"})
    assert page.status_code == 200
    section = page.text.split('id="h-parallel"', 1)[1].split("</section>", 1)[0]
    assert "<option selected>r2</option>" in section
    assert re.search(r'class="axis"[^>]*>max_depth</text>', section)
    assert re.search(r'class="axis"[^>]*>r2</text>', section)
    assert "learning_rate" not in section  # the same in every run: no axis
    lines = {k.split(" (")[0]: v for k, v in _lines(section).items()}
    assert set(lines) == {"depth-2", "depth-5", "depth-13"}
    # r2 grows with the depth: the shallowest run is at the bottom of both axes
    assert [y for _, y in lines["depth-2"]] == [BOTTOM, BOTTOM]
    assert [y for _, y in lines["depth-13"]] == [TOP, TOP]
    assert TOP < lines["depth-5"][0][1] < BOTTOM
    other = web.get("/compare", params={"run": ids, "metric": "loss"})
    assert re.search(r'class="axis"[^>]*>loss</text>',
                     other.text.split('id="h-parallel"', 1)[1].split("</section>", 1)[0])


def test_text_values_are_spread_and_a_missing_value_breaks_the_line() -> None:
    svg = parallel_coordinates(
        ["optimizer", "layers", "score"],
        [Line("a", {"optimizer": "adam", "layers": "2", "score": 0.5}),
         Line("b", {"optimizer": "sgd", "layers": None, "score": 0.9}),
         Line("c", {"optimizer": "rmsprop", "layers": "4", "score": 0.7})],
        title="test")
    lines = _lines(svg)
    assert [y for _, y in lines["a"]] == [TOP, BOTTOM, BOTTOM]  # adam first, fewest layers
    assert lines["c"][0][1] == (TOP + BOTTOM) / 2  # rmsprop between adam and sgd
    assert len(re.findall(r"<title>b:", svg)) == 2  # two pieces, around the missing value
    assert "adam" in svg and "sgd" in svg  # the axis lists the text values
    assert "need two axes" in parallel_coordinates(["score"], [Line("a", {"score": 1})],
                                                   title="one")
