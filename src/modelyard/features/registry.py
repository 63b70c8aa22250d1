"""Applying definitions like Terraform: plan what would change, apply it as new versions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from modelyard.backends.metadata.feature_registry import DefinitionRecord, FeatureRegistryStore
from modelyard.errors import InvalidDefinitionError
from modelyard.features.definitions import (
    Definition,
    Entity,
    FeatureGroup,
    Source,
    content_hash,
)
from modelyard.features.request import RequestFeatureGroup
from modelyard.features.request import check as check_request_group
from modelyard.features.sql import SourceColumns, check_expressions

Action = Literal["create", "update", "unchanged"]
ColumnsOf = Callable[[FeatureGroup], "SourceColumns | None"]
_ORDER = {"entity": 0, "source": 1, "feature_group": 2, "request_group": 3}
AnyDefinition = Definition | RequestFeatureGroup


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: Action
    version: int  # the version after apply (the current one when unchanged)
    previous: int | None  # the version before, if any
    content_hash: str

    def __str__(self) -> str:
        word = self.kind.replace("_", " ")
        if self.action == "create":
            return f"+ create {word} {self.name} (v{self.version})"
        if self.action == "update":
            return f"~ update {word} {self.name} (v{self.previous} -> v{self.version})"
        return f"  unchanged {word} {self.name} (v{self.version})"


def _expand(objects: Iterable[AnyDefinition]) -> list[AnyDefinition]:
    """The objects plus the entities and sources their groups embed, each name once."""
    found: dict[tuple[str, str], AnyDefinition] = {}
    for obj in objects:
        if not isinstance(obj, (Entity, Source, FeatureGroup, RequestFeatureGroup)):
            raise InvalidDefinitionError(
                f"cannot apply {obj!r}: expected Entity, Source, FeatureGroup or "
                "RequestFeatureGroup", field="objects")
        parts: list[AnyDefinition] = [obj]
        if isinstance(obj, FeatureGroup):
            parts = [obj.entity, obj.source, obj]
        for part in parts:
            key = (part.kind, part.name)
            if key in found and found[key] != part:
                raise InvalidDefinitionError(
                    f"two different definitions named {part.name!r} ({part.kind}) were given "
                    "in one apply", field="objects")
            found[key] = part
    return sorted(found.values(), key=lambda d: (_ORDER[d.kind], d.name))


def feature_expressions(group: FeatureGroup) -> list[tuple[str, str, str | None]]:
    """(expression, owner, window function) of each feature of the group, as bound to the
    source's columns: a window feature's inner expression with its aggregate."""
    items: list[tuple[str, str, str | None]] = []
    for feature in group.features:
        where = f"feature group {group.name!r}, feature {feature.name!r}"
        if feature.window is None:
            items.append((feature.expr, where, None))
        else:
            func, inner = feature.aggregation()
            if inner is not None:
                items.append((inner, where, func))
    return items


def validate_group(group: FeatureGroup, columns: SourceColumns | None) -> None:
    """Refuse a group whose expressions do not parse, are not row-level, or (with the
    source's columns known) name a column the source lacks or do not type-check."""
    check_expressions(feature_expressions(group), columns)
    declared = group.source.declared_schema
    if declared:
        missing = [k for k in group.entity.keys if k not in declared]
        if missing and group.transform is None:
            raise InvalidDefinitionError(
                f"feature group {group.name!r}: source {group.source.name!r} declares no "
                f"column {', '.join(missing)} for the entity's key", field="entity")


class DefinitionRegistry:
    def __init__(self, store: FeatureRegistryStore) -> None:
        self.store = store

    def plan(self, objects: Sequence[AnyDefinition], columns_of: ColumnsOf | None = None
             ) -> list[Change]:
        """What applying would change; refuses a malformed definition. ``columns_of`` tells
        the columns a group's expressions are bound to (None: not known before ingestion)."""
        changes = []
        for obj in _expand(objects):
            if isinstance(obj, FeatureGroup):
                validate_group(obj, None if columns_of is None else columns_of(obj))
            elif isinstance(obj, RequestFeatureGroup):
                check_request_group(obj)
            digest = content_hash(obj.spec())
            latest = next(iter(self._latest(obj.kind, obj.name)), None)
            if latest is None:
                changes.append(Change(obj.kind, obj.name, "create", 1, None, digest))
            elif latest.content_hash == digest:
                changes.append(Change(obj.kind, obj.name, "unchanged", latest.version,
                                      latest.version, digest))
            else:
                changes.append(Change(obj.kind, obj.name, "update", latest.version + 1,
                                      latest.version, digest))
        return changes

    def apply(self, objects: Sequence[AnyDefinition], columns_of: ColumnsOf | None = None
              ) -> list[Change]:
        planned = self.plan(objects, columns_of)  # validates everything before anything is stored
        applied = []
        for obj, change in zip(_expand(objects), planned, strict=True):
            record, created = self.store.put_definition(obj.kind, obj.name,
                                                        change.content_hash, obj.spec())
            action: Action = change.action if created else "unchanged"
            previous = change.previous if created else record.version
            applied.append(Change(obj.kind, obj.name, action, record.version, previous,
                                  record.content_hash))
        return applied

    def _latest(self, kind: str, name: str) -> list[DefinitionRecord]:
        from modelyard.errors import NotFoundError

        try:
            return [self.store.get_definition(kind, name)]
        except NotFoundError:
            return []

    def group(self, name: str, version: int | None = None) -> tuple[FeatureGroup, int]:
        record = self.store.get_definition("feature_group", name, version)
        return FeatureGroup.from_spec(record.spec), record.version

    def request_group(self, name: str, version: int | None = None
                      ) -> tuple[RequestFeatureGroup, int]:
        record = self.store.get_definition("request_group", name, version)
        return RequestFeatureGroup.from_spec(record.spec), record.version

    def any_group(self, name: str, version: int | None = None
                  ) -> tuple[FeatureGroup | RequestFeatureGroup, int]:
        """The feature group, or else the request feature group, of that name."""
        from modelyard.errors import NotFoundError

        try:
            return self.group(name, version)
        except NotFoundError as first:
            try:
                return self.request_group(name, version)
            except NotFoundError:
                raise first from None

    def source(self, name: str) -> Source:
        return Source.from_spec(self.store.get_definition("source", name).spec)

    def entity(self, name: str) -> Entity:
        return Entity.from_spec(self.store.get_definition("entity", name).spec)

    def groups(self) -> list[tuple[FeatureGroup, int]]:
        return [(FeatureGroup.from_spec(r.spec), r.version)
                for r in self.store.list_definitions("feature_group")]
