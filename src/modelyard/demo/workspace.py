"""The demo's project folder: every run of the demo starts from a clean project.

A folder an earlier demo made (it holds the marker :data:`MARKER`, or, from older versions,
``modelyard.toml`` beside the demo's two data files) is cleared first: its embedded store
(``.modelyard/``: runs, models, feature tables, online store, prediction log), the data
files, the monitoring report and the alert inbox. ``modelyard.toml`` and any other file stay;
an edited ``features.py`` or ``pipelines.py`` is kept as ``.bak`` when the demo writes its own. A
folder holding anything else is refused, so the demo never clears a project it did not make.

Stores configured outside the folder (``MODELYARD_URI`` and friends) are not cleared; the
demo says so, and scopes its figures to its own model versions and its own traffic.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelyard.demo.files import DATA_FOLDER
from modelyard.demo.monitoring import INBOX, REPORT
from modelyard.errors import InvalidInputError, StorageError
from modelyard.settings import DATA_DIR, PROJECT_FILE

if TYPE_CHECKING:
    from modelyard.settings import Settings

MARKER = "demo.json"  # in the project's .modelyard folder
DATA_FILES = ("policyholders.parquet", "claims.parquet")


@dataclass(frozen=True)
class Preparation:
    """What was found in the folder before the demo ran."""

    cleared: list[str]  # what an earlier demo left and was removed

    @property
    def fresh(self) -> bool:
        return not self.cleared


def is_demo_project(path: Path) -> bool:
    """True when an earlier ``modelyard demo`` made the folder."""
    if (path / DATA_DIR / MARKER).is_file():
        return True
    data = path / DATA_FOLDER
    return (path / PROJECT_FILE).is_file() and all((data / f).is_file() for f in DATA_FILES)


def prepare_folder(path: Path) -> Preparation:
    """Make ``path`` ready for a clean demo project: clear what an earlier demo left, refuse
    a folder that holds something else."""
    if not path.exists():
        return Preparation([])
    if not path.is_dir():
        raise InvalidInputError(f"{path} is a file; the demo needs a folder", field="path")
    if not any(path.iterdir()):
        return Preparation([])
    if not is_demo_project(path):
        raise InvalidInputError(
            f"{path} holds files that modelyard demo did not make; the demo starts a clean "
            "project, so give it a new or empty folder with --path", field="path")
    cleared = []
    targets = [path / DATA_DIR, *(path / DATA_FOLDER / f for f in DATA_FILES),
               path / REPORT, path / INBOX]
    try:
        for target in targets:
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            else:
                continue
            cleared.append(target.relative_to(path).as_posix())
    except OSError as exc:
        raise StorageError(f"cannot clear the earlier demo in {path}: {exc.strerror or exc}",
                           path=str(path)) from exc
    return Preparation(cleared)


def mark(root: Path, facts: dict[str, object]) -> None:
    """Record in the project that the demo made it (and with what), so a re-run may clear it."""
    marker = root / DATA_DIR / MARKER
    try:
        marker.write_text(json.dumps(facts, indent=2, default=str) + "\n", "utf-8")
    except OSError as exc:
        raise StorageError(f"cannot write {marker}: {exc.strerror or exc}",
                           path=str(marker)) from exc


def outside_stores(settings: Settings, root: Path) -> list[str]:
    """The configured stores that live outside the project folder (not cleared by a re-run),
    as ``name uri`` texts without credentials."""
    inside = str((root / DATA_DIR).resolve())
    found = []
    for name in ("uri", "artifact_uri", "offline_uri", "online_uri", "predictions_uri"):
        uri = str(getattr(settings, name) or "")
        if uri and inside not in uri:
            found.append(f"{name} {_without_credentials(uri)}")
    return found


def _without_credentials(uri: str) -> str:
    scheme, sep, rest = uri.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"
