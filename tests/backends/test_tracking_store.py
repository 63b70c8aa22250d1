"""The TrackingStore contract, run against SQLite and the real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

import pytest

from modelyard import AlreadyExistsError, NotFoundError, ParamConflictError, Yard
from modelyard.backends.metadata.base import (
    ArtifactEntry,
    MetricPoint,
    RunInfo,
    RunQuery,
    TrackingStore,
)

pytestmark = pytest.mark.over_rest


def _store(yard: Yard) -> TrackingStore:
    return yard.tracking.store


def _new_run(store: TrackingStore, experiment_id: int, *, start: int = 1_000,
             status: str = "running", tags: dict[str, str] | None = None) -> str:
    run_id = uuid.uuid4().hex
    store.create_run(
        RunInfo(run_id=run_id, experiment_id=experiment_id, name=f"r-{run_id[:6]}",
                status=status, start_time=start, end_time=None, parent_run_id=None,
                user="tester", host="testhost", pid=os.getpid(), heartbeat=start),
        tags or {},
    )
    return run_id


# --- experiments ----------------------------------------------------------------------------


def test_create_and_get_experiment_by_name_and_id(yard: Yard) -> None:
    store = _store(yard)
    exp = store.create_experiment("churn", "predict who leaves")
    assert exp.name == "churn"
    assert exp.description == "predict who leaves"
    assert exp.created_at > 0
    assert store.get_experiment("churn") == exp
    assert store.get_experiment(exp.experiment_id) == exp


def test_duplicate_experiment_is_refused(yard: Yard) -> None:
    store = _store(yard)
    store.create_experiment("churn")
    with pytest.raises(AlreadyExistsError, match="churn"):
        store.create_experiment("churn")
    assert [e.name for e in store.list_experiments()] == ["churn"]


def test_unknown_experiment_is_not_found(yard: Yard) -> None:
    store = _store(yard)
    with pytest.raises(NotFoundError, match="nope"):
        store.get_experiment("nope")
    with pytest.raises(NotFoundError):
        store.get_experiment(4242)


def test_list_experiments_in_creation_order(yard: Yard) -> None:
    store = _store(yard)
    for name in ("b", "a", "c"):
        store.create_experiment(name)
    listed = store.list_experiments()
    assert [e.name for e in listed] == ["b", "a", "c"]
    assert len({e.experiment_id for e in listed}) == 3


# --- runs -----------------------------------------------------------------------------------


def test_run_roundtrip_and_end(yard: Yard) -> None:
    store = _store(yard)
    exp = store.create_experiment("e")
    run_id = _new_run(store, exp.experiment_id, tags={"owner": "ana"})
    rec = store.get_run(run_id)
    assert rec.info.status == "running"
    assert rec.info.experiment_id == exp.experiment_id
    assert rec.info.end_time is None
    assert rec.tags == {"owner": "ana"}
    assert rec.params == {} and rec.metrics == {}

    store.end_run(run_id, "finished", 5_000)
    info = store.get_run(run_id).info
    assert (info.status, info.end_time) == ("finished", 5_000)


@pytest.mark.over_rest(server=True)
def test_unknown_run_is_not_found_everywhere(yard: Yard) -> None:
    store = _store(yard)
    missing = uuid.uuid4().hex
    calls: list[Callable[[], object]] = [
        lambda: store.get_run(missing),
        lambda: store.end_run(missing, "finished", 1),
        lambda: store.log_params(missing, {"a": "1"}),
        lambda: store.set_tags(missing, {"a": "1"}),
        lambda: store.metric_history(missing, "loss"),
        lambda: store.list_artifacts(missing),
        lambda: store.record_artifacts(missing, [ArtifactEntry("f", "0" * 64, 1)]),
    ]
    for call in calls:
        with pytest.raises(NotFoundError, match=missing):
            call()


def test_mark_killed_only_touches_running_runs(yard: Yard) -> None:
    store = _store(yard)
    exp = store.create_experiment("e")
    running = _new_run(store, exp.experiment_id, start=100)
    done = _new_run(store, exp.experiment_id, start=100)
    store.end_run(done, "finished", 200)
    assert store.mark_killed([running, done]) == 1
    killed = store.get_run(running).info
    assert killed.status == "killed"
    assert killed.end_time == killed.heartbeat
    assert store.get_run(done).info.status == "finished"


# --- params and tags ------------------------------------------------------------------------


def test_params_are_immutable_and_all_or_nothing(yard: Yard) -> None:
    store = _store(yard)
    run_id = _new_run(store, store.create_experiment("e").experiment_id)
    store.log_params(run_id, {"depth": "5", "lr": "0.1"})
    store.log_params(run_id, {"depth": "5"})  # same value again is fine

    with pytest.raises(ParamConflictError) as info:
        store.log_params(run_id, {"new": "x", "depth": "6"})
    assert info.value.details["keys"] == ["depth"]
    assert store.get_run(run_id).params == {"depth": "5", "lr": "0.1"}


def test_tags_overwrite(yard: Yard) -> None:
    store = _store(yard)
    run_id = _new_run(store, store.create_experiment("e").experiment_id, tags={"stage": "dev"})
    store.set_tags(run_id, {"stage": "prod", "team": "risk"})
    assert store.get_run(run_id).tags == {"stage": "prod", "team": "risk"}


# --- metrics --------------------------------------------------------------------------------


def test_metric_history_is_ordered_by_step_and_latest_is_highest_step(yard: Yard) -> None:
    store = _store(yard)
    run_id = _new_run(store, store.create_experiment("e").experiment_id)
    store.log_metrics([
        MetricPoint(run_id, "loss", 0.5, 2, 30),
        MetricPoint(run_id, "loss", 0.9, 0, 10),
    ])
    store.log_metrics([MetricPoint(run_id, "loss", 0.7, 1, 40)])  # older step, later batch
    history = store.metric_history(run_id, "loss")
    assert [(p.step, p.value) for p in history] == [(0, 0.9), (1, 0.7), (2, 0.5)]
    latest = store.get_run(run_id).metrics["loss"]
    assert (latest.value, latest.step, latest.timestamp) == (0.5, 2, 30)

    # the same step again with a later timestamp wins
    store.log_metrics([MetricPoint(run_id, "loss", 0.4, 2, 50)])
    assert store.get_run(run_id).metrics["loss"].value == 0.4


def test_log_metrics_spans_runs_and_refreshes_heartbeat(yard: Yard) -> None:
    store = _store(yard)
    exp_id = store.create_experiment("e").experiment_id
    a, b = _new_run(store, exp_id, start=1), _new_run(store, exp_id, start=1)
    store.log_metrics([MetricPoint(a, "m", 1.0, 0, 1), MetricPoint(b, "m", 2.0, 0, 1)],
                      heartbeat=[a])
    assert store.get_run(a).metrics["m"].value == 1.0
    assert store.get_run(b).metrics["m"].value == 2.0
    assert store.get_run(a).info.heartbeat > 1
    assert store.get_run(b).info.heartbeat == 1


# --- artifacts and search -------------------------------------------------------------------


@pytest.mark.over_rest(server=True)
def test_artifact_records_are_listed_by_path_and_replaced(yard: Yard) -> None:
    store = _store(yard)
    run_id = _new_run(store, store.create_experiment("e").experiment_id)
    store.record_artifacts(run_id, [ArtifactEntry("b.txt", "1" * 64, 3),
                                    ArtifactEntry("a/x.bin", "2" * 64, 4)])
    store.record_artifacts(run_id, [ArtifactEntry("b.txt", "3" * 64, 5)])
    assert store.list_artifacts(run_id) == [ArtifactEntry("a/x.bin", "2" * 64, 4),
                                            ArtifactEntry("b.txt", "3" * 64, 5)]


def test_search_by_status_and_experiment(yard: Yard) -> None:
    store = _store(yard)
    e1 = store.create_experiment("one").experiment_id
    e2 = store.create_experiment("two").experiment_id
    r1 = _new_run(store, e1, start=10)
    r2 = _new_run(store, e1, start=20)
    r3 = _new_run(store, e2, start=30)
    store.end_run(r2, "failed", 25)

    def ids(query: RunQuery) -> list[str]:
        return [r.info.run_id for r in store.search_runs(query)]

    assert ids(RunQuery()) == [r3, r2, r1]  # newest first
    assert ids(RunQuery(experiment_ids=[e1])) == [r2, r1]
    assert ids(RunQuery(statuses=["running"])) == [r3, r1]
    assert ids(RunQuery(experiment_ids=[e1], statuses=["failed"], limit=5)) == [r2]
    assert ids(RunQuery(limit=1)) == [r3]


def test_pages_of_a_search_and_the_count_of_all_matches(yard: Yard) -> None:
    from modelyard.backends.metadata.base import Comparison, OrderBy

    store = _store(yard)
    e1 = store.create_experiment("paged").experiment_id
    other = store.create_experiment("other").experiment_id
    runs = [_new_run(store, e1, start=1_000 + i) for i in range(7)]
    _new_run(store, other, start=5_000)
    store.log_metrics([MetricPoint(r, "r2", i / 10, 0, 1) for i, r in enumerate(runs[:6])])
    by_r2 = [OrderBy("metric", "r2", descending=True)]
    whole = [r.info.run_id for r in store.search_runs(
        RunQuery(experiment_ids=[e1], order_by=by_r2))]
    assert whole == [*runs[5::-1], runs[6]]  # highest r2 first, the run without it last
    pages = [[r.info.run_id for r in store.search_runs(RunQuery(
        experiment_ids=[e1], order_by=by_r2, limit=3, offset=offset))]
        for offset in (0, 3, 6)]
    assert pages == [whole[:3], whole[3:6], whole[6:]]
    newest = [r.info.run_id for r in store.search_runs(RunQuery(
        experiment_ids=[e1], limit=2, offset=2))]
    assert newest == runs[4:2:-1]
    filtered = RunQuery(experiment_ids=[e1], where=[Comparison("metric", "r2", ">", 0.25)],
                        limit=1, offset=1)
    assert store.count_matching(filtered) == 3  # order, limit and offset do not count
    assert store.count_matching(RunQuery()) == 8
    assert store.search_runs(RunQuery(experiment_ids=[e1], limit=5, offset=50)) == []


def test_metric_ranges_and_run_keys(yard: Yard) -> None:
    store = _store(yard)
    e1 = store.create_experiment("ranges").experiment_id
    e2 = store.create_experiment("elsewhere").experiment_id
    a, b = _new_run(store, e1), _new_run(store, e1, tags={"team": "x"})
    c = _new_run(store, e2)
    store.log_metrics([MetricPoint(a, "loss", v, s, s) for s, v in enumerate([3.0, 1.0, 2.0])]
                      + [MetricPoint(b, "loss", 5.0, 0, 0), MetricPoint(b, "acc", 0.5, 0, 0),
                         MetricPoint(c, "other", 1.0, 0, 0)])
    store.log_params(a, {"depth": "3"})
    store.log_params(c, {"lr": "0.1"})
    ranges = store.metric_ranges([a, b, c], ["loss", "missing"])
    assert {k: (v.min, v.max, v.count) for k, v in ranges.items()} == {
        (a, "loss"): (1.0, 3.0, 3), (b, "loss"): (5.0, 5.0, 1)}
    assert store.metric_ranges([], ["loss"]) == {} == store.metric_ranges([a], [])
    assert store.run_keys([e1]) == {"metric": ["acc", "loss"], "param": ["depth"],
                                    "tag": ["team"]}
    assert store.run_keys() == {"metric": ["acc", "loss", "other"],
                                "param": ["depth", "lr"], "tag": ["team"]}
