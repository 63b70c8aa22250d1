"""A live run on both backends: lifecycle, nesting, params, metrics, tags and bad input."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard import (
    InvalidInputError,
    InvalidMetricError,
    NotFoundError,
    ParamConflictError,
    RunStateError,
    Yard,
)

pytestmark = pytest.mark.over_rest


def _user_tags(yard: Yard, run_id: str) -> dict[str, str]:
    """The run's tags without the system tags (``modelyard.*``)."""
    return {k: v for k, v in yard.get_run(run_id).tags.items()
            if not k.startswith("modelyard.")}


# --- lifecycle ------------------------------------------------------------------------------


@pytest.mark.over_rest(server=True)
def test_context_manager_finishes_the_run(yard: Yard) -> None:
    with yard.start_run("exp", name="ok") as run:
        assert yard.active_run() is run
        assert yard.get_run(run.run_id).info.status == "running"
    info = yard.get_run(run.run_id).info
    assert (info.status, info.name) == ("finished", "ok")
    assert info.end_time is not None and info.end_time >= info.start_time
    assert run.ended
    assert yard.active_run() is None


def test_exception_fails_the_run_and_records_it(yard: Yard) -> None:
    with pytest.raises(ValueError, match="boom"), yard.start_run("exp") as run:
        raise ValueError("boom")
    rec = yard.get_run(run.run_id)
    assert rec.info.status == "failed"
    assert rec.tags["modelyard.error"] == "ValueError: boom"
    assert rec.info.end_time is not None


def test_keyboard_interrupt_kills_the_run(yard: Yard) -> None:
    with pytest.raises(KeyboardInterrupt), yard.start_run("exp") as run:
        raise KeyboardInterrupt
    rec = yard.get_run(run.run_id)
    assert rec.info.status == "killed"
    assert rec.tags["modelyard.error"].startswith("KeyboardInterrupt")


def test_end_is_idempotent_and_checks_the_status(yard: Yard) -> None:
    run = yard.start_run("exp")
    with pytest.raises(InvalidInputError, match="bogus"):
        run.end("bogus")
    assert yard.get_run(run.run_id).info.status == "running"
    run.end("failed")
    run.end("finished")  # already ended: nothing changes
    assert yard.get_run(run.run_id).info.status == "failed"


def test_default_experiment_and_generated_name(yard: Yard) -> None:
    with yard.start_run() as run:
        pass
    assert [e.name for e in yard.list_experiments()] == ["default"]
    assert run.name == f"run-{run.run_id[:8]}"


def test_start_run_tags(yard: Yard) -> None:
    with yard.start_run("exp", tags={"team": "risk", "k": 3}) as run:
        pass
    assert _user_tags(yard, run.run_id) == {"team": "risk", "k": "3"}


