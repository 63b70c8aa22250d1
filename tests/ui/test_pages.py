"""Every page of the UI over a small project, through Starlette's TestClient: what each
shows, the state each keeps in its address, and the errors shown in place."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from modelyard.ui import ui_app
from tests.monitoring.support import MODEL
from tests.ui.support import Project, client, connect


@pytest.fixture(scope="module")
def web(browse: Project) -> Iterator[Any]:
    with connect(browse.root) as yard, client(ui_app(yard)) as test_client:
        yield test_client


def _rows(html: str) -> list[str]:
    """The run names of the runs table, in order."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'class="row-link" href="[^"]+">([^<]+)</a>', body)


def test_overview_links_every_section(web: Any) -> None:
    page = web.get("/")
    assert page.status_code == 200
    for text in ("tuning", MODEL, "production → v1", "profile", "dataset drift: 67%"):
        assert text in page.text


def test_runs_are_filtered_sorted_and_paged_by_the_database(web: Any) -> None:
    page = web.get("/runs", params={"experiment": "tuning", "filter": "metrics.r2 > 0.72",
                                    "order": "metrics.r2 asc", "per": "2", "page": "1"})
    assert page.status_code == 200
    assert "4 runs match; showing 1\u20132" in page.text
    assert _rows(page.text) == ["depth-3", "depth-5"]
    second = web.get("/runs", params={"experiment": "tuning", "filter": "metrics.r2 > 0.72",
                                      "order": "metrics.r2 asc", "per": "2", "page": "2"})
    assert _rows(second.text) == ["depth-8", "depth-13"]
    assert 'aria-sort="ascending"' in second.text
    # the header link sorts the other way and keeps the filter; Previous keeps it all
    assert "order=metrics.r2+desc" in second.text
    assert re.search(r'rel="prev" href="[^"]*filter=metrics.r2[^"]*page=1', second.text)
    everything = web.get("/runs", params={"experiment": "tuning"})
    assert len(_rows(everything.text)) == 6  # the child run too


def test_chosen_columns_show_last_min_and_max(web: Any, browse: Project) -> None:
    page = web.get("/runs", params={"filter": "name = 'depth-3'",
                                    "col": ["metrics.loss", "metrics.loss:min",
                                            "metrics.loss:max", "params.max_depth"]})
    cells = re.findall(r'<td class="n">([^<]*)</td>', page.text)
    assert cells == ["0.03125", "0.03125", "0.3333"]  # last, min, max over 30 steps
    assert "loss (min)" in page.text and ">3</td>" in page.text
    assert 'value="metrics.loss:min" checked' in page.text  # the chooser shows the choice
    bad = web.get("/runs", params={"col": "weights.loss"})
    assert bad.status_code == 422 and "not a metrics., params. or tags. column" in bad.text


def test_a_bad_filter_shows_the_error_in_place_with_its_position(web: Any) -> None:
    page = web.get("/runs", params={"filter": "metrics.r2 >> 3"})
    assert page.status_code == 422
    assert 'role="alert"' in page.text and "InvalidFilterError" in page.text
    assert "at position 12" in page.text
    assert "  metrics.r2 &gt;&gt; 3\n              ^" in page.text
    assert 'value="metrics.r2 &gt;&gt; 3"' in page.text and 'aria-invalid="true"' in page.text
    unknown = web.get("/runs", params={"experiment": "nope"})
    assert unknown.status_code == 404 and "no experiment named" in unknown.text
    assert "<form" in unknown.text  # the page, not a blank one


def test_run_page_shows_params_metrics_chart_artifacts_environment_and_lineage(
        web: Any, browse: Project) -> None:
    run_id = browse.runs["depth-2"]
    page = web.get(f"/runs/{run_id}")
    assert page.status_code == 200
    for text in ("max_depth", "learning_rate", "notes.txt", "plot.png", "depth-2-fold-1",
                 "python.version", "team"):
        assert text in page.text
    assert page.text.count("<polyline") == 1 and 'aria-label="loss by step"' in page.text
    timed = web.get(f"/runs/{run_id}", params={"metric": "loss", "axis": "time"})
    assert 'aria-label="loss by time"' in timed.text and "time (UTC)" in timed.text
    zoomed = web.get(f"/runs/{run_id}", params={"metric": "loss", "from": "10", "to": "20"})
    assert zoomed.text.count("<circle") == 11 and "Whole range" in zoomed.text
    text = web.get(f"/runs/{run_id}", params={"artifact": "notes.txt"})
    assert "line two &lt;b&gt;not bold&lt;/b&gt;" in text.text
    image = web.get(f"/runs/{run_id}", params={"artifact": "plot.png"})
    assert f'<img src="/runs/{run_id}/artifacts/plot.png"' in image.text
    child = web.get(f"/runs/{browse.child}")
    assert f'href="/runs/{run_id}">depth-2</a>' in child.text  # its parent
    bad = web.get(f"/runs/{run_id}", params={"metric": "accuracy"})
    assert bad.status_code == 422 and "logged no metric &#39;accuracy&#39;" in bad.text


def test_artifacts_are_served_verified_and_never_as_a_page_of_the_site(
        web: Any, browse: Project) -> None:
    run_id = browse.runs["depth-2"]
    png = web.get(f"/runs/{run_id}/artifacts/plot.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    html = web.get(f"/runs/{run_id}/artifacts/page.html")
    assert html.headers["content-type"].startswith("text/plain")
    assert "sandbox" in html.headers["content-security-policy"]
    assert web.get(f"/runs/{run_id}/artifacts/missing.txt").status_code == 404


def test_unknown_pages_runs_and_models_answer_404_pages(web: Any) -> None:
    for path in ("/runs/abcdef0123456789", "/nowhere", "/models/nobody",
                 "/monitoring/nobody"):
        page = web.get(path)
        assert page.status_code == 404, path
        assert "<h1>Not found</h1>" in page.text and "Back to the overview" in page.text
    short = web.get("/runs/abc")
    assert short.status_code == 422 and "too short" in short.text


def test_compare_three_runs_shows_differing_params_and_overlays(web: Any,
                                                                browse: Project) -> None:
    ids = [browse.runs[n] for n in ("depth-2", "depth-5", "depth-13")]
    page = web.get("/compare", params={"run": ids, "metric": "loss"})
    assert page.status_code == 200
    assert "Params that differ <small>(1; 1 the same)" in page.text
    differing = page.text.split('class="diff"', 1)[1].split("</table>", 1)[0]
    assert "max_depth" in differing and "learning_rate" not in differing
    overlay = page.text.split('id="h-overlay"', 1)[1]
    assert overlay.count("<polyline") == 3
    assert "depth-13 (" in overlay  # in the legend
    one = web.get("/compare", params={"run": ids[0]})
    assert one.status_code == 422 and "at least two runs" in one.text


def test_models_list_and_the_model_page(web: Any) -> None:
    listing = web.get("/models")
    assert listing.status_code == 200 and "production → v1" in listing.text
    page = web.get(f"/models/{MODEL}")
    assert page.status_code == 200
    for text in ("Alias history", "first release", "r2 &gt;= 0.5 on holdout", "Lineage",
                 "Roll back production", "Check the gates", "Retraining decisions"):
        assert text in page.text
    v2 = web.get(f"/models/{MODEL}", params={"version": "2"})
    assert "Version 2</h2>" in v2.text and "No promotion of this version" in v2.text
    assert web.get(f"/models/{MODEL}", params={"version": "9"}).status_code == 404


def test_promotion_preview_shows_the_gate_report_first(web: Any) -> None:
    page = web.get(f"/models/{MODEL}/promote", params={"version": "2"})
    assert page.status_code == 200
    assert "1 of 1 gate(s) fail against it now" in page.text
    assert 'class="verdict verdict-fail"' in page.text
    assert 'method="post"' in page.text and 'name="version" value="2"' in page.text


def test_monitoring_overview_drift_grid_chart_and_report(web: Any, browse: Project) -> None:
    overview = web.get("/monitoring")
    assert overview.status_code == 200 and "vehicle_value" in overview.text
    page = web.get(f"/monitoring/{MODEL}")
    assert page.status_code == 200
    grid = page.text.split('class="grid"', 1)[1].split("</table>", 1)[0]
    assert grid.count("●") >= 2  # vehicle_value and region drifted in the second week
    assert "Drift of" in page.text and page.text.count("<polyline") >= 3
    chosen = web.get(f"/monitoring/{MODEL}", params={"feature": "age"})
    assert 'aria-label="drift of age per window"' in chosen.text
    report = web.get(f"/monitoring/{MODEL}/reports/{browse.results[1]}")
    assert report.status_code == 200 and "<svg" in report.text
    assert "default-src 'none'" in report.headers["content-security-policy"]
    assert web.get(f"/monitoring/{MODEL}", params={"feature": "x"}).status_code == 422


def test_feature_store_page(web: Any) -> None:
    page = web.get("/features")
    assert page.status_code == 200
    for text in ("profile", "customer", "policies", "customer_id"):
        assert text in page.text
    group = web.get("/features", params={"group": "profile"})
    assert "vehicle_value" in group.text and "v1" in group.text
    assert web.get("/features", params={"group": "nope"}).status_code == 404


def test_assets_ship_with_the_package_and_no_page_loads_from_elsewhere(
        web: Any, browse: Project) -> None:
    for asset, kind in (("ui.css", "text/css"), ("ui.js", "javascript"),
                        ("favicon.svg", "image/svg+xml")):
        answer = web.get(f"/static/{asset}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
    ids = list(browse.runs.values())[:3]
    for path in ("/", "/runs", f"/runs/{ids[0]}", "/models", f"/models/{MODEL}",
                 "/monitoring", f"/monitoring/{MODEL}", "/features"):
        html = web.get(path).text
        assert not re.search(r'(src|href)="(https?:)?//', html), path


def test_mounted_under_a_prefix_every_link_follows_it(browse: Project) -> None:
    with connect(browse.root) as yard:
        app = Starlette(routes=[Mount("/ui", app=ui_app(yard))])
        with client(app) as web:
            page = web.get("/ui/runs")
            assert page.status_code == 200
            links = re.findall(r'(?:href|src|action)="(/[^"]*)"', page.text)
            assert links and all(link.startswith("/ui/") for link in links), links
            assert web.get("/ui/static/ui.css").status_code == 200
