"""The tracking API of the team server: experiments, runs, params, tags, metrics, search.

Each operation is one call of the project's tracking store or service, the records in the
wire codec. The REST tracking store (``backends/metadata/rest/tracking.py``) is its client.
A metric batch carries the key its client gave it when first sent, stored in the batch's
transaction, so a batch sent again after a lost answer logs nothing twice. Names and values
are checked here as the client's ``Run`` checks them, so a client that is not modelyard's
cannot store what modelyard's would refuse.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from modelyard.backends.metadata.base import (
    ArtifactEntry,
    Experiment,
    RunInfo,
    RunQuery,
    RunRecord,
)
from modelyard.backends.metadata.rest.tracking import points_from_wire
from modelyard.backends.metadata.writes import Completion
from modelyard.errors import InvalidInputError, InvalidMetricError
from modelyard.server.rpc import Call, api_group
from modelyard.server.state import ServerState
from modelyard.tracking.run import MAX_PARAM_LENGTH, validate_key

__all__ = ["ENDPOINTS"]


def _keys(kind: str, keys: Iterable[str]) -> None:
    for key in set(keys):
        validate_key(kind, key)


def _params(params: Mapping[str, str]) -> Mapping[str, str]:
    _keys("param", params)
    for key, value in params.items():
        if len(value) > MAX_PARAM_LENGTH:
            raise InvalidInputError(f"param {key!r} is longer than {MAX_PARAM_LENGTH} "
                                    "characters (log long text as an artifact)", field=key)
    return params


def create_experiment(state: ServerState, call: Call) -> Experiment:
    return state.yard.tracking.create_experiment(call.field("name", str),
                                                 call.field("description", str, default=""))


def get_experiment(state: ServerState, call: Call) -> Experiment:
    by_id = call.arg("id", int, default=None)
    ref = by_id if by_id is not None else call.arg("name")
    return state.yard.tracking.store.get_experiment(ref)


def list_experiments(state: ServerState, call: Call) -> list[Experiment]:
    return state.yard.tracking.store.list_experiments()


def count_runs(state: ServerState, call: Call) -> dict[str, int]:
    return {str(k): v for k, v in state.yard.tracking.store.count_runs().items()}


def create_run(state: ServerState, call: Call) -> None:
    tags = call.field("tags", dict[str, str], default={})
    info = call.field("info", RunInfo)
    validate_key("run", info.name)
    _keys("tag", tags)
    state.yard.tracking.store.create_run(info, tags)


def get_run(state: ServerState, call: Call) -> RunRecord:
    return state.yard.tracking.store.get_run(call.arg("run_id"))


def end_run(state: ServerState, call: Call) -> None:
    state.yard.tracking.store.end_run(call.arg("run_id"), call.field("status", str),
                                      call.field("end_time", int))


def mark_killed(state: ServerState, call: Call) -> dict[str, int]:
    return {"count": state.yard.tracking.store.mark_killed(call.field("run_ids", list[str]))}


def log_params(state: ServerState, call: Call) -> None:
    state.yard.tracking.store.log_params(call.arg("run_id"),
                                         _params(call.field("params", dict[str, str])))


def set_tags(state: ServerState, call: Call) -> None:
    tags = call.field("tags", dict[str, str])
    _keys("tag", tags)
    state.yard.tracking.store.set_tags(call.arg("run_id"), tags)


def log_metrics(state: ServerState, call: Call) -> None:
    points = points_from_wire(call.field("points", list, default=[]))
    _keys("metric", (p.key for p in points))
    bad = next((p for p in points if not math.isfinite(p.value)), None)
    if bad is not None:
        raise InvalidMetricError(f"metric {bad.key!r} must be finite, got {bad.value}",
                                 field=bad.key)
    state.yard.tracking.store.log_metrics(
        points, heartbeat=call.field("heartbeat", list[str], default=[]),
        batch_key=call.field("batch_key", str | None, default=None))


def metric_history(state: ServerState, call: Call) -> list[list[Any]]:
    points = state.yard.tracking.store.metric_history(call.arg("run_id"), call.arg("key"))
    return [list(p) for p in points]


def record_artifacts(state: ServerState, call: Call) -> None:
    state.yard.tracking.store.record_artifacts(
        call.arg("run_id"), call.field("entries", list[ArtifactEntry]),
        done=call.field("done", Completion | None, default=None))


def list_artifacts(state: ServerState, call: Call) -> list[ArtifactEntry]:
    return state.yard.tracking.store.list_artifacts(call.arg("run_id"))


def search_runs(state: ServerState, call: Call) -> list[RunRecord]:
    """A parsed query (what the REST store sends)."""
    return state.yard.tracking.store.search_runs(call.field("query", RunQuery))


def count_matching(state: ServerState, call: Call) -> dict[str, int]:
    """How many runs a parsed query matches (its order, limit and offset ignored)."""
    return {"count": state.yard.tracking.store.count_matching(call.field("query", RunQuery))}


def metric_ranges(state: ServerState, call: Call) -> list[list[Any]]:
    """``[run_id, key, min, max, count]`` of each metric key logged by each run."""
    found = state.yard.tracking.store.metric_ranges(call.field("run_ids", list[str]),
                                                    call.field("keys", list[str]))
    return [[run_id, key, r.min, r.max, r.count] for (run_id, key), r in found.items()]


def run_keys(state: ServerState, call: Call) -> dict[str, list[str]]:
    """The metric, param and tag keys the runs of these experiments logged."""
    found = state.yard.tracking.store.run_keys(call.field("experiment_ids", list[int],
                                                          default=[]))
    return {str(entity): keys for entity, keys in found.items()}


def find_runs(state: ServerState, call: Call) -> list[RunRecord]:
    """The search language, as ``yard.search_runs`` takes it (``experiment`` may repeat)."""
    experiments: list[str | int] = [int(e) if e.isdigit() else e
                                    for e in call.args("experiment")]
    order = call.args("order_by")
    return state.yard.tracking.find_runs(experiments or None, call.arg("filter", default=None),
                                         order or None, call.arg("limit", int, default=None))


def ping(state: ServerState, call: Call) -> dict[str, str]:
    state.yard.tracking.store.ping()
    return {"status": "ok"}


ENDPOINTS = api_group("tracking", "Experiments, runs, params, tags, metrics and search.", [
    ("GET", "/ping", ping, "The metadata store answers"),
    ("POST", "/experiments", create_experiment, "Create an experiment"),
    ("GET", "/experiments", list_experiments, "Every experiment, oldest first"),
    ("GET", "/experiment", get_experiment, "One experiment by ?name= or ?id="),
    ("GET", "/runs/counts", count_runs, "Runs per experiment id"),
    ("GET", "/runs", find_runs,
     "Runs matching ?filter= (the search language), ?order_by=, ?experiment=, ?limit="),
    ("POST", "/runs", create_run, "Create a run with its tags"),
    ("POST", "/runs/search", search_runs, "Runs matching a parsed query"),
    ("POST", "/runs/count", count_matching, "How many runs a parsed query matches"),
    ("POST", "/runs/metric-ranges", metric_ranges, "Min, max and count of runs' metrics"),
    ("POST", "/runs/keys", run_keys, "Metric, param and tag keys the runs logged"),
    ("POST", "/runs/killed", mark_killed, "Mark runs killed if still running"),
    ("POST", "/metrics", log_metrics,
     "Append a batch of metric points (once per batch_key) and refresh heartbeats"),
    ("GET", "/runs/{run_id}", get_run, "One run with its params, tags and latest metrics"),
    ("POST", "/runs/{run_id}/end", end_run, "End a run with a status"),
    ("POST", "/runs/{run_id}/params", log_params, "Log params (immutable)"),
    ("POST", "/runs/{run_id}/tags", set_tags, "Set tags"),
    ("GET", "/runs/{run_id}/metrics", metric_history, "A metric's points (?key=)"),
    ("POST", "/runs/{run_id}/artifacts", record_artifacts,
     "Record uploaded files as the run's artifacts"),
    ("GET", "/runs/{run_id}/artifacts", list_artifacts, "The run's artifact files"),
])
