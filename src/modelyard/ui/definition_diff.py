"""What changed between two stored versions of a feature group's definition: features
added, removed or changed (each changed field with its old and new value), and the
group's other fields (entity, source, ttl, transform, ...)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Change", "DefinitionDiff", "diff_specs"]


@dataclass(frozen=True)
class Change:
    """One field that differs: ``where`` names the feature (or ``group``)."""

    where: str
    field: str
    old: str
    new: str


@dataclass(frozen=True)
class DefinitionDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _text(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _fields(where: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    return [Change(where, key, _text(old.get(key)), _text(new.get(key)))
            for key in sorted(set(old) | set(new))
            if _text(old.get(key)) != _text(new.get(key))]


def diff_specs(old: Mapping[str, Any], new: Mapping[str, Any]) -> DefinitionDiff:
    """The difference from ``old`` to ``new`` (two definitions' specs)."""
    old_features = {f["name"]: f for f in old.get("features", [])}
    new_features = {f["name"]: f for f in new.get("features", [])}
    changed = _fields("group", {k: v for k, v in old.items() if k != "features"},
                      {k: v for k, v in new.items() if k != "features"})
    for name in new_features:
        if name in old_features:
            changed += _fields(name, old_features[name], new_features[name])
    return DefinitionDiff(added=[n for n in new_features if n not in old_features],
                          removed=[n for n in old_features if n not in new_features],
                          changed=changed)
