"""The feature side of the metadata store: versioned definitions, training-set records,
ingestion profiles and the log of forgotten entities."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.backends.metadata.writes import Completion


@dataclass(frozen=True)
class DefinitionRecord:
    kind: str  # "entity" | "source" | "feature_group"
    name: str
    version: int
    content_hash: str
    spec: dict[str, Any]
    created_at: int  # epoch milliseconds


@dataclass(frozen=True)
class TrainingSetRecord:
    training_set_id: str
    created_at: int
    spec: dict[str, Any]  # feature versions, table commits, spine hash, label, as_of, rows


class FeatureRegistryStore(ABC):
    @abstractmethod
    def put_definition(self, kind: str, name: str, content_hash: str, spec: dict[str, Any]
                       ) -> tuple[DefinitionRecord, bool]:
        """Store a new version unless the latest has this hash; (record, created)."""

    @abstractmethod
    def get_definition(self, kind: str, name: str, version: int | None = None
                       ) -> DefinitionRecord:
        """The given version, or the latest; NotFoundError when there is none."""

    @abstractmethod
    def list_definitions(self, kind: str | None = None) -> list[DefinitionRecord]:
        """The latest version of every definition (of one kind), by kind and name."""

    @abstractmethod
    def definition_history(self, kind: str, name: str) -> list[DefinitionRecord]: ...

    @abstractmethod
    def save_training_set(self, record: TrainingSetRecord) -> None:
        """Idempotent: the id is a content hash, so the same set saved twice is one row."""

    @abstractmethod
    def get_training_set(self, training_set_id: str) -> TrainingSetRecord: ...

    @abstractmethod
    def save_profile(self, source: str, commit_id: str, profile: dict[str, Any],
                     done: Completion | None = None) -> None:
        """Store an ingestion's profile (with ``done``, in the same transaction)."""

    @abstractmethod
    def get_profile(self, source: str, commit_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def log_forget(self, entity: str, keys: int, rows_removed: int, details: dict[str, Any],
                   done: Completion | None = None) -> None: ...

    @abstractmethod
    def forget_log(self, entity: str | None = None) -> list[dict[str, Any]]: ...
