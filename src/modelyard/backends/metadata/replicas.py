"""Live model servers ("replicas") and what each serves, reported by their heartbeats.

Every ``modelyard serve`` process writes one :class:`ReplicaRecord` when it starts, again
every heartbeat and right after it swaps a version in, and removes it when it stops. A
replica whose heartbeat is older than the liveness window is considered gone (killed, or its
machine lost). ``modelyard deployments`` lists them, and a promotion can wait until every
live replica following the alias serves the new version. The implementation is
:mod:`modelyard.backends.metadata.sql.replica_store`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

__all__ = ["ReplicaRecord", "ReplicaStore", "ServedSlot"]


@dataclass(frozen=True)
class ServedSlot:
    """One model slot of a replica: the reference it follows and the version it serves."""

    model: str
    role: str  # primary | canary | shadow
    reference: str  # "claims-model@production", "claims-model:3"
    version: int | None  # None until a version is loaded


@dataclass(frozen=True)
class ReplicaRecord:
    replica_id: str
    host: str
    pid: int
    address: str | None  # where it answers, e.g. http://10.0.0.7:8000
    started_at_ms: int
    heartbeat_at_ms: int
    serving: tuple[ServedSlot, ...] = field(default_factory=tuple)

    def version_of(self, model: str, role: str = "primary") -> int | None:
        for slot in self.serving:
            if slot.model == model and slot.role == role:
                return slot.version
        return None

    def follows(self, model: str, reference: str) -> bool:
        return any(s.model == model and s.role == "primary" and s.reference == reference
                   for s in self.serving)


class ReplicaStore(ABC):
    @abstractmethod
    def beat(self, record: ReplicaRecord) -> None:
        """Write ``record`` as its replica's current state (insert or replace)."""

    @abstractmethod
    def retire(self, replica_id: str) -> None:
        """Remove a replica that stops (nothing happens if it is unknown)."""

    @abstractmethod
    def replicas(self, *, alive_since_ms: int | None = None) -> list[ReplicaRecord]:
        """The replicas whose last heartbeat is at or after ``alive_since_ms`` (all when
        None), oldest first."""

    @abstractmethod
    def prune(self, before_ms: int) -> int:
        """Remove replicas silent since before ``before_ms``; how many were removed."""
