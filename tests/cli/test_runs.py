"""`modelyard runs list|show|compare` over runs logged through the API, on both backends."""

from __future__ import annotations

import json

import pytest

from modelyard import Yard
from modelyard.backends.metadata.base import RunInfo
from modelyard.cli import render
from modelyard.errors import InvalidFilterError, InvalidInputError, NotFoundError

from .conftest import Invoke, Logged, fits, narrow, sqlite_only, words


def _rows(output: str) -> dict[str, list[str]]:
    """Table rows keyed by their first cell (a short run id)."""
    rows = {}
    for line in output.splitlines():
        cells = line.split()
        if cells and len(cells[0]) == 8 and all(c in "0123456789abcdef" for c in cells[0]):
            rows[cells[0]] = cells
    return rows


def _header(output: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.startswith("id "))


# --- list ---------------------------------------------------------------------------------


def test_list_shows_every_run_with_status_metrics_and_params(
    invoke: Invoke, logged: Logged
) -> None:
    result = invoke("runs", "list", "--uri", logged.uri)
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert set(rows) == {r[:8] for r in [*logged.rf.values(), logged.child, logged.failed]}
    header = _header(result.output)
    assert header[:6] == ["id", "name", "experiment", "status", "start", "duration"]
    assert {"loss", "r2", "rmse", "max_depth"} <= set(header)
    failed = rows[logged.failed[:8]]
    assert failed[1:4] == ["boom", "other", "failed"]
    rf8 = rows[logged.rf[8][:8]]
    assert "0.88" in rf8 and "2.2" in rf8 and "8" in rf8  # r2, rmse, max_depth
    assert "Showing the first" not in result.output


def test_list_filters_orders_and_limits(invoke: Invoke, logged: Logged) -> None:
    result = invoke("runs", "list", "--uri", logged.uri, "-e", "claims",
                    "-f", "metrics.r2 > 0.84", "-o", "metrics.r2 desc")
    assert result.exit_code == 0, result.output
    names = [cells[1] for cells in _rows(result.output).values()]
    assert names == ["rf-8", "rf-5"]
    assert "experiment" not in _header(result.output)  # one experiment: no column for it

    ascending = invoke("runs", "list", "--uri", logged.uri, "-o", "metrics.rmse", "-n", "2")
    assert [c[1] for c in _rows(ascending.output).values()] == ["rf-8", "rf-5"]
    assert "Showing the first 2 runs" in ascending.output


@sqlite_only
def test_list_picks_the_requested_columns(invoke: Invoke, logged: Logged) -> None:
    result = invoke("runs", "list", "--uri", logged.uri, "-e", "claims",
                    "-c", "r2,params.max_depth", "--columns", "tags.team")
    assert result.exit_code == 0, result.output
    assert _header(result.output)[5:] == ["r2", "params.max_depth", "tags.team"]
    rf3 = _rows(result.output)[logged.rf[3][:8]]
    assert rf3[-3:] == ["0.83", "3", "pricing"]

    unknown = invoke("runs", "list", "--uri", logged.uri, "-c", "no_such_thing")
    assert isinstance(unknown.exception, InvalidInputError)
    assert "no_such_thing" in unknown.exception.message


@sqlite_only
def test_list_drops_columns_that_do_not_fit(
    invoke: Invoke, logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render.console, "_width", 80)
    result = invoke("runs", "list", "--uri", logged.uri)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.output.splitlines() if line.startswith("id"))
    assert "Not shown for lack of width" in result.output


@sqlite_only
def test_a_narrow_terminal_gives_up_start_and_duration_before_every_metric(
    invoke: Invoke, yard: Yard, store_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_name = "gradient-boosting-with-a-long-name"
    with yard.start_run("wide", name=long_name) as run:
        run.log_metrics({"r2": 0.912345, "rmse": 2.5})
    monkeypatch.setattr(render.console, "_width", 72)
    result = invoke("runs", "list", "--uri", store_uri)
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.startswith("id"))
    assert "r2" in header.split()  # a metric is shown ...
    assert "start" not in header.split()  # ... in the place of the start time
    assert long_name in result.output


@sqlite_only
def test_list_with_nothing_to_show(invoke: Invoke, logged: Logged) -> None:
    result = invoke("runs", "list", "--uri", logged.uri, "-f", "metrics.r2 > 5")
    assert result.exit_code == 0
    assert "No runs match." in result.output


