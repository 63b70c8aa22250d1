"""What ``modelyard doctor`` reports: project, stores, settings in force, versions.

Read-only: nothing is created or migrated, so it is safe to point at any store.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from modelyard._version import __version__
from modelyard.backends.metadata.sql.engine import StoreStatus, describe_store, make_engine
from modelyard.backends.metadata.sql.tracking_store import SqlTrackingStore
from modelyard.backends.metadata.sql.write_store import SqlWriteStore
from modelyard.backends.metadata.stores import HTTP_SCHEMES
from modelyard.backends.metadata.writes import Repair, WriteIntent
from modelyard.errors import ModelyardError
from modelyard.settings import Settings, load_settings, setting_sources

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from modelyard.maintenance.gc import GcReport

PACKAGES = ("sqlalchemy", "alembic", "pandas", "numpy", "pyarrow", "scikit-learn", "psycopg",
            "typer", "rich")


@dataclass(frozen=True)
class Diagnosis:
    settings: Settings
    sources: dict[str, str]
    store: StoreStatus | None
    store_error: ModelyardError | None
    experiments: int | None  # None when the schema is not at HEAD
    artifact_folder: Path | None
    versions: dict[str, str] = field(default_factory=dict)
    reclaimable: GcReport | None = None  # a dry-run collection; None if it could not run
    intents: list[WriteIntent] = field(default_factory=list)  # writes in flight or half-done
    repairs: list[Repair] = field(default_factory=list)  # newest first

    @property
    def artifact_folder_exists(self) -> bool | None:
        return None if self.artifact_folder is None else self.artifact_folder.is_dir()


def versions() -> dict[str, str]:
    found = {
        "modelyard": __version__,
        "python": f"{platform.python_version()} ({platform.python_implementation()}, "
                  f"{platform.platform(terse=True)})",
    }
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def diagnose(uri: str | None = None, *, repair: bool = False) -> Diagnosis:
    """Look at the project and its stores; a store that cannot be opened is reported, not
    raised (``store_error``). With ``repair``, writes left half-done by dead processes are
    completed or rolled back first (as opening the project does)."""
    settings = load_settings(uri=uri)
    if repair:
        from modelyard.client import connect

        with connect(uri):  # recovers on open
            pass
    store: StoreStatus | None = None
    problem: ModelyardError | None = None
    experiments: int | None = None
    reclaimable: GcReport | None = None
    intents: list[WriteIntent] = []
    repairs: list[Repair] = []
    if settings.uri.startswith(HTTP_SCHEMES):
        return _diagnose_server(settings, uri)
    try:
        engine = make_engine(settings.uri)
        try:
            store = describe_store(engine)
            if store.revision == store.head:
                experiments = len(SqlTrackingStore(engine, migrate=False).list_experiments())
                writes = SqlWriteStore(engine)
                intents, repairs = writes.list_intents(), writes.repairs()
                reclaimable = _reclaimable(settings, engine)
        finally:
            engine.dispose()
    except ModelyardError as exc:
        problem = exc
    folder = (Path(settings.artifact_uri[len("file://"):])
              if settings.artifact_uri.startswith("file://") else None)
    return Diagnosis(settings, setting_sources(settings, uri=uri), store, problem, experiments,
                     folder, versions(), reclaimable, intents, repairs)


def _diagnose_server(settings: Settings, uri: str | None) -> Diagnosis:
    """A project reached through a modelyard server: what its API answers (garbage
    collection and the schema are the server's concern)."""
    import os

    from modelyard.backends.metadata.sql.migrations import SCHEMA_REVISIONS
    from modelyard.backends.metadata.stores import metadata_stores

    store: StoreStatus | None = None
    problem: ModelyardError | None = None
    experiments: int | None = None
    intents: list[WriteIntent] = []
    repairs: list[Repair] = []
    try:
        stores = metadata_stores(settings.uri, token=os.environ.get("MODELYARD_TOKEN") or None)
        try:
            stores.tracking.ping()
            head = SCHEMA_REVISIONS[-1]
            store = StoreStatus(stores.uri, "modelyard server", "", head, head)
            experiments = len(stores.tracking.list_experiments())
            intents, repairs = stores.writes.list_intents(), stores.writes.repairs()
        finally:
            stores.close()
    except ModelyardError as exc:
        problem = exc
    return Diagnosis(settings, setting_sources(settings, uri=uri), store, problem, experiments,
                     None, versions(), None, intents, repairs)


def _reclaimable(settings: Settings, engine: Engine) -> GcReport | None:
    """What ``modelyard gc`` would free with its default grace period (a dry run: one read of
    the references, a listing of the blobs and of each table's unlisted files; it deletes
    nothing but the in-flight marks of processes that died)."""
    from modelyard.backends.artifacts.base import artifact_store_from_uri
    from modelyard.backends.metadata.sql.blob_references import SqlBlobReferences
    from modelyard.backends.offline.tables import offline_store_from_uri
    from modelyard.backends.s3 import S3Options
    from modelyard.maintenance.gc import collect_garbage

    s3 = S3Options.from_mapping(settings.s3())
    try:
        offline = (offline_store_from_uri(settings.offline_uri, s3) if settings.offline_uri
                   else None)
        return collect_garbage(SqlBlobReferences(engine),
                               artifact_store_from_uri(settings.artifact_uri, s3), offline,
                               dry_run=True, writes=SqlWriteStore(engine))
    except ModelyardError:
        return None
