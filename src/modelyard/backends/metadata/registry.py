"""The model registry's records and the store interface behind them.

A *model* is a name; its *versions* are numbered from 1 in the order they were registered and
never change once written (the artifact's sha256 is recorded with them). *Aliases*
(``production``, ``staging``...) point at one version each; every move of an alias is kept in
the alias history, written in the same transaction as the move. Evaluations (metrics per data
set) and gate reports are kept per version.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from modelyard.backends.metadata.writes import Completion

AliasAction = Literal["promote", "force", "rollback", "remove"]


@dataclass(frozen=True)
class ModelRecord:
    name: str
    description: str
    gates: list[dict[str, Any]]  # the gates declared in code (their to_dict())
    created_at: int  # epoch milliseconds
    updated_at: int


@dataclass(frozen=True)
class VersionRecord:
    name: str
    version: int  # 0 until the store assigns the next number
    flavor: str
    artifact_sha256: str
    artifact_size: int
    onnx_sha256: str | None
    run_id: str | None
    training_set_id: str | None
    spec: dict[str, Any]  # signature, libraries, requirements, twin, input example...
    created_at: int
    created_by: str


@dataclass(frozen=True)
class AliasEvent:
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    action: AliasAction
    actor: str
    reason: str
    at: int
    report_id: str | None = None
    id: int = 0  # assigned by the store


@dataclass(frozen=True)
class EvaluationRecord:
    name: str
    version: int
    dataset: str
    evaluation: dict[str, Any]  # Evaluation.to_dict(), plus fairness measurements
    plots: dict[str, str] = field(default_factory=dict)  # file name -> artifact sha256
    created_at: int = 0


@dataclass(frozen=True)
class GateReportRecord:
    report_id: str
    name: str
    version: int
    alias: str
    passed: bool
    forced: bool
    report: dict[str, Any]  # GateReport.to_dict()
    created_at: int


class AliasWatch(ABC):
    """Alias moves announced as they commit (where the store can: PostgreSQL's NOTIFY)."""

    @abstractmethod
    def wait(self, timeout: float) -> set[str]:
        """The models whose aliases moved within ``timeout`` seconds (empty if none, or
        if the announcements cannot be read: the caller polls anyway)."""

    @abstractmethod
    def close(self) -> None: ...


class AliasAuthority(ABC):
    """Where alias moves are decided when it is not this process: a modelyard server runs
    the gates and moves the alias, so that no client can skip them. Stores that a client
    reaches directly (SQL) have none: the registry service decides itself."""

    @abstractmethod
    def promote(self, name: str, version: int, alias: str, *, force: bool, reason: str,
                gates: list[dict[str, Any]], idempotency_key: str | None,
                actor: str | None = None) -> dict[str, Any]:
        """Run the gates and move the alias on the server; the promotion's wire form
        (``report`` a GateReport dict, ``event`` an AliasEvent). GateFailedError when the
        gates refuse. ``actor`` is who the client says acts; an authenticating server
        records its own identity instead."""

    @abstractmethod
    def rollback(self, name: str, alias: str, *, reason: str,
                 actor: str | None = None) -> AliasEvent: ...


class RegistryStore(ABC):
    """Models, versions, aliases with their history, evaluations and gate reports."""

    def alias_watch(self) -> AliasWatch | None:
        """A watch on alias moves, or None where the store cannot announce them (a model
        server polls then)."""
        return None

    def authority(self) -> AliasAuthority | None:
        """Who moves aliases for this store's clients; None: the registry service itself."""
        return None

    @abstractmethod
    def ensure_model(self, name: str, description: str | None = None,
                     gates: list[dict[str, Any]] | None = None) -> ModelRecord:
        """The model, created if new; a given description or gate list replaces the stored."""

    @abstractmethod
    def get_model(self, name: str) -> ModelRecord:
        """Raises NotFoundError for an unknown name."""

    @abstractmethod
    def list_models(self) -> list[ModelRecord]: ...

    @abstractmethod
    def add_version(self, record: VersionRecord, done: Completion | None = None
                    ) -> VersionRecord:
        """Store a version under the next free number (the model is created if new), in one
        transaction (with ``done``, its result given the ``version``); returns it with its
        number."""

    @abstractmethod
    def get_version(self, name: str, version: int) -> VersionRecord: ...

    @abstractmethod
    def list_versions(self, name: str) -> list[VersionRecord]:
        """Oldest first."""

    @abstractmethod
    def aliases(self, name: str) -> dict[str, int]: ...

    @abstractmethod
    def move_alias(self, event: AliasEvent, done: Completion | None = None) -> bool:
        """Point ``event.alias`` at ``event.to_version`` (None removes it) only if it still
        points at ``event.from_version`` (None: not set), and record the event, atomically
        (with ``done``, its result given the history row's ``event_id``).
        False when another writer moved the alias first (nothing is written then)."""

    @abstractmethod
    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Oldest first."""

    @abstractmethod
    def save_evaluation(self, record: EvaluationRecord) -> None:
        """Insert or replace the evaluation of a version on a data set."""

    @abstractmethod
    def evaluations(self, name: str, version: int) -> list[EvaluationRecord]: ...

    @abstractmethod
    def save_gate_report(self, record: GateReportRecord) -> None: ...

    @abstractmethod
    def gate_reports(self, name: str, version: int) -> list[GateReportRecord]:
        """Oldest first."""