@sqlite_only
def test_list_rejects_bad_input(invoke: Invoke, logged: Logged) -> None:
    bad_filter = invoke("runs", "list", "--uri", logged.uri, "-f", "metrics.r2 > 'high'")
    assert bad_filter.exit_code == 1
    assert isinstance(bad_filter.exception, InvalidFilterError)
    assert "compare it with a number" in bad_filter.exception.message

    bad_order = invoke("runs", "list", "--uri", logged.uri, "-o", "metrics.r2 sideways")
    assert isinstance(bad_order.exception, InvalidFilterError)

    no_experiment = invoke("runs", "list", "--uri", logged.uri, "-e", "nope")
    assert isinstance(no_experiment.exception, NotFoundError)

    zero = invoke("runs", "list", "--uri", logged.uri, "-n", "0")
    assert zero.exit_code == 2  # a usage error, reported by the parser


# --- show ---------------------------------------------------------------------------------


def test_show_by_prefix_prints_everything_about_a_run(invoke: Invoke, logged: Logged) -> None:
    run_id = logged.rf[3]
    result = invoke("runs", "show", run_id[:8], "--uri", logged.uri)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Run rf-3" in out and run_id in out
    assert "claims (id" in out and "finished" in out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.split()}
    assert lines["max_depth"] == ["3"]
    assert lines["loss"][:2] == ["0.166667", "2"]  # latest value (rounded) and its step
    assert lines["team"] == ["pricing"]
    assert lines["python.version"]  # environment captured by the run
    assert "Baseline with" in out and "[red]not markup[/red]" in out
    assert lines["model/model.bin"][:2] == ["2.0", "KiB"]
    child_row = _rows(out)[logged.child[:8]]
    assert child_row[1:3] == ["fold-0", "finished"]


def test_show_accepts_a_full_id_in_any_case_and_names_the_parent(
    invoke: Invoke, logged: Logged
) -> None:
    result = invoke("runs", "show", logged.child.upper(), "--uri", logged.uri)
    assert result.exit_code == 0, result.output
    assert f"{logged.rf[3]} (rf-3)" in result.output


@sqlite_only
def test_show_a_failed_run_with_its_error(invoke: Invoke, logged: Logged) -> None:
    result = invoke("runs", "show", logged.failed, "--uri", logged.uri)
    assert result.exit_code == 0, result.output
    assert "failed" in result.output
    assert "ValueError: diverged" in result.output


@sqlite_only
def test_show_rejects_unknown_or_malformed_ids(invoke: Invoke, logged: Logged) -> None:
    cases: list[tuple[str, type[Exception], str]] = [
        ("0123456789", NotFoundError, "no run with an id starting with"),
        ("abc", InvalidInputError, "at least 6 characters"),
        ("zzzzzzzz", InvalidInputError, "is not a run id"),
        ("rf-3 %'", InvalidInputError, "is not a run id"),
    ]
    for ref, error, message in cases:
        result = invoke("runs", "show", ref, "--uri", logged.uri)
        assert result.exit_code == 1, ref
        assert isinstance(result.exception, error), ref
        assert message in str(result.exception), ref


def test_show_reports_an_ambiguous_prefix(invoke: Invoke, yard: Yard, store_uri: str) -> None:
    exp = yard.create_experiment("ids")
    ids = ["abcdef01" + "0" * 24, "abcdef02" + "0" * 24]
    for run_id in ids:
        yard.tracking.store.create_run(
            RunInfo(run_id=run_id, experiment_id=exp.experiment_id, name=f"r{run_id[7]}",
                    status="finished", start_time=1, end_time=2, parent_run_id=None,
                    user="u", host="h", pid=1, heartbeat=2), {})
    ambiguous = invoke("runs", "show", "abcdef", "--uri", store_uri)
    assert isinstance(ambiguous.exception, InvalidInputError)
    assert "ambiguous" in ambiguous.exception.message
    assert all(run_id in ambiguous.exception.message for run_id in ids)

    unique = invoke("runs", "show", "abcdef02", "--uri", store_uri)
    assert unique.exit_code == 0, unique.output
    assert "Run r2" in unique.output


# --- compare ------------------------------------------------------------------------------


def _metric_rows(output: str) -> dict[str, list[str]]:
    block = output.split("Metrics", 1)[1]
    rows = {}
    for line in block.splitlines():
        cells = line.split()
        if cells and cells[0] in ("loss", "r2", "rmse", "fold_r2"):
            rows[cells[0]] = cells
    return rows


def test_compare_shows_differing_params_and_marks_the_best_metrics(
    invoke: Invoke, logged: Logged
) -> None:
    ids = [logged.rf[d][:8] for d in (3, 5, 8)]
    result = invoke("runs", "compare", *ids, "--uri", logged.uri)
    assert result.exit_code == 0, result.output
    params = result.output.split("Params that differ", 1)[1].split("Metrics", 1)[0]
    assert "max_depth" in params and "n_estimators" not in params
    metrics = _metric_rows(result.output)
    assert metrics["r2"] == ["r2", "max", "0.83", "0.85", "0.88", "*"]
    assert metrics["rmse"] == ["rmse", "min", "2.7", "2.5", "2.2", "*"]
    assert metrics["loss"] == ["loss", "min", "0.166667", "0.125", "0.0909091", "*"]


