"""The pipelines pages over a project with a scheduled deciding pipeline that ran twice
(a candidate promoted, then a worse one refused) and a failing one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

import modelyard
from modelyard.registry.gates import MetricGate
from modelyard.ui import ui_app
from tests.pipelines.support import DECIDING, FAILING, write
from tests.ui.support import client, connect


@pytest.fixture(scope="module")
def piped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str]]]:
    root = tmp_path_factory.mktemp("ui-pipes") / "project"
    modelyard.init_project(root, "uipipes")
    source = DECIDING.replace('policy="auto",', 'policy="auto", schedule="0 3 * * *",')
    with connect(root) as yard:
        path = write(root, source, FAILING.replace('triggers=[modelyard.on_alert("toy")]',
                                                   "triggers=[]"))
        yard.pipelines.apply(path)
        first = yard.pipelines.run("toy_decide")
        yard.models.set_gates("toy", [MetricGate("r2", ">=", 0.5)])
        worse = yard.pipelines.run("toy_decide", {"bad": True})
        broken = yard.pipelines.run("broken")
        assert first.status == "succeeded", first.error
        ids = {"first": first.run_id, "worse": worse.run_id, "broken": broken.run_id}
        with client(ui_app(yard)) as web:
            yield web, ids


def test_the_list_shows_version_triggers_next_time_and_last_outcome(
        piped: tuple[Any, dict[str, str]]) -> None:
    web, _ = piped
    page = web.get("/pipelines")
    assert page.status_code == 200
    row = page.text.split('href="/pipelines/toy_decide"', 1)[1].split("</tr>", 1)[0]
    assert "v1" in row and "0 3 * * * (UTC)" in row and "alert on toy" in row
    assert re.search(r"\d{4}-\d\d-\d\d 03:00:00 UTC", row)  # the next scheduled time
    assert 'status-succeeded">succeeded' in row
    broken = page.text.split('href="/pipelines/broken"', 1)[1].split("</tr>", 1)[0]
    assert 'status-failed">failed' in broken and "manual only" in broken
    assert 'data-shortcut="g p"' in page.text


def test_a_pipeline_lists_its_runs_with_their_decisions(
        piped: tuple[Any, dict[str, str]]) -> None:
    web, ids = piped
    page = web.get("/pipelines/toy_decide")
    assert page.status_code == 200
    body = page.text.split("<tbody>", 1)[1]
    assert body.index(ids["worse"][:12]) < body.index(ids["first"][:12])  # newest first
    assert 'decision-promoted">promoted</span> <a href="/models/toy?version=1"' in body
    assert 'decision-refused">refused</span> <a href="/models/toy?version=2"' in body
    failed = web.get("/pipelines/toy_decide", params={"status": "failed"})
    assert "No runs that failed yet" in failed.text


def test_a_run_shows_steps_logs_error_and_its_decision_record(
        piped: tuple[Any, dict[str, str]]) -> None:
    web, ids = piped
    worse = web.get("/pipelines/toy_decide", params={"run": ids["worse"]})
    assert worse.status_code == 200
    card = worse.text.split('id="h-run"', 1)[1].split("</section>", 1)[0]
    assert '"bad": true' in card and "manual" in card
    assert '<a href="/models/toy?version=2">toy v2</a> for production' in card
    assert 'against <a href="/models/toy?version=1">v1</a>' in card
    assert "gates failed" in card and "r2" in card
    broken = web.get("/pipelines/broken", params={"run": ids["broken"]})
    card = broken.text.split('id="h-run"', 1)[1].split("</section>", 1)[0]
    assert 'status-failed">explode' not in card  # the steps table, not the badges
    assert '<th scope="row">explode</th><td><span class="status status-failed">' in card
    assert "about to fail" in card  # the captured log
    assert "ValueError: no data for" in card and 'role="alert"' in card


def test_unknown_pipelines_runs_and_bad_params_answer_in_place(
        piped: tuple[Any, dict[str, str]]) -> None:
    web, ids = piped
    assert web.get("/pipelines/nope").status_code == 404
    assert web.get("/pipelines/toy_decide", params={"run": "nope"}).status_code == 404
    other = web.get("/pipelines/toy_decide", params={"run": ids["broken"]})
    assert other.status_code == 404 and "not of &#39;toy_decide&#39;" in other.text
    bad = web.get("/pipelines/toy_decide", params={"status": "lost"})
    assert bad.status_code == 422 and "status &#39;lost&#39; is not one of" in bad.text
    limit = web.get("/pipelines/toy_decide", params={"limit": "0"})
    assert limit.status_code == 422 and "limit must be" in limit.text
