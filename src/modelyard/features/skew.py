"""Train/serve skew check: do the online values equal what a training set computes?

A sample of entities is read from the online store. Each stored value records the instant it
was computed as of and the snapshot of the offline tables it was computed over, so the check
rebuilds exactly that training-set row (entity, instant, ``as_of`` the snapshot) through the
training-set code path and compares every feature. Any difference is skew: a changed
definition, a bug, or a store written by something else.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from modelyard.features.codec import Layout, converters, decode, from_epoch_us
from modelyard.features.training import SelectedGroup, build

if TYPE_CHECKING:
    from modelyard.features.online import OnlineService

_AT = "__modelyard_at"
_SCAN_FACTOR = 20  # keys listed per key sampled, so the sample spreads over the store


@dataclass
class FeatureSkew:
    feature: str
    compared: int = 0
    mismatches: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SkewReport:
    group: str
    version: int
    store: str
    sampled: int
    features: list[FeatureSkew]

    @property
    def mismatches(self) -> int:
        return sum(f.mismatches for f in self.features)

    @property
    def ok(self) -> bool:
        return self.mismatches == 0

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "version": self.version, "store": self.store,
                "sampled": self.sampled, "mismatches": self.mismatches, "ok": self.ok,
                "features": [{"feature": f.feature, "compared": f.compared,
                              "mismatches": f.mismatches, "examples": f.examples}
                             for f in self.features]}


def same(online: Any, offline: Any) -> bool:
    if online is None or offline is None:
        return online is None and offline is None
    if isinstance(online, float) or isinstance(offline, float):
        a, b = float(online), float(offline)
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9,
                                                                  abs_tol=1e-12)
    if isinstance(online, datetime) and isinstance(offline, datetime):
        return online == offline
    return bool(online == offline)


def _typed_keys(layout: Layout, texts: list[str]) -> list[list[Any]]:
    """Stored key strings back to column values of the entity's key types."""
    rows = [json.loads(t) if len(layout.keys) > 1 else [t] for t in texts]
    columns: list[list[Any]] = [[] for _ in layout.keys]
    for row in rows:
        for i, (value, kind) in enumerate(zip(row, layout.key_kinds, strict=True)):
            columns[i].append(int(value) if kind == "int" else value)
    return columns


def check_skew(service: OnlineService, group_name: str, *, sample: int = 100,
               seed: int | None = None) -> SkewReport:
    import pyarrow as pa

    features = service.features
    group, version = features.definitions.group(group_name)
    layout = service.layout(group.name, version)
    listed = service.store.keys(layout.table, limit=max(sample, 1) * _SCAN_FACTOR)
    keys = random.Random(seed).sample(listed, min(sample, len(listed)))
    stored = service.store.read([(layout.table, keys)])[0]
    report = [FeatureSkew(f) for f in layout.features]
    convert = converters(layout.kinds)
    windows = {f.name for f in group.features if f.window is not None}
    by_cut: dict[tuple[int, int], list[int]] = defaultdict(list)
    decoded = [decode(raw) if raw is not None else None for raw in stored]
    for index, value in enumerate(decoded):
        if value is not None:
            by_cut[value.at_us, value.snapshot_us].append(index)
    key_columns = _typed_keys(layout, keys)
    key_types = {k: features.tables.scan(group.source.name, columns=[k]).schema.field(0).type
                 for k in layout.keys}
    selected = SelectedGroup(group, version, layout.features)
    for (at_us, snapshot_us), rows in sorted(by_cut.items()):
        spine = pa.table({
            **{k: pa.array([key_columns[i][r] for r in rows], key_types[k])
               for i, k in enumerate(layout.keys)},
            _AT: pa.array([from_epoch_us(at_us)] * len(rows), pa.timestamp("us", tz="UTC")),
        })
        offline = build(features.engine, features.tables, spine, [selected], timestamp=_AT,
                        label=None, as_of=from_epoch_us(snapshot_us)).table
        for position, name in enumerate(layout.features):
            expected = offline.column(name).to_pylist()
            for row, want in zip(rows, expected, strict=True):
                value = decoded[row]
                assert value is not None
                got = value.values[position]
                expired = (layout.ttl_us is not None and value.event_us is not None
                           and at_us - value.event_us > layout.ttl_us)
                if expired and name not in windows:
                    got = None
                elif (turn := convert[position]) is not None and got is not None:
                    got = turn(got)
                skew = report[position]
                skew.compared += 1
                if not same(got, want):
                    skew.mismatches += 1
                    if len(skew.examples) < 5:
                        skew.examples.append({"key": keys[row], "online": _plain(got),
                                              "offline": _plain(want),
                                              "as_of": from_epoch_us(at_us).isoformat()})
    return SkewReport(group.name, version, service.store_id, len(keys), report)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
