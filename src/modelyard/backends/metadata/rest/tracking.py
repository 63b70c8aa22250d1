"""The tracking store over HTTP: each method is one request to a modelyard server."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from modelyard.backends.metadata.base import (
    ArtifactEntry,
    Entity,
    Experiment,
    MetricPoint,
    MetricRange,
    RunInfo,
    RunQuery,
    RunRecord,
    TrackingStore,
)
from modelyard.backends.metadata.rest.connection import RestConnection
from modelyard.backends.metadata.wire import decode, encode

if TYPE_CHECKING:
    from modelyard.backends.metadata.writes import Completion

__all__ = ["RestTrackingStore", "points_from_wire", "points_to_wire"]


def points_to_wire(points: Sequence[MetricPoint]) -> list[list[object]]:
    """Metric points as compact rows ``[run_id, key, value, step, timestamp]``."""
    return [[p.run_id, p.key, p.value, p.step, p.timestamp] for p in points]


def points_from_wire(rows: object) -> list[MetricPoint]:
    """The points of :func:`points_to_wire`; InvalidInputError naming the first bad one."""
    if not isinstance(rows, list):
        return decode(list[MetricPoint], rows, "points")  # type: ignore[no-any-return]
    points = []
    for i, row in enumerate(rows):  # a row of the exact types: no generic decoding
        if isinstance(row, list) and len(row) == 5:
            run_id, key, value, step, timestamp = row
            if (type(run_id) is str and type(key) is str and type(value) in (float, int)
                    and type(step) is int and type(timestamp) is int):
                points.append(MetricPoint(run_id, key, float(value), step, timestamp))
                continue
            row = dict(zip(MetricPoint._fields, row, strict=True))
        points.append(decode(MetricPoint, row, f"points[{i}]"))
    return points


class RestTrackingStore(TrackingStore):
    keys_batches = True  # an answer lost to a restarting server must not double a batch

    def __init__(self, connection: RestConnection) -> None:
        self.http = connection

    def create_experiment(self, name: str, description: str = "") -> Experiment:
        found = self.http.call("POST", "/experiments",
                               {"name": name, "description": description})
        return decode(Experiment, found)  # type: ignore[no-any-return]

    def get_experiment(self, name_or_id: str | int) -> Experiment:
        params = ({"id": name_or_id} if isinstance(name_or_id, int)
                  else {"name": name_or_id})
        return decode(Experiment, self.http.call(  # type: ignore[no-any-return]
            "GET", "/experiment", params=params))

    def list_experiments(self) -> list[Experiment]:
        return decode(list[Experiment], self.http.call(  # type: ignore[no-any-return]
            "GET", "/experiments"))

    def count_runs(self) -> dict[int, int]:
        found = self.http.call("GET", "/runs/counts")
        return {int(k): int(v) for k, v in decode(dict, found).items()}

    def create_run(self, info: RunInfo, tags: Mapping[str, str]) -> None:
        self.http.call("POST", "/runs", {"info": encode(info), "tags": dict(tags)})

    def get_run(self, run_id: str) -> RunRecord:
        return decode(RunRecord, self.http.call(  # type: ignore[no-any-return]
            "GET", f"/runs/{run_id}"))

    def end_run(self, run_id: str, status: str, end_time: int) -> None:
        self.http.call("POST", f"/runs/{run_id}/end",
                       {"status": status, "end_time": end_time}, idempotent=True)

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        if params:  # logging the same values again is no change: safe to retry
            self.http.call("POST", f"/runs/{run_id}/params", {"params": dict(params)},
                           idempotent=True)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            self.http.call("POST", f"/runs/{run_id}/tags", {"tags": dict(tags)},
                           idempotent=True)

    def log_metrics(self, points: Sequence[MetricPoint], heartbeat: Iterable[str] = (),
                    batch_key: str | None = None) -> None:
        beat = sorted(set(heartbeat))
        if not points and not beat:
            return
        self.http.call("POST", "/metrics", {
            "points": points_to_wire(points), "heartbeat": beat, "batch_key": batch_key},
            idempotent=batch_key is not None or not points)

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        return points_from_wire(self.http.call("GET", f"/runs/{run_id}/metrics",
                                               params={"key": key}))

    def record_artifacts(self, run_id: str, entries: Sequence[ArtifactEntry],
                         done: Completion | None = None) -> None:
        self.http.call("POST", f"/runs/{run_id}/artifacts",
                       {"entries": encode(list(entries)),
                        "done": None if done is None else encode(done)},
                       idempotent=done is None)  # rows replaced by path; a key is stored once

    def list_artifacts(self, run_id: str) -> list[ArtifactEntry]:
        return decode(list[ArtifactEntry], self.http.call(  # type: ignore[no-any-return]
            "GET", f"/runs/{run_id}/artifacts"))

    def search_runs(self, query: RunQuery) -> list[RunRecord]:
        return decode(list[RunRecord], self.http.call(  # type: ignore[no-any-return]
            "POST", "/runs/search", {"query": encode(query)}, idempotent=True))

    def count_matching(self, query: RunQuery) -> int:
        found = self.http.call("POST", "/runs/count", {"query": encode(query)}, idempotent=True)
        return int(decode(int, found["count"], "count"))

    def metric_ranges(self, run_ids: Sequence[str], keys: Sequence[str]
                      ) -> dict[tuple[str, str], MetricRange]:
        rows = self.http.call("POST", "/runs/metric-ranges",
                              {"run_ids": list(run_ids), "keys": list(keys)}, idempotent=True)
        return {(str(run_id), str(key)): MetricRange(float(low), float(high), int(count))
                for run_id, key, low, high, count in rows}

    def run_keys(self, experiment_ids: Sequence[int] = ()) -> dict[Entity, list[str]]:
        found = self.http.call("POST", "/runs/keys", {"experiment_ids": list(experiment_ids)},
                               idempotent=True)
        return {entity: [str(k) for k in found.get(entity, [])]  # type: ignore[misc]
                for entity in ("metric", "param", "tag")}

    def mark_killed(self, run_ids: Sequence[str]) -> int:
        found = self.http.call("POST", "/runs/killed", {"run_ids": list(run_ids)},
                               idempotent=True)
        return int(decode(int, found["count"], "count"))

    def ping(self) -> None:
        self.http.call("GET", "/ping")