def test_system_tags_without_git_and_packages(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        pass
    tags = yard.get_run(run.run_id).tags
    assert tags["modelyard.python.version"].count(".") == 2
    assert tags["modelyard.platform"]
    assert "modelyard.host" not in tags  # host and user are columns of the run itself
    assert not [k for k in tags if k.startswith(("modelyard.git.", "modelyard.packages."))]
    assert yard.tracking.list_artifacts(run.run_id) == []


# --- nesting --------------------------------------------------------------------------------


def test_nested_runs_get_the_parent_and_its_experiment(yard: Yard) -> None:
    with yard.start_run("search", name="parent") as parent:
        with yard.start_run(name="child") as child:
            assert yard.active_run() is child
        assert yard.active_run() is parent
        with yard.start_run(name="solo", nested=False) as solo:
            pass
    assert yard.get_run(child.run_id).info.parent_run_id == parent.run_id
    assert child.experiment_id == parent.experiment_id
    assert yard.get_run(solo.run_id).info.parent_run_id is None
    assert yard.get_run(parent.run_id).info.parent_run_id is None


def test_explicit_parent_by_run_or_id(yard: Yard) -> None:
    parent = yard.start_run("exp")
    parent.end()
    with yard.start_run("exp", parent=parent) as a:
        pass
    with yard.start_run("exp", parent=parent.run_id) as b:
        pass
    assert yard.get_run(a.run_id).info.parent_run_id == parent.run_id
    assert yard.get_run(b.run_id).info.parent_run_id == parent.run_id
    with pytest.raises(NotFoundError):
        yard.start_run("exp", parent="0" * 32)
    assert len(yard.search_runs("exp")) == 3
    with yard.start_run(parent=parent.run_id) as c:  # no experiment named: the parent's
        pass
    assert c.experiment_id == parent.experiment_id


# --- params ---------------------------------------------------------------------------------


def test_params_are_stored_as_text(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        run.log_param("depth", 5)
        run.log_params({"lr": 0.1, "layers": [64, 32], "opt": {"name": "adam"},
                        "name": "rf", "flag": True, "none": None})
    assert yard.get_run(run.run_id).params == {
        "depth": "5", "lr": "0.1", "layers": "[64, 32]", "opt": '{"name": "adam"}',
        "name": "rf", "flag": "True", "none": "None",
    }


def test_param_same_value_again_is_fine_other_value_conflicts(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        run.log_param("depth", 5)
        run.log_param("depth", "5")
        with pytest.raises(ParamConflictError, match="depth") as info:
            run.log_param("depth", 6)
        assert info.value.http_status == 409
    assert yard.get_run(run.run_id).params == {"depth": "5"}


@pytest.mark.over_rest(server=True)
def test_param_batch_with_one_conflict_writes_nothing(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        run.log_params({"a": 1})
        with pytest.raises(ParamConflictError):
            run.log_params({"b": 2, "a": 9, "c": 3})
    assert yard.get_run(run.run_id).params == {"a": "1"}


def test_overlong_param_is_refused(yard: Yard) -> None:
    with yard.start_run("exp") as run, pytest.raises(InvalidInputError, match="artifact"):
        run.log_param("blob", "x" * 8_001)
    assert yard.get_run(run.run_id).params == {}


# --- metrics --------------------------------------------------------------------------------


def test_metric_with_explicit_step_and_timestamp(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        run.log_metric("loss", 0.5, step=10, timestamp=1_700_000_000_000)
    latest = yard.get_run(run.run_id).metrics["loss"]
    assert (latest.value, latest.step, latest.timestamp) == (0.5, 10, 1_700_000_000_000)


def test_auto_steps_count_per_key(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        for v in (0.9, 0.7, 0.5):
            run.log_metric("loss", v)
        run.log_metric("acc", 0.1)
        run.log_metric("acc", 0.2)
    hist = yard.tracking.metric_history(run.run_id, "loss")
    assert list(hist.columns) == ["key", "value", "step", "timestamp"]
    assert hist["step"].tolist() == [0, 1, 2]
    assert hist["value"].tolist() == [0.9, 0.7, 0.5]
    assert str(hist["timestamp"].dt.tz) == "UTC"
    assert yard.tracking.metric_history(run.run_id, "acc")["step"].tolist() == [0, 1]


def test_auto_step_continues_after_an_explicit_step(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        run.log_metric("m", 1.0, step=5)
        run.log_metric("m", 2.0)
    assert yard.tracking.metric_history(run.run_id, "m")["step"].tolist() == [5, 6]


def test_log_metrics_batch_shares_one_step(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        run.log_metrics({"r2": 0.9, "rmse": 2.0})
        run.log_metrics({"r2": 0.95, "rmse": 1.5})
        run.log_metrics({"r2": 0.97}, step=10)
    metrics = yard.get_run(run.run_id).metrics
    assert (metrics["r2"].value, metrics["r2"].step) == (0.97, 10)
    assert (metrics["rmse"].value, metrics["rmse"].step) == (1.5, 1)


@pytest.mark.over_rest(server=True)
def test_history_is_in_step_order_and_latest_is_the_highest_step(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        run.log_metric("loss", 0.3, step=3)
        run.log_metric("loss", 0.9, step=0)
        run.log_metric("loss", 0.6, step=1)
    hist = yard.tracking.metric_history(run.run_id, "loss")
    assert hist["step"].tolist() == [0, 1, 3]
    assert yard.get_run(run.run_id).metrics["loss"].value == 0.3


def test_metrics_are_visible_while_the_run_is_live(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        run.log_metric("m", 1.5)
        assert yard.get_run(run.run_id).metrics["m"].value == 1.5
        assert run.data().metrics["m"].value == 1.5


def test_numpy_numbers_are_metrics(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        run.log_metrics({"f32": np.float32(0.5), "i64": np.int64(3),  # type: ignore[dict-item]
                         "f64": np.float64(2.5)})
    assert {k: m.value for k, m in yard.get_run(run.run_id).metrics.items()} == {
        "f32": 0.5, "i64": 3.0, "f64": 2.5
    }


BAD_METRICS: list[Any] = ["0.5", None, True, False, np.bool_(True), [1.0], math.nan,
                          math.inf, -math.inf, np.float64("nan"), complex(1, 1)]


def test_bad_metric_values_are_refused_naming_the_key(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        for value in BAD_METRICS:
            with pytest.raises(InvalidMetricError, match="val_loss") as info:
                run.log_metric("val_loss", value)
            assert info.value.details["field"] == "val_loss", value
            with pytest.raises(InvalidMetricError, match="val_loss"):
                run.log_metrics({"ok": 1.0, "val_loss": value})
        assert yard.get_run(run.run_id).metrics == {}
        assert yard.tracking.metric_history(run.run_id, "ok").empty
        assert yard.tracking.metric_history(run.run_id, "val_loss").empty
        run.log_metric("val_loss", 0.25)  # refused values did not use up a step
    assert yard.tracking.metric_history(run.run_id, "val_loss")["step"].tolist() == [0]


def test_refused_batch_does_not_advance_steps(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        with pytest.raises(InvalidMetricError):
            run.log_metrics({"a": 1.0, "b": "bad"})  # type: ignore[dict-item]
        run.log_metrics({"a": 2.0, "b": 3.0})
    assert yard.tracking.metric_history(run.run_id, "a")["step"].tolist() == [0]


# --- tags and notes -------------------------------------------------------------------------


def test_tags_overwrite_and_notes(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        run.set_tag("stage", "dev")
        run.set_tags({"stage": "prod", "owner": "ana"})
        run.set_note("# Baseline\nfirst try")
        run.set_note("# Baseline\nsecond try")
    tags = yard.get_run(run.run_id).tags
    assert _user_tags(yard, run.run_id) == {"stage": "prod", "owner": "ana"}
    assert tags["modelyard.note"] == "# Baseline\nsecond try"


# --- after the end, and invalid keys --------------------------------------------------------


def test_logging_after_end_is_refused(yard: Yard, tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("x")
    with yard.start_run("exp") as run:
        run.log_param("a", 1)
    attempts: list[Callable[[], object]] = [
        lambda: run.log_param("b", 1),
        lambda: run.log_params({"b": 1}),
        lambda: run.log_metric("m", 1.0),
        lambda: run.log_metrics({"m": 1.0}),
        lambda: run.set_tag("t", "v"),
        lambda: run.set_tags({"t": "v"}),
        lambda: run.set_note("late"),
        lambda: run.log_artifact(src),
        lambda: run.log_text("x", "x.txt"),
        lambda: run.log_dict({"x": 1}, "x.json"),
    ]
    for attempt in attempts:
        with pytest.raises(RunStateError, match=run.run_id):
            attempt()
    rec = yard.get_run(run.run_id)
    assert rec.params == {"a": "1"} and rec.metrics == {}
    assert _user_tags(yard, run.run_id) == {}
    assert yard.tracking.list_artifacts(run.run_id) == []


BAD_KEYS: list[Any] = ["", "/abs", "a" * 256, "new\nline", 'q"uote', "semi;colon", 5, None]


def test_invalid_keys_are_refused(yard: Yard) -> None:
    with yard.start_run("exp") as run:
        for key in BAD_KEYS:
            with pytest.raises(InvalidInputError, match="param name"):
                run.log_param(key, 1)
            with pytest.raises(InvalidInputError, match="metric name"):
                run.log_metric(key, 1.0)
            with pytest.raises(InvalidInputError, match="metric name"):
                run.log_metrics({key: 1.0})
            with pytest.raises(InvalidInputError, match="tag name"):
                run.set_tag(key, "v")
    rec = yard.get_run(run.run_id)
    assert rec.params == {} and rec.metrics == {}
    assert _user_tags(yard, run.run_id) == {}


def test_valid_unusual_keys_are_accepted(yard: Yard) -> None:
    keys = ["val loss", "layer.0/weight:norm", "a" * 255, "é-ß_1"]
    with yard.start_run("exp") as run:
        for key in keys:
            run.log_metric(key, 1.0)
            run.log_param(key, "v")
    rec = yard.get_run(run.run_id)
    assert set(rec.metrics) == set(keys) == set(rec.params)


def test_invalid_run_and_experiment_names(yard: Yard) -> None:
    for name in ("", "bad\nname", "/root", "x" * 256):
        with pytest.raises(InvalidInputError):
            yard.start_run("exp", name=name)
        with pytest.raises(InvalidInputError):
            yard.create_experiment(name)
        if name:
            with pytest.raises(InvalidInputError):
                yard.start_run(name)
    assert yard.search_runs().empty
    assert [e.name for e in yard.list_experiments()] == ["exp"]
