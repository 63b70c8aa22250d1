"""Creating a project: ``modelyard.toml`` plus the ``.modelyard/`` data folder."""

from __future__ import annotations

import re
from pathlib import Path

from modelyard.errors import AlreadyExistsError, InvalidInputError, StorageError
from modelyard.settings import DATA_DIR, PROJECT_FILE, render_project_file


def init_project(path: str | Path = ".", name: str | None = None, *,
                 exist_ok: bool = False) -> Path:
    """Create a project in ``path``; returns its root. Refuses to overwrite one."""
    root = Path(path).expanduser().resolve()
    name = name or root.name or "project"
    if not re.fullmatch(r"[\w\-. ]{1,100}", name):
        raise InvalidInputError(
            f"project name {name!r} is not valid: use letters, digits, _ - . and spaces",
            field="name",
        )
    toml = root / PROJECT_FILE
    if toml.exists() and not exist_ok:
        raise AlreadyExistsError(f"{root} is already a modelyard project ({PROJECT_FILE} exists)",
                                 path=str(root))
    try:
        (root / DATA_DIR).mkdir(parents=True, exist_ok=True)
        ignore = root / DATA_DIR / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# modelyard's data folder: databases and artifacts\n*\n")
        if not toml.exists():
            toml.write_text(render_project_file(name.replace('"', "")))
    except OSError as exc:
        raise StorageError(f"cannot create a project in {root}: {exc.strerror or exc}",
                           path=str(root)) from exc
    return root
