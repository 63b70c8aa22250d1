"""Finding pipelines in the project's ``pipelines.py`` (or ``pipelines/`` folder)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from modelyard.definition_files import existing, python_files, run_files
from modelyard.errors import InvalidInputError
from modelyard.pipelines.definitions import Pipeline

DEFAULT_FILES = ("pipelines.py", "pipelines")


def default_paths(root: Path) -> list[Path]:
    """``pipelines.py`` and the ``pipelines/`` folder of the project, those that exist."""
    return existing(root, DEFAULT_FILES)


def load_pipelines(paths: Sequence[Path]) -> list[Pipeline]:
    """Every :class:`Pipeline` bound to a module-level name in the files (folders: their
    ``*.py`` files, sorted), in file order. A file that fails to import is named."""
    files = python_files(paths)
    found: list[Pipeline] = []
    for _, namespace in run_files(files):
        found += [v for v in namespace.values() if isinstance(v, Pipeline) and v not in found]
    if not found:
        raise InvalidInputError(
            f"no pipeline found in {', '.join(map(str, files)) or paths}: declare one with "
            "@modelyard.pipeline(...)", field="path")
    return found
