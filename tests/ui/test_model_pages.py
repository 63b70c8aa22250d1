"""The model page's additions over a version trained in a run from a training set and
evaluated with slices: the live servers serving it (from the replicas' heartbeats), its
evaluation plots and slices, and its lineage drawn as a graph."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

import modelyard
from modelyard.backends.metadata.replicas import ReplicaRecord, ServedSlot
from modelyard.ui import ui_app
from tests.registry.support import holdout, linear, setup_features, training_set
from tests.ui.support import client, connect

NAME = "lin"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("ui-model") / "project"
    modelyard.init_project(root, "uimodel")
    with connect(root) as yard:
        rows = setup_features(yard)
        ts = training_set(yard, rows)
        with yard.start_run("train", name="fit-linear") as run:
            run.log_model(linear(ts), NAME, training_set=ts, onnx=False)
        yard.models.evaluate(f"{NAME}:1", holdout(rows), label="cost", dataset="holdout",
                             slice_by="gender")
        yard.models.promote(NAME, 1, "production", reason="first")
        now = int(time.time() * 1000)
        yard.replicas.beat(ReplicaRecord(
            "r-1", "web-7", 4242, "http://10.0.0.7:8000", now - 60_000, now - 2_000,
            (ServedSlot(NAME, "primary", f"{NAME}@production", 1),
             ServedSlot("other", "primary", "other@production", 3))))
        yard.replicas.beat(ReplicaRecord(
            "r-2", "web-8", 99, None, now - 60_000, now - 3_600_000,  # long gone
            (ServedSlot(NAME, "primary", f"{NAME}@production", 1),)))
        with client(ui_app(yard)) as test_client:
            yield test_client


def test_live_replicas_serving_the_model_are_listed(web: Any) -> None:
    page = web.get(f"/models/{NAME}")
    assert page.status_code == 200
    section = page.text.split('id="h-serving"', 1)[1].split("</section>", 1)[0]
    assert "web-7" in section and "http://10.0.0.7:8000" in section
    assert ">primary<" in section and f"{NAME}@production" in section
    assert re.search(r'<td class="n">[23]\.\d s ago</td>', section)
    assert "web-8" not in section  # its heartbeat is an hour old: not live
    assert section.count("<tr>") == 2  # the header and the one slot of this model


def test_evaluation_slices_and_plots_are_shown_and_served(web: Any) -> None:
    page = web.get(f"/models/{NAME}")
    assert "Slices by gender" in page.text
    table = page.text.split("Slices by gender", 1)[1].split("</table>", 1)[0]
    assert '<th scope="row">f</th>' in table and '<th scope="row">m</th>' in table
    assert ">rmse<" in table
    plots = re.findall(r'<img src="(/models/lin/versions/1/plots/holdout/[^"]+)"', page.text)
    assert plots, "the stored evaluation plots are shown"
    image = web.get(plots[0])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    missing = web.get(f"/models/{NAME}/versions/1/plots/holdout/nope.png")
    assert missing.status_code == 404 and "has no plot" in missing.text
    assert web.get(f"/models/{NAME}/versions/x/plots/holdout/a.png").status_code == 404


def test_lineage_is_drawn_from_sources_to_the_live_server(web: Any) -> None:
    page = web.get(f"/models/{NAME}")
    svg = page.text.split('<svg class="graph"', 1)[1].split("</svg>", 1)[0]
    assert 'aria-label="Lineage of lin version 1"' in svg
    for kind, label in (("source", "policies @"), ("feature group", "profile v1"),
                        ("run", "fit-linear"), ("version", "lin:1"),
                        ("alias", "production"), ("primary", "web-7 (4242)")):
        assert re.search(rf"<title>{kind}: {re.escape(label)}", svg), (kind, label)
    assert 'href="/features?group=profile&amp;version=1"' in svg
    assert re.search(r'href="/runs/[0-9a-f]+"', svg)
    assert svg.count('class="edge"') == 6  # source→group→set→run→version→alias→server
