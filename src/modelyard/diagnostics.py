"""What ``modelyard doctor`` reports: project, stores, settings in force, versions.

Read-only: nothing is created or migrated, so it is safe to point at any store.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from modelyard._version import __version__
from modelyard.backends.metadata.sql.engine import StoreStatus, describe_store, make_engine
from modelyard.backends.metadata.sql.tracking_store import SqlTrackingStore
from modelyard.backends.metadata.sql.write_store import SqlWriteStore
from modelyard.backends.metadata.writes import Repair, WriteIntent
from modelyard.errors import ModelyardError
from modelyard.settings import Settings, load_settings, setting_sources

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
    intents: list[WriteIntent] = []
    repairs: list[Repair] = []
    try:
        engine = make_engine(settings.uri)
        try:
            store = describe_store(engine)
            if store.revision == store.head:
                experiments = len(SqlTrackingStore(engine, migrate=False).list_experiments())
                writes = SqlWriteStore(engine)
                intents, repairs = writes.list_intents(), writes.repairs()
        finally:
            engine.dispose()
    except ModelyardError as exc:
        problem = exc
    folder = (Path(settings.artifact_uri[len("file://"):])
              if settings.artifact_uri.startswith("file://") else None)
    return Diagnosis(settings, setting_sources(settings, uri=uri), store, problem, experiments,
                     folder, versions(), intents, repairs)
