"""Garbage collection: remove stored bytes that nothing refers to and no writer still needs.

What is collected:

- **blobs**: artifact-store blobs that no record refers to (run artifacts, model archives and
  their ONNX twins, every digest in a version's spec: reference profile, explanation
  background, training-set spine; evaluation plots, monitoring reference profiles, training
  sets), e.g. the archive of a ``log_model`` killed before its version was recorded;
- **partial writes**: the artifact store's temporary files of writers that died mid-write;
- **table files**: files in an offline table's folder that its Delta log does not list (an
  ingestion killed before its commit), found by Delta's own vacuum listing.

Nothing younger than the grace period (``older_than``, default one hour) is touched, and
nothing that :func:`_in_flight` reports: a writer in flight marks what it stores before
storing it. The order makes a racing writer safe: candidates are listed first, then the
in-flight marks and the references are read, and a blob is deleted only if it was not stored
again meanwhile (the artifact store's ``delete`` checks that after moving it aside), a table
file only if the table's latest version still does not list it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from modelyard.backends.artifacts.base import ArtifactStore
from modelyard.backends.metadata.references import BlobReferences
from modelyard.backends.metadata.writes import WriteIntent, WriteStore
from modelyard.backends.offline.tables import OfflineTableStore
from modelyard.errors import InvalidInputError

__all__ = ["DEFAULT_GRACE_S", "KINDS", "GcItem", "GcReport", "collect_garbage", "parse_age"]

DEFAULT_GRACE_S = 3600.0
# how long a live process's in-flight mark protects a blob it stored (a write that takes
# longer between storing and recording its blobs is protected by the grace period only)
IN_FLIGHT_HORIZON_S = 3600.0
KINDS = ("blob", "partial write", "table file")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


@dataclass(frozen=True)
class GcItem:
    kind: str  # one of KINDS
    name: str  # a digest, a temporary file's name, or table/path
    size: int


@dataclass(frozen=True)
class GcReport:
    """What a collection freed (or, with ``dry_run``, would free) and what it kept."""

    dry_run: bool
    older_than_s: float
    freed: list[GcItem] = field(default_factory=list)
    referenced: int = 0  # blobs older than the grace that some record refers to
    young: int = 0  # blobs younger than the grace (referenced or not): not looked at
    in_flight: int = 0  # unreferenced blobs and files kept because a live writer holds them

    def totals(self) -> dict[str, tuple[int, int]]:
        """(count, bytes) freed per kind, every kind listed."""
        out = {kind: (0, 0) for kind in KINDS}
        for item in self.freed:
            count, size = out[item.kind]
            out[item.kind] = (count + 1, size + item.size)
        return out

    @property
    def count(self) -> int:
        return len(self.freed)

    @property
    def bytes(self) -> int:
        return sum(item.size for item in self.freed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run, "older_than_s": self.older_than_s,
            "count": self.count, "bytes": self.bytes,
            "kinds": {k: {"count": c, "bytes": b} for k, (c, b) in self.totals().items()},
            "kept": {"referenced": self.referenced, "young": self.young,
                     "in_flight": self.in_flight},
            "freed": [{"kind": i.kind, "name": i.name, "size": i.size} for i in self.freed],
        }


@dataclass(frozen=True)
class InFlight:
    blobs: frozenset[str]
    tables: frozenset[str]


def parse_age(value: str | float | timedelta) -> float:
    """Seconds from ``90s``, ``30m``, ``1h``, ``2d``, ``1w``, a number of seconds, or a
    timedelta."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _AGE.match(value)):
        seconds = float(m[1]) * _UNIT_S[m[2] or "s"]
    else:
        raise InvalidInputError(
            f"older_than must be an age such as 90s, 30m, 1h or 2d (or seconds), got "
            f"{value!r}", field="older_than")
    if seconds < 0:
        raise InvalidInputError(f"older_than must not be negative, got {value!r}",
                                field="older_than")
    return seconds


def _in_flight(artifacts: ArtifactStore, offline: OfflineTableStore | None,
               intents: Iterable[WriteIntent] = ()) -> InFlight:
    """What writers in flight protect: blobs they stored and may not have recorded yet, and
    tables they are writing to.

    Two sources: the marks live processes hold (the artifact store's ``inflight/`` folder,
    the offline store's ``.inflight/``; a partial write is never swept while the process
    named in its temporary file's name runs, ``sweep_partial``), and the open write intents
    of the metadata store (a write records the blobs and tables it covers before it starts
    and clears them in the transaction that records its result). ``blobs`` keeps a digest
    from deletion, ``tables`` keeps a table's unlisted files.
    """
    intents = list(intents)
    blobs = set(artifacts.in_flight(IN_FLIGHT_HORIZON_S))
    blobs.update(sha for intent in intents for sha in intent.blobs)
    tables = set(offline.in_flight()) if offline is not None else set()
    tables.update(path.name for intent in intents for path in intent.table_paths)
    return InFlight(frozenset(blobs), frozenset(tables))


def collect_garbage(references: BlobReferences, artifacts: ArtifactStore,
                    offline: OfflineTableStore | None = None, *,
                    older_than: str | float | timedelta = DEFAULT_GRACE_S,
                    dry_run: bool = False, writes: WriteStore | None = None) -> GcReport:
    """Remove (or with ``dry_run`` only list) what nothing refers to; see the module.
    ``writes`` gives the open write intents, whose blobs and tables are spared."""
    grace = parse_age(older_than)
    cutoff = time.time() - grace
    young = 0
    old = []
    for blob in artifacts.iter_blobs():  # 1. candidates first ...
        if blob.modified < cutoff:
            old.append(blob)
        else:
            young += 1
    intents = writes.list_intents() if writes is not None else []
    flying = _in_flight(artifacts, offline, intents)  # 2. ... then what writers hold ...
    refs = references.referenced_blobs()  # 3. ... then what is recorded
    freed: list[GcItem] = []
    referenced = held = 0
    for blob in old:
        if blob.sha256 in refs:
            referenced += 1
        elif blob.sha256 in flying.blobs:
            held += 1
        elif dry_run or artifacts.delete(blob.sha256, unless_modified_after=cutoff):
            freed.append(GcItem("blob", blob.sha256, blob.size))
    freed += [GcItem("partial write", p.sha256, p.size)
              for p in artifacts.sweep_partial(cutoff, dry_run=dry_run)]
    if offline is not None:
        tables_freed, tables_held = _collect_tables(offline, artifacts, cutoff, dry_run,
                                                    intents)
        freed += tables_freed
        held += tables_held
    return GcReport(dry_run, grace, freed, referenced, young, held)


def _collect_tables(offline: OfflineTableStore, artifacts: ArtifactStore, cutoff: float,
                    dry_run: bool, intents: Iterable[WriteIntent] = ()
                    ) -> tuple[list[GcItem], int]:
    freed: list[GcItem] = []
    held = 0
    for table in offline.tables():
        files = offline.unlisted_files(table, cutoff)
        if not files:
            continue
        if table in _in_flight(artifacts, offline, intents).tables:  # a writer may commit
            held += len(files)
            continue
        done: Iterable[Any] = files if dry_run else offline.delete_unlisted(table, files)
        freed += [GcItem("table file", f"{f.table}/{f.path}", f.size) for f in done]
    return freed, held
