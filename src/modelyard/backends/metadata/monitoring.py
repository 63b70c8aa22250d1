"""Monitoring's records and the store interface behind them.

A *check* of one model over one time window is stored whole as a :class:`ResultRecord`
(its summary apart, small, for trends) together with the alerts it fired, in one
transaction: a check is either stored with all its alerts or not at all. Where each alert was
sent is recorded afterwards (:meth:`MonitorStore.record_deliveries`), since sending happens
after the check is safely stored. Alert rules and where to send alerts can be kept per model
(:class:`RulesRecord`), and a version's reference profile can be replaced
(:class:`ReferenceRecord`) when it was registered without one.

The implementation is :mod:`modelyard.backends.metadata.sql.monitor_store` (tables in the
metadata database, SQLite or PostgreSQL, migration 0007).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AlertRecord", "MonitorStore", "ReferenceRecord", "ResultRecord", "RulesRecord"]


@dataclass(frozen=True)
class ResultRecord:
    result_id: str
    model: str
    version: int | None
    start_us: int  # the window checked, epoch microseconds, end exclusive
    end_us: int
    checked_at_ms: int
    rows: int
    summary: dict[str, Any]  # a few numbers for trends (drifted share, metrics, error rate)
    result: dict[str, Any]  # the whole check, JSON-safe


@dataclass(frozen=True)
class AlertRecord:
    alert_id: str
    result_id: str
    model: str
    version: int | None
    rule: str  # the rule's text form
    severity: str
    message: str
    value: float | None
    fired_at_ms: int
    evidence: dict[str, Any]
    deliveries: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RulesRecord:
    model: str
    rules: list[dict[str, Any]]  # AlertRule.to_dict()
    notify: list[str]  # notifier texts: "log", "webhook:URL", "command:CMD"
    updated_at_ms: int


@dataclass(frozen=True)
class ReferenceRecord:
    model: str
    version: int
    profile_sha256: str  # the profile's JSON in the artifact store
    rows: int
    created_at_ms: int


class MonitorStore(ABC):
    """Stored checks, alerts, alert rules and replacement reference profiles."""

    @abstractmethod
    def save_result(self, result: ResultRecord, alerts: Sequence[AlertRecord]) -> None:
        """Store a check and the alerts it fired, all in one transaction."""

    @abstractmethod
    def record_deliveries(self, alert_id: str, deliveries: Sequence[dict[str, Any]]) -> None:
        """Record where an alert was sent and how that went."""

    @abstractmethod
    def get_result(self, result_id: str) -> ResultRecord:
        """One stored check (NotFoundError when unknown)."""

    @abstractmethod
    def results(self, model: str, *, start_us: int | None = None, end_us: int | None = None,
                limit: int | None = None, full: bool = False) -> list[ResultRecord]:
        """The model's checks whose window ends in ``[start_us, end_us)``, oldest first;
        ``limit`` keeps the newest. Without ``full`` the records carry their summary only
        (``result`` is empty)."""

    @abstractmethod
    def alerts(self, model: str | None = None, *, since_ms: int | None = None,
               limit: int | None = None) -> list[AlertRecord]:
        """Fired alerts, newest first."""

    @abstractmethod
    def set_rules(self, record: RulesRecord) -> None:
        """Replace the model's stored alert rules and notifiers."""

    @abstractmethod
    def rules(self, model: str) -> RulesRecord | None:
        """The model's stored alert rules, or None."""

    @abstractmethod
    def ruled_models(self) -> list[str]:
        """Models with stored alert rules."""

    @abstractmethod
    def set_reference(self, record: ReferenceRecord) -> None:
        """Set (or replace) the reference profile of a model version."""

    @abstractmethod
    def reference(self, model: str, version: int) -> ReferenceRecord | None:
        """The reference profile set for a version, or None."""