@sqlite_only
def test_compare_direction_can_be_overridden(invoke: Invoke, logged: Logged) -> None:
    result = invoke("runs", "compare", logged.rf[3], logged.rf[8], "--max", "loss",
                    "--min", "r2", "--uri", logged.uri)
    assert result.exit_code == 0, result.output
    metrics = _metric_rows(result.output)
    assert metrics["loss"] == ["loss", "max", "0.166667", "*", "0.0909091"]
    assert metrics["r2"] == ["r2", "min", "0.83", "*", "0.88"]


@sqlite_only
def test_compare_with_missing_metrics_and_same_params(invoke: Invoke, logged: Logged) -> None:
    result = invoke("runs", "compare", logged.rf[3], logged.child, "--uri", logged.uri)
    assert result.exit_code == 0, result.output
    metrics = _metric_rows(result.output)
    assert metrics["fold_r2"] == ["fold_r2", "max", "-", "0.5"]  # a lone value is not "best"
    assert metrics["r2"] == ["r2", "max", "0.83", "-"]


@sqlite_only
def test_compare_rejects_bad_input(invoke: Invoke, logged: Logged) -> None:
    one = invoke("runs", "compare", logged.rf[3], "--uri", logged.uri)
    assert isinstance(one.exception, InvalidInputError)
    assert "at least two runs" in one.exception.message

    both = invoke("runs", "compare", logged.rf[3], logged.rf[5], "--min", "r2", "--max", "r2",
                  "--uri", logged.uri)
    assert isinstance(both.exception, InvalidInputError)

    unknown = invoke("runs", "compare", logged.rf[3], "ffffffffff", "--uri", logged.uri)
    assert isinstance(unknown.exception, NotFoundError)


# --- scripts and narrow terminals ---------------------------------------------------------


@sqlite_only
def test_list_and_show_as_json_hold_exact_values(invoke: Invoke, logged: Logged) -> None:
    listed = invoke("runs", "list", "-e", "claims", "--json", "--uri", logged.uri)
    assert listed.exit_code == 0, listed.output
    runs = {r["name"]: r for r in json.loads(listed.output)}
    assert set(runs) == {"rf-3", "rf-5", "rf-8", "fold-0"}
    rf3 = runs["rf-3"]
    assert rf3["run_id"] == logged.rf[3] and rf3["experiment"] == "claims"
    assert rf3["metrics"]["loss"] == {"value": 1 / 6, "step": 2,
                                      "timestamp": rf3["metrics"]["loss"]["timestamp"]}
    assert rf3["params"]["max_depth"] == "3" and rf3["tags"]["team"] == "pricing"

    shown = json.loads(invoke("runs", "show", logged.rf[3][:8], "--json",
                              "--uri", logged.uri).output)
    assert shown["run_id"] == logged.rf[3] and shown["children"] == [logged.child]
    assert shown["metrics"]["r2"]["value"] == pytest.approx(0.83)
    assert shown["artifacts"][0]["path"] == "model/model.bin"
    assert shown["artifacts"][0]["size"] == 2048


@sqlite_only
def test_runs_read_whole_at_80_columns(invoke: Invoke, logged: Logged,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    narrow(monkeypatch)
    listed = invoke("runs", "list", "--uri", logged.uri)
    assert listed.exit_code == 0, listed.output
    assert fits(listed.output)
    assert {"rf-3", "rf-5", "rf-8", "fold-0", "boom", logged.rf[3][:8]} <= words(listed.output)
    assert {"0.1667", "0.09091"} <= words(listed.output)  # losses of rf-3 and rf-8, whole

    chosen = invoke("runs", "list", "-e", "claims", "-c", "r2,rmse,loss,max_depth,team",
                    "--uri", logged.uri)
    assert chosen.exit_code == 0, chosen.output
    assert fits(chosen.output)
    assert {"0.83", "2.7", "0.09091", "pricing"} <= words(chosen.output)

    shown = invoke("runs", "show", logged.rf[3], "--uri", logged.uri)
    assert {"0.166667", "0.83", "2.7", "max_depth", "n_estimators"} <= words(shown.output)

    compared = invoke("runs", "compare", logged.rf[3], logged.rf[5], logged.rf[8], "--uri",
                      logged.uri)
    assert compared.exit_code == 0, compared.output
    assert fits(compared.output)
    assert {"rf-3", "rf-5", "rf-8", "0.83", "0.85", "0.88", "max_depth"} <= words(
        compared.output)
