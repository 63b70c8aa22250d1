"""Finding definitions in Python files, for ``modelyard features plan/apply``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from modelyard.definition_files import existing, python_files, run_files
from modelyard.errors import InvalidInputError
from modelyard.features.definitions import Entity, FeatureGroup, Source
from modelyard.features.registry import AnyDefinition
from modelyard.features.request import RequestFeatureGroup

DEFAULT_FILES = ("features.py", "features")


def default_paths(root: Path) -> list[Path]:
    """``features.py`` and the ``features/`` folder of the project, those that exist."""
    return existing(root, DEFAULT_FILES)


def load_definitions(paths: Sequence[Path]) -> list[AnyDefinition]:
    """Every Entity, Source, FeatureGroup and RequestFeatureGroup bound to a module-level
    name in the files (folders: their ``*.py`` files, sorted), in file order."""
    files = python_files(paths)
    found: list[AnyDefinition] = []
    for _, namespace in run_files(files):
        found += [v for v in namespace.values()
                  if isinstance(v, (Entity, Source, FeatureGroup, RequestFeatureGroup))
                  and v not in found]
    if not found:
        raise InvalidInputError(
            f"no Entity, Source or FeatureGroup found in {', '.join(map(str, files)) or paths}",
            field="path")
    return found
