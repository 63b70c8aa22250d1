"""Ingestions and forgets that a crash left half-done, completed or rolled back.

An ingestion records its intent (the commit id it is about to make, and the profile of the
batch) before the Delta commit, and the profile is stored, with the idempotency key, in the
transaction that deletes the intent. After a crash, the Delta log says which half happened:
a commit that landed gets its profile (from the intent, else computed from the committed
rows); one that did not is rolled back (its unreferenced data files are reported, and left
to garbage collection).

A forget records the entity and its keys before deleting anything; a crash part-way is
completed by forgetting the same keys again (deleting rows that are gone already removes
nothing) and logging it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.writes import Completion, Repair, WriteIntent
from modelyard.backends.offline.tables import COMMIT, SYSTEM_COLUMNS, Commit
from modelyard.errors import ModelyardError, NotFoundError, StorageError

if TYPE_CHECKING:
    import pyarrow as pa

    from modelyard.features.service import FeatureService


def table_digest(table: pa.Table) -> str:
    """The sha256 of a table's schema and values (its Arrow IPC stream, batch by batch)."""
    digest = hashlib.sha256(table.schema.serialize().to_pybytes())
    for batch in table.combine_chunks().to_batches():
        digest.update(batch.serialize().to_pybytes())
    return digest.hexdigest()


def ingest_key(service: FeatureService, source: str, file: Path | None) -> str | None:
    """The idempotency key the CLI derives for ingesting ``file`` (else the source's own
    files) into ``source``: the files' sha256 with the source's definition version. None for
    a source read by a query, whose rows change without its definition changing."""
    from modelyard.idempotency import fingerprint

    definition = service.source(source)
    if file is None:
        if definition.kind_of_source not in ("parquet", "csv"):
            return None
        file = Path(definition.location)
        file = file if file.is_absolute() else service.base / file
    if not file.exists():
        return None  # reading it reports the problem
    files = sorted(p for p in file.rglob("*") if p.is_file()) if file.is_dir() else [file]
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    version = service.history("source", source)[-1].version
    return "ingest-" + fingerprint("ingest", source=source, version=version,
                                   files=digest.hexdigest())[:48]


def table_paths(service: FeatureService, source: str) -> list[str]:
    """Where the source's table lies: a folder, or an ``s3://`` URL (never credentials);
    garbage collection keeps the unlisted files of a table a write in flight names."""
    uri = service.tables.uri
    if uri.startswith("file://"):
        return [str(Path(uri[len("file://"):]) / source)]
    return [f"{uri.rstrip('/')}/{source}"] if uri.startswith("s3://") else []


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def recover_ingest(service: FeatureService, intent: WriteIntent) -> Repair | None:
    """Complete (profile + key) an ingestion whose commit landed, else roll it back."""
    source, commit_id = intent.target, str(intent.payload["commit_id"])
    commit = next((c for c in service.commits(source) if c.commit_id == commit_id), None)
    if commit is None:
        detail = (f"ingestion into {source!r} (commit {commit_id[:12]}) was never committed; "
                  "nothing of it is visible")
        for folder in intent.table_paths:
            detail += (f"; data files it may have written in {folder} since "
                       f"{_stamp(intent.started_at)} that the table's log does not list are "
                       "left for garbage collection")
        return service.writes.resolve(intent, "rolled back", detail)
    save_profile(service, source, commit, intent.payload.get("profile"),
                 Completion("ingest", intent.idempotency_key,
                            str(intent.payload.get("fingerprint", "")), commit.to_dict()))
    return service.writes.resolve(
        intent, "completed",
        f"ingestion into {source!r} (commit {commit_id[:12]}, {commit.rows} rows) had "
        "committed without its profile; the profile was stored"
        + (f" with idempotency key {intent.idempotency_key!r}" if intent.idempotency_key
           else ""))


def save_profile(service: FeatureService, source: str, commit: Commit,
                 stored: dict[str, Any] | None, done: Completion | None) -> None:
    """Store a committed ingestion's profile (given, else computed from its committed rows)
    unless another process stored it first."""
    if service.store.get_profile(source, commit.commit_id) is not None:
        if done is not None and done.key is not None \
                and service.writes.lookup(done.key) is None:
            service.writes.complete(done)
        return
    body = stored if stored is not None else committed_profile(service, source, commit)
    try:
        service.store.save_profile(source, commit.commit_id, body, done=done)
    except StorageError:  # stored meanwhile by a concurrent recovery
        if service.store.get_profile(source, commit.commit_id) is None:
            raise


def committed_profile(service: FeatureService, source: str, commit: Commit
                      ) -> dict[str, Any]:
    """The profile of an ingestion computed from its rows as committed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from modelyard.features.profiles import profile

    rows = service.tables.read(source, as_of=commit.commit_id)
    rows = rows.filter(pc.equal(rows[COMMIT].cast(pa.string()), commit.commit_id))
    # columns added by later ingestions read as null for these rows: not part of this batch
    columns = [n for n in rows.column_names if n not in SYSTEM_COLUMNS
               and (rows.num_rows == 0 or rows[n].null_count < rows.num_rows)]
    return profile(rows.select(columns), columns).to_dict()


def missing_profile(service: FeatureService, source: str, commit: Commit) -> dict[str, Any]:
    """The profile of a commit stored without one: its intent is recovered if its writer
    died (else NotFoundError: still being written), or it is computed from the data."""
    for intent in service.writes.list_intents("ingest"):
        if intent.payload.get("commit_id") != commit.commit_id:
            continue
        if intent.owner_alive():
            raise NotFoundError(f"the profile of commit {commit.commit_id!r} of {source!r} is "
                                "still being written; try again in a moment",
                                source=source, commit=commit.commit_id)
        recover_ingest(service, intent)
    found = service.store.get_profile(source, commit.commit_id)
    if found is None:
        save_profile(service, source, commit, None, None)
        found = service.store.get_profile(source, commit.commit_id)
    if found is None:  # pragma: no cover - saved just above
        raise NotFoundError(f"no profile stored for commit {commit.commit_id!r} of "
                            f"{source!r}", source=source, commit=commit.commit_id)
    return found


def recover_forget(service: FeatureService, intent: WriteIntent) -> Repair | None:
    """Forget the intent's keys again (finishing what the dead writer began) and log it."""
    entity = intent.target
    try:
        removed = service.forget(entity, dict(intent.payload["keys"]))
    except ModelyardError as exc:
        return service.writes.resolve(
            intent, "rolled back", f"forget of {entity!r} could not be finished: "
            f"{exc.message}; run it again")
    return service.writes.resolve(
        intent, "completed", f"forget of {entity!r} begun at {_stamp(intent.started_at)} was "
        f"finished ({removed} more row(s) removed) and logged")
