"""The tracking side of the metadata store: its records and its interface.

A backend implements :class:`TrackingStore`; the SQLAlchemy store covers SQLite and
PostgreSQL, the REST store (``rest/``) a modelyard server. Records are plain frozen
dataclasses so they cross process and network boundaries unchanged (``wire.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from modelyard.backends.metadata.writes import Completion

RunStatus = Literal["running", "finished", "failed", "killed"]
RUN_STATUSES: tuple[RunStatus, ...] = ("running", "finished", "failed", "killed")
TERMINAL_STATUSES: frozenset[str] = frozenset({"finished", "failed", "killed"})


@dataclass(frozen=True)
class Experiment:
    experiment_id: int
    name: str
    description: str
    created_at: int  # epoch milliseconds


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: int
    name: str
    status: str
    start_time: int  # epoch milliseconds
    end_time: int | None
    parent_run_id: str | None
    user: str
    host: str
    pid: int
    heartbeat: int


@dataclass(frozen=True)
class LatestMetric:
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True)
class RunRecord:
    """One run with everything logged to it (metrics as their latest value)."""

    info: RunInfo
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, LatestMetric] = field(default_factory=dict)


class MetricPoint(NamedTuple):
    run_id: str
    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True)
class ArtifactEntry:
    path: str  # relative path inside the run, '/'-separated
    sha256: str
    size: int


# --- search -------------------------------------------------------------------------------

Entity = Literal["metric", "param", "tag", "attribute"]
SEARCHABLE_ATTRIBUTES = ("run_id", "name", "status", "start_time", "end_time",
                         "user", "host", "parent_run_id")


@dataclass(frozen=True)
class Comparison:
    """``entity.key op value``, e.g. metrics.r2 > 0.9 or params.max_depth IN ('3', '5')."""

    entity: Entity
    key: str
    op: str  # = != < <= > >= LIKE ILIKE IN NOT IN
    value: float | str | tuple[str, ...] | tuple[float, ...]


@dataclass(frozen=True)
class OrderBy:
    entity: Entity
    key: str
    descending: bool = False


@dataclass(frozen=True)
class RunQuery:
    experiment_ids: Sequence[int] = ()
    where: Sequence[Comparison] = ()  # AND-ed together
    order_by: Sequence[OrderBy] = ()
    statuses: Sequence[str] = ()
    limit: int | None = None
    offset: int = 0  # matching runs skipped before the first returned (a page's start)


@dataclass(frozen=True)
class MetricRange:
    """The smallest and largest value a run logged for one metric key."""

    min: float
    max: float
    count: int


class TrackingStore(ABC):
    """Experiments, runs, params, tags, metrics and artifact records."""

    #: whether the answer of a write can be lost after the write landed (a store across a
    #: network): the metric buffer then keys its batches, so a batch sent again is not
    #: logged twice
    keys_batches: bool = False

    @abstractmethod
    def create_experiment(self, name: str, description: str = "") -> Experiment: ...

    @abstractmethod
    def get_experiment(self, name_or_id: str | int) -> Experiment:
        """Raises NotFoundError when there is none."""

    @abstractmethod
    def list_experiments(self) -> list[Experiment]: ...

    @abstractmethod
    def count_runs(self) -> dict[int, int]:
        """Number of runs per experiment id (experiments without runs are absent)."""

    @abstractmethod
    def create_run(self, info: RunInfo, tags: Mapping[str, str]) -> None: ...

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord: ...

    @abstractmethod
    def end_run(self, run_id: str, status: str, end_time: int) -> None: ...

    @abstractmethod
    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """All or nothing; ParamConflictError if a key is stored with another value."""

    @abstractmethod
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    @abstractmethod
    def log_metrics(self, points: Sequence[MetricPoint], heartbeat: Iterable[str] = (),
                    batch_key: str | None = None) -> None:
        """Append points (any runs) in one transaction and refresh the runs' heartbeat.
        A ``batch_key`` already stored by an earlier call makes the points a no-op (a batch
        retried after its answer was lost is not logged twice); keys are kept a day."""

    @abstractmethod
    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]: ...

    @abstractmethod
    def record_artifacts(self, run_id: str, entries: Sequence[ArtifactEntry],
                         done: Completion | None = None) -> None:
        """Record a run's artifact files in one transaction (with ``done`` in it)."""

    @abstractmethod
    def list_artifacts(self, run_id: str) -> list[ArtifactEntry]: ...

    @abstractmethod
    def search_runs(self, query: RunQuery) -> list[RunRecord]: ...

    @abstractmethod
    def count_matching(self, query: RunQuery) -> int:
        """How many runs match ``query`` (its order, limit and offset ignored)."""

    @abstractmethod
    def metric_ranges(self, run_ids: Sequence[str], keys: Sequence[str]
                      ) -> dict[tuple[str, str], MetricRange]:
        """Min, max and count of each metric key's history for each run (pairs never
        logged are absent)."""

    @abstractmethod
    def run_keys(self, experiment_ids: Sequence[int] = ()) -> dict[Entity, list[str]]:
        """The metric, param and tag keys logged by the runs of these experiments (all
        when empty), sorted, under ``metric``, ``param`` and ``tag``."""

    @abstractmethod
    def mark_killed(self, run_ids: Sequence[str]) -> int:
        """Mark these runs killed if they are still running (their process died)."""

    @abstractmethod
    def ping(self) -> None:
        """Return if the store answers (a cheap read that takes no write lock); raise
        StorageError saying what is wrong otherwise."""
