"""Finding pipelines in the project's ``pipelines.py`` (or ``pipelines/`` folder)."""

from __future__ import annotations

import runpy
from collections.abc import Sequence
from pathlib import Path

from modelyard.errors import InvalidDefinitionError, InvalidInputError
from modelyard.pipelines.definitions import Pipeline

DEFAULT_FILES = ("pipelines.py", "pipelines")


def default_paths(root: Path) -> list[Path]:
    """``pipelines.py`` and the ``pipelines/`` folder of the project, those that exist."""
    return [root / name for name in DEFAULT_FILES if (root / name).exists()]


def load_pipelines(paths: Sequence[Path]) -> list[Pipeline]:
    """Every :class:`Pipeline` bound to a module-level name in the files (folders: their
    ``*.py`` files, sorted), in file order. A file that fails to import is named."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidInputError(f"no file or folder at {path}", field="path")
    found: list[Pipeline] = []
    for file in files:
        try:
            namespace = runpy.run_path(str(file))
        except InvalidDefinitionError as exc:
            raise InvalidDefinitionError(f"{file}: {exc.message}", path=str(file)) from exc
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise InvalidDefinitionError(
                f"{file} cannot be imported: {type(exc).__name__}: {exc}",
                path=str(file)) from exc
        found += [v for v in namespace.values() if isinstance(v, Pipeline) and v not in found]
    if not found:
        raise InvalidInputError(
            f"no pipeline found in {', '.join(map(str, files)) or paths}: declare one with "
            "@modelyard.pipeline(...)", field="path")
    return found
