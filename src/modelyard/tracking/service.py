"""Experiment tracking: experiments, runs, search, comparison and artifacts."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.backends.artifacts.base import ArtifactStore
from modelyard.backends.metadata.base import (
    ArtifactEntry,
    Comparison,
    Entity,
    Experiment,
    MetricPoint,
    MetricRange,
    RunInfo,
    RunQuery,
    RunRecord,
    TrackingStore,
)
from modelyard.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from modelyard.settings import Settings
from modelyard.tracking import environment, frames
from modelyard.tracking.buffer import MetricBuffer
from modelyard.tracking.filters import parse_filter, parse_order_by
from modelyard.tracking.frames import RunComparison
from modelyard.tracking.run import Run, install_exit_hooks, validate_key

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.backends.metadata.writes import WriteStore
    from modelyard.registry.service import ModelRegistry

REQUIREMENTS_ARTIFACT = "modelyard/requirements.txt"
MIN_RUN_PREFIX = 6
_RUN_REF = re.compile(r"[0-9a-f]+")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet waited for by its parent) still answers signal 0
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


@dataclass(frozen=True)
class RunDetails:
    """A run and what surrounds it, as ``modelyard runs show`` presents it."""

    record: RunRecord
    experiment: Experiment
    artifacts: list[ArtifactEntry]
    parent: RunRecord | None
    children: list[RunRecord]


class TrackingService:
    def __init__(self, store: TrackingStore, artifacts: ArtifactStore,
                 settings: Settings) -> None:
        self.store = store
        self.artifacts = artifacts
        self.settings = settings
        self.buffer = MetricBuffer(
            store,
            interval=settings.flush_interval,
            max_points=settings.flush_max_points,
            heartbeat_every=max(settings.flush_interval, settings.heartbeat_timeout / 4),
        )
        self._local = threading.local()
        self._experiment_ids: dict[str, int] = {}
        # the model registry, for Run.log_model (set by the Yard that owns both)
        self.models: Callable[[], ModelRegistry] | None = None
        # idempotency keys and write intents (set by the Yard that owns this service)
        self.writes: WriteStore | None = None

    # --- experiments ----------------------------------------------------------------------

    def create_experiment(self, name: str, description: str = "") -> Experiment:
        validate_key("experiment", name)
        return self.store.create_experiment(name, description)

    def get_experiment(self, name_or_id: str | int) -> Experiment:
        return self.store.get_experiment(name_or_id)

    def list_experiments(self) -> list[Experiment]:
        return self.store.list_experiments()

    def count_runs(self) -> dict[int, int]:
        """Runs per experiment id."""
        return self.store.count_runs()

    def _experiment_id(self, name: str | int, *, create: bool) -> int:
        if isinstance(name, int):
            return self.store.get_experiment(name).experiment_id
        if name in self._experiment_ids:
            return self._experiment_ids[name]
        try:
            exp = self.store.get_experiment(name)
        except NotFoundError:
            if not create:
                raise
            validate_key("experiment", name)
            try:
                exp = self.store.create_experiment(name)
            except AlreadyExistsError:  # another process created it meanwhile
                exp = self.store.get_experiment(name)
        self._experiment_ids[name] = exp.experiment_id
        return exp.experiment_id

    # --- runs -----------------------------------------------------------------------------

    def _stack(self) -> list[Run]:
        stack: list[Run] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def active_run(self) -> Run | None:
        stack = self._stack()
        while stack and stack[-1].ended:
            stack.pop()
        return stack[-1] if stack else None

    def start_run(
        self,
        experiment: str | int | None = None,
        *,
        name: str | None = None,
        parent: Run | str | None = None,
        nested: bool = True,
        tags: dict[str, Any] | None = None,
        capture: bool = True,
    ) -> Run:
        """Start a run; inside another active run it becomes that run's child."""
        active = self.active_run()
        if parent is None and nested and active is not None:
            parent = active
        parent_id = parent.run_id if isinstance(parent, Run) else parent
        parent_experiment = None
        if isinstance(parent, Run):
            parent_experiment = parent.experiment_id
        elif parent_id is not None:  # NotFoundError for an unknown parent
            parent_experiment = self.store.get_run(parent_id).info.experiment_id
        if experiment is not None:
            exp_id = self._experiment_id(experiment, create=True)
        elif parent_experiment is not None:
            exp_id = parent_experiment  # a child lives with its parent by default
        else:
            exp_id = self._experiment_id(self.settings.default_experiment, create=True)
        run_id = uuid.uuid4().hex
        if name is not None:
            validate_key("run", name)
        now = _now_ms()
        info = RunInfo(
            run_id=run_id, experiment_id=exp_id, name=name or f"run-{run_id[:8]}",
            status="running", start_time=now, end_time=None, parent_run_id=parent_id,
            user=environment.current_user(), host=environment.hostname(), pid=os.getpid(),
            heartbeat=now,
        )
        all_tags = {validate_key("tag", k): str(v) for k, v in (tags or {}).items()}
        requirements = None
        if capture:
            system, requirements = environment.capture(
                git=self.settings.capture_git, packages=self.settings.capture_packages
            )
            all_tags = {**system, **all_tags}
        self.store.create_run(info, all_tags)
        run = Run(self, info)
        if requirements is not None:
            self.log_bytes(run_id, requirements, REQUIREMENTS_ARTIFACT)
        install_exit_hooks()
        self.buffer.track(run_id)
        self._stack().append(run)
        return run

    def end_run(self, run: Run, status: str) -> None:
        self.buffer.flush()
        self.store.end_run(run.run_id, status, _now_ms())
        self.buffer.untrack(run.run_id)
        stack = self._stack()
        if run in stack:
            stack.remove(run)

    def reap_dead_runs(self) -> int:
        """Show runs whose process died as killed: a stale heartbeat, or a dead local pid."""
        running = self.store.search_runs(RunQuery(statuses=["running"]))
        if not running:
            return 0
        stale_before = _now_ms() - int(self.settings.heartbeat_timeout * 1000)
        host, me = environment.hostname(), os.getpid()
        dead = [
            r.info.run_id for r in running
            if r.info.heartbeat < stale_before
            or (r.info.host == host and r.info.pid != me and not _pid_alive(r.info.pid))
        ]
        return self.store.mark_killed(dead) if dead else 0

    def resolve_run_id(self, ref: str) -> str:
        """The full id of the one run whose id is or starts with ``ref`` (6+ characters)."""
        text = ref.strip().lower()
        if not _RUN_REF.fullmatch(text):
            raise InvalidInputError(
                f"{ref!r} is not a run id: ids are hexadecimal, as `modelyard runs list` shows",
                field="run_id",
            )
        if len(text) < MIN_RUN_PREFIX:
            raise InvalidInputError(
                f"run id {ref!r} is too short: give at least {MIN_RUN_PREFIX} characters of it",
                field="run_id",
            )
        found = self.find_runs(filter=f"run_id LIKE '{text}%'", limit=5)
        if not found:
            raise NotFoundError(f"no run with an id starting with {text!r}", run_id=text)
        if any(r.info.run_id == text for r in found):
            return text
        if len(found) > 1:
            listed = ", ".join(r.info.run_id for r in found[:4])
            raise InvalidInputError(
                f"run id {text!r} is ambiguous; it starts {listed}"
                f"{' and more' if len(found) > 4 else ''}: give more characters",
                field="run_id",
            )
        return found[0].info.run_id

    def describe_run(self, ref: str) -> RunDetails:
        """One run with its experiment, artifacts, parent and children (``ref`` may be a
        unique prefix of the id)."""
        record = self.get_run(self.resolve_run_id(ref))
        info = record.info
        return RunDetails(
            record=record,
            experiment=self.store.get_experiment(info.experiment_id),
            artifacts=self.store.list_artifacts(info.run_id),
            parent=self.store.get_run(info.parent_run_id) if info.parent_run_id else None,
            children=self.store.search_runs(RunQuery(where=[
                Comparison("attribute", "parent_run_id", "=", info.run_id)])),
        )

    def get_run(self, run_id: str) -> RunRecord:
        self.buffer.flush()
        self.reap_dead_runs()
        return self.store.get_run(run_id)

    def metric_points(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every point logged for ``key`` in the run, by step then time."""
        self.buffer.flush()
        return self.store.metric_history(run_id, key)

    def metric_history(self, run_id: str, key: str) -> pd.DataFrame:
        import pandas as pd

        self.buffer.flush()
        points = self.store.metric_history(run_id, key)
        frame = pd.DataFrame(points, columns=["run_id", "key", "value", "step", "timestamp"])
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
        return frame.drop(columns=["run_id"])

    # --- search ---------------------------------------------------------------------------

    def _query(self, experiments: str | int | Sequence[str | int] | None, filter: str | None,
               order_by: Sequence[str] | str | None, limit: int | None,
               statuses: Sequence[str] = ()) -> RunQuery:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            raise InvalidInputError(f"limit must be a positive whole number, got {limit!r}",
                                    field="limit")
        where = parse_filter(filter)
        order = parse_order_by(order_by)
        if experiments is None:
            ids: list[int] = []
        else:
            names = [experiments] if isinstance(experiments, (str, int)) else list(experiments)
            ids = [self._experiment_id(n, create=False) for n in names]
        return RunQuery(experiment_ids=ids, where=where, order_by=order, limit=limit,
                        statuses=statuses)

    def find_runs(self, experiments: str | int | Sequence[str | int] | None = None,
                  filter: str | None = None, order_by: Sequence[str] | str | None = None,
                  limit: int | None = None) -> list[RunRecord]:
        """Like :meth:`search_runs`, as records instead of a DataFrame."""
        query = self._query(experiments, filter, order_by, limit)
        self.buffer.flush()
        self.reap_dead_runs()
        return self.store.search_runs(query)

    def page_runs(self, experiments: str | int | Sequence[str | int] | None = None,
                  filter: str | None = None, order_by: Sequence[str] | str | None = None,
                  *, offset: int = 0, limit: int = 50) -> tuple[list[RunRecord], int]:
        """One page of the runs matching ``filter`` (``limit`` of them from ``offset``,
        in order) and how many match in all; the database does the paging."""
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidInputError(f"offset must be a whole number >= 0, got {offset!r}",
                                    field="offset")
        query = self._query(experiments, filter, order_by, limit)
        self.buffer.flush()
        self.reap_dead_runs()
        page = RunQuery(query.experiment_ids, query.where, query.order_by, query.statuses,
                        limit, offset)
        return self.store.search_runs(page), self.store.count_matching(query)

    def metric_ranges(self, run_ids: Sequence[str], keys: Sequence[str]
                      ) -> dict[tuple[str, str], MetricRange]:
        """Min, max and count over each metric's whole history, per run and key."""
        for key in keys:
            validate_key("metric", key)
        self.buffer.flush()
        return self.store.metric_ranges(run_ids, keys)

    def run_keys(self, experiments: str | int | Sequence[str | int] | None = None
                 ) -> dict[Entity, list[str]]:
        """The metric, param and tag keys the runs of these experiments logged."""
        if experiments is None:
            ids: list[int] = []
        else:
            names = [experiments] if isinstance(experiments, (str, int)) else list(experiments)
            ids = [self._experiment_id(n, create=False) for n in names]
        return self.store.run_keys(ids)

    def search_runs(self, experiments: str | int | Sequence[str | int] | None = None,
                    filter: str | None = None, order_by: Sequence[str] | str | None = None,
                    limit: int | None = None) -> pd.DataFrame:
        """Runs matching ``filter`` as a DataFrame: one row per run, one column per
        attribute, ``metrics.*`` (latest value), ``params.*`` and ``tags.*``."""
        records = self.find_runs(experiments, filter, order_by, limit)
        return self.runs_frame(records)

    def runs_frame(self, records: Sequence[RunRecord]) -> pd.DataFrame:
        names = {e.experiment_id: e.name for e in self.store.list_experiments()}
        return frames.runs_frame(records, names)

    def best_run(self, experiment: str | int, metric: str, *, mode: str = "max",
                 filter: str | None = None) -> RunRecord:
        """The run with the highest (``mode="max"``) or lowest value of ``metric``."""
        if mode not in ("max", "min"):
            raise InvalidInputError(f"mode must be 'max' or 'min', got {mode!r}", field="mode")
        validate_key("metric", metric)
        key = metric.replace('"', '\\"')
        clause = f'metrics."{key}" >= {-sys.float_info.max!r}'
        runs = self.find_runs(
            experiment, f"{filter} and {clause}" if filter else clause,
            [f'metrics."{key}" {"desc" if mode == "max" else "asc"}'], limit=1,
        )
        if not runs:
            raise NotFoundError(
                f"no run in experiment {experiment!r} has logged the metric {metric!r}"
                + (f" and matches {filter!r}" if filter else ""),
                experiment=experiment, metric=metric,
            )
        return runs[0]

    def compare_runs(self, run_ids: Iterable[str]) -> RunComparison:
        records = [self.get_run(r) for r in run_ids]
        if len(records) < 2:
            raise InvalidInputError("compare needs at least two runs", field="run_ids")
        return frames.compare(records)

    # --- artifacts ------------------------------------------------------------------------

    def log_bytes(self, run_id: str, data: bytes, name: str) -> ArtifactEntry:
        path = _artifact_name(name)
        sha, size = self.artifacts.put_bytes(data)
        entry = ArtifactEntry(path, sha, size)
        self.store.record_artifacts(run_id, [entry])
        return entry

    def log_artifact(self, run_id: str, path: Path, name: str | None, *,
                     idempotency_key: str | None = None) -> list[ArtifactEntry]:
        """Keep a file or a folder's files as the run's artifacts. The files are stored,
        each named in the write's intent first, then recorded in one transaction with the
        idempotency key; under a key already used for the same names and contents, the
        entries first recorded are returned and nothing is written."""
        from modelyard.idempotency import guard, rollback

        if not path.exists():
            raise InvalidInputError(f"no file or folder at {path}", field="path")
        base = _artifact_name(name or path.name)
        if path.is_file():
            files = [(path, base)]
        else:
            files = [(p, f"{base}/{p.relative_to(path).as_posix()}")
                     for p in sorted(path.rglob("*")) if p.is_file()]
        if self.writes is None:
            if idempotency_key is not None:
                raise InvalidInputError("idempotency keys need a Yard (modelyard.connect())",
                                        field="idempotency_key")
            entries = [ArtifactEntry(rel, *self.artifacts.put_file(file))
                       for file, rel in files]
            self.store.record_artifacts(run_id, entries)  # one transaction: all or none
            return entries
        content = None if idempotency_key is None else [
            (rel, _file_sha256(file)) for file, rel in files]
        write = guard(self.writes, "log_artifact", idempotency_key, files=content)
        done = write.replay() or write.begin(
            "log_artifact", run_id, {"blobs": [sha for _, sha in content or []]},
            lambda held: rollback(self.writes, held) if self.writes else None)
        if done is not None:
            return [ArtifactEntry(str(e["path"]), str(e["sha256"]), int(e["size"]))
                    for e in done["entries"]]
        assert write.intent is not None
        try:
            entries = [ArtifactEntry(rel, *self.artifacts.put_file(file)) for file, rel in files]
            if content is None:  # named after the fact: the intent's start time covers them
                write.extend(*[e.sha256 for e in entries])
            # one transaction: all the rows, the key with them, the intent's end
            self.store.record_artifacts(run_id, entries, done=write.completion(
                run_id=run_id, entries=[dict(e.__dict__) for e in entries]))
        except BaseException:
            with contextlib.suppress(Exception):  # the write's own error matters more
                rollback(self.writes, write.intent, "failed")
            raise
        return entries

    def list_artifacts(self, run_id: str) -> list[ArtifactEntry]:
        return self.store.list_artifacts(run_id)

    def _entries(self, run_id: str, name: str) -> list[ArtifactEntry]:
        name = name.strip("/")
        found = [e for e in self.store.list_artifacts(run_id)
                 if e.path == name or e.path.startswith(name + "/") or not name]
        if not found:
            raise NotFoundError(f"run {run_id} has no artifact {name!r}",
                                run_id=run_id, artifact=name)
        return found

    def read_artifact(self, run_id: str, name: str) -> bytes:
        """The bytes of one artifact file, verified against its recorded sha256."""
        entries = self._entries(run_id, name)
        exact = [e for e in entries if e.path == name.strip("/")]
        if not exact:
            raise InvalidInputError(f"{name!r} is a folder; download it instead",
                                    field="name")
        return self.artifacts.get_bytes(exact[0].sha256)

    def download_artifacts(self, run_id: str, name: str, dest: str | os.PathLike[str]) -> Path:
        """Copy an artifact file or folder under ``dest``; each file's hash is verified."""
        target = Path(dest)
        for e in self._entries(run_id, name):
            self.artifacts.copy_to(e.sha256, target / e.path)
        return target / name.strip("/") if name.strip("/") else target


def _file_sha256(path: Path) -> str:
    import hashlib

    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _artifact_name(name: str) -> str:
    clean = name.replace("\\", "/").strip("/")
    parts = clean.split("/")
    if not clean or any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(
            f"artifact name {name!r} is not a clean relative path", field="name"
        )
    return clean
