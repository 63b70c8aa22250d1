"""Requests by entity key: the server looks the model's features up itself.

Which stored features a version takes is decided once, when it is loaded
(:func:`feature_source`): the exact feature versions of its training set when one is recorded
(so production reads what training read), else its input names found in the feature store's
groups. Inputs no group holds must come with the request, in the entity row itself, as do the
request values that request-time features need. :func:`gather` then makes one online lookup
for all rows and merges its values with the rows' own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError
from modelyard.serving.inputs import Fields, Problem, invalid, key_name

if TYPE_CHECKING:
    from datetime import datetime

    from modelyard.backends.metadata.registry import VersionRecord
    from modelyard.features.online import OnlineService
    from modelyard.features.service import FeatureService
    from modelyard.serving.inputs import InputDecoder

__all__ = ["FeatureSource", "check_rows", "feature_source", "gather", "whole_key"]


@dataclass(frozen=True)
class FeatureSource:
    """Where a version's inputs come from on the entity path."""

    refs: tuple[str, ...]  # "group@vN:feature", looked up online
    stored: tuple[str, ...]  # the input names those refs give
    from_request: tuple[str, ...]  # inputs the entity row carries itself
    key_columns: tuple[str, ...]  # entity keys the lookup needs
    request_columns: tuple[str, ...]  # request values request-time features need

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.refs), "keys": list(self.key_columns),
                "request": sorted({*self.from_request, *self.request_columns})}


def feature_source(features: FeatureService, online: OnlineService, record: VersionRecord,
                   inputs: Sequence[str]) -> FeatureSource | None:
    """The feature plan of a version, or None when none of its inputs is a stored feature
    (it can then be called with ``instances`` only)."""
    candidates = _training_refs(features, record) or _refs_by_name(features, inputs)
    wanted = set(inputs)
    refs = [ref for ref in candidates if ref.split(":", 1)[1] in wanted]
    if not refs:
        return None
    plan = online.plan(refs)
    stored = tuple(name for name in plan.outputs if name in wanted)
    from_request = tuple(name for name in inputs if name not in set(stored))
    return FeatureSource(tuple(plan.refs), stored, from_request, plan.key_columns,
                         plan.request_columns)


def _training_refs(features: FeatureService, record: VersionRecord) -> list[str]:
    if record.training_set_id is None:
        return []
    try:
        spec = features.get_training_set(record.training_set_id).spec
    except NotFoundError:
        return []
    return [str(ref) for ref in spec.get("features", [])]


def _refs_by_name(features: FeatureService, inputs: Sequence[str]) -> list[str]:
    """``group@vN:name`` for each input one latest group version holds; an input two groups
    hold is ambiguous and refused."""
    holders: dict[str, list[str]] = {}
    for group, version in features.definitions.groups():
        for feature in group.features:
            holders.setdefault(feature.name, []).append(f"{group.name}@v{version}")
    refs = []
    for name in inputs:
        found = holders.get(name, [])
        if len(found) > 1:
            raise InvalidInputError(
                f"input {name!r} is a feature of several groups ({', '.join(found)}); register "
                "the model with its training set so its features are known exactly",
                field="features")
        if found:
            refs.append(f"{found[0]}:{name}")
    return refs


def gather(online: OnlineService, source: FeatureSource, rows: Sequence[Any], *,
           at: datetime | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Each entity row's inputs (stored features merged with the row's own values) and its
    lookup status (found / missing / expired by the TTL as of ``at``, default now). One read
    of the online store for all rows."""
    keys: dict[str, list[Any]] = {k: [] for k in source.key_columns}
    request: dict[str, list[Any]] = {c: [] for c in source.request_columns}
    problems = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InvalidInputError(f"entities[{i}] must be an object of entity keys and "
                                    "request values", field=f"entities[{i}]")
        absent = [k for k in (*source.key_columns, *source.request_columns) if k not in row]
        if absent:
            problems.append(f"entities[{i}] lacks {', '.join(absent)}")
            continue
        for k in source.key_columns:
            keys[k].append(whole_key(row[k]))
        for c in source.request_columns:
            request[c].append(row[c])
    if problems:
        raise InvalidInputError(
            f"{'; '.join(problems[:20])} (each entity row needs the keys "
            f"{', '.join(source.key_columns)}"
            + (f" and the request values {', '.join(source.request_columns)}"
               if source.request_columns else "") + ")",
            field="entities", keys=list(source.key_columns),
            request=list(source.request_columns))
    try:
        result = online.online_features(list(source.refs), keys,
                                        request=request or None, at=at)
    except ModelyardError as exc:  # the client's fields are entity rows here
        exc.details.setdefault("field", "entities")
        raise
    merged = []
    for i, row in enumerate(rows):
        values = {name: result.values[name][i] for name in source.stored}
        for name in source.from_request:
            if name in row:
                values[name] = row[name]
        merged.append(values)
    return merged, list(result.status)


def whole_key(value: Any) -> Any:
    """An entity key as looked up: a whole number sent as ``3.0`` is the key 3 (JSON does
    not tell them apart; nothing is lost); anything else as it is."""
    if type(value) is float and value.is_integer() and -(2.0**63) <= value < 2.0**63:
        return int(value)
    return value


def check_rows(decoder: InputDecoder | None, source: FeatureSource, entities: Sequence[Any]
               ) -> None:
    """Check each entity row's own values before anything is looked up, so the same row
    gets the same answer whatever the entity's status (InvalidInputError listing each
    problem, ``entities[i].field``): an object, keys that are text or
    whole numbers, inputs the row carries in their domain, and no key the model does not
    take (a stored feature is looked up, never taken from the request)."""
    fields = Fields("entities")
    keys, request = set(source.key_columns), set(source.request_columns)
    carried = set(source.from_request)
    problems: list[Problem] = []
    for i, row in enumerate(entities):
        if not isinstance(row, Mapping):
            problems.append(Problem(fields.row(i), "expected an object of entity keys and "
                                                   "request values"))
            continue
        absent = [k for k in (*source.key_columns, *source.request_columns) if k not in row]
        if absent:
            problems.append(Problem(fields.row(i), f"lacks {', '.join(absent)} (each entity "
                                                   "row needs the keys "
                                                   f"{', '.join(source.key_columns)})"))
        for key, value in row.items():
            if key in keys:
                value = whole_key(value)
                if not (isinstance(value, str) or (isinstance(value, int) and not
                                                   isinstance(value, bool)
                                                   and -(2**63) <= value < 2**63)):
                    problems.append(Problem(fields.value(i, key), "expected an entity key: "
                                            "text or a whole number within int64"))
            elif key in carried and decoder is not None:
                try:
                    decoder.check_value(key, value)
                except ValueError as bad:
                    problems.append(Problem(fields.value(i, key), str(bad)))
            elif key in request:
                if isinstance(value, (list, dict)):
                    problems.append(Problem(fields.value(i, key), "expected a single value"))
            elif key in source.stored:
                problems.append(Problem(fields.value(i, key), "is a stored feature, looked up "
                                        "by the entity's keys; do not send it"))
            else:
                takes = sorted(keys | request | carried)
                problems.append(Problem(fields.value(i, key_name(key)),
                                        f"unknown field; an entity row takes "
                                        f"{', '.join(takes)}"))
        if len(problems) >= 20:
            break
    if problems:
        raise invalid(problems)
