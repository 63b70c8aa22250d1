"""Finding definitions in Python files, for ``modelyard features plan/apply``."""

from __future__ import annotations

import runpy
from collections.abc import Sequence
from pathlib import Path

from modelyard.errors import InvalidDefinitionError, InvalidInputError
from modelyard.features.definitions import Entity, FeatureGroup, Source
from modelyard.features.registry import AnyDefinition
from modelyard.features.request import RequestFeatureGroup

DEFAULT_FILES = ("features.py", "features")


def default_paths(root: Path) -> list[Path]:
    """``features.py`` and the ``features/`` folder of the project, those that exist."""
    return [root / name for name in DEFAULT_FILES if (root / name).exists()]


def load_definitions(paths: Sequence[Path]) -> list[AnyDefinition]:
    """Every Entity, Source, FeatureGroup and RequestFeatureGroup bound to a module-level
    name in the files (folders: their ``*.py`` files, sorted), in file order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidInputError(f"no file or folder at {path}", field="path")
    found: list[AnyDefinition] = []
    for file in files:
        try:
            namespace = runpy.run_path(str(file))
        except InvalidDefinitionError as exc:
            raise InvalidDefinitionError(f"{_where(file, exc)}: {exc.message}",
                                         **{**exc.details, "path": str(file)}) from None
        except Exception as exc:
            raise InvalidDefinitionError(
                f"{_where(file, exc)}: failed to run: {type(exc).__name__}: {exc}",
                path=str(file)) from exc
        found += [v for v in namespace.values()
                  if isinstance(v, (Entity, Source, FeatureGroup, RequestFeatureGroup))
                  and v not in found]
    if not found:
        raise InvalidInputError(
            f"no Entity, Source or FeatureGroup found in {', '.join(map(str, files)) or paths}",
            field="path")
    return found


def _where(file: Path, exc: BaseException) -> str:
    """``file:line`` of the file's line the exception came through (``file`` if none)."""
    import traceback

    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__)
             if f.filename == str(file)]
    return f"{file}:{lines[-1]}" if lines else str(file)
