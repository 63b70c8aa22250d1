"""Running the Python files that declare a project's definitions (``features.py``,
``pipelines.py``, or folders of them), shared by the feature store and the pipelines.

:func:`run_files` runs each file and hands back its module namespace; a file that fails is
named with the line the error came through, as an :class:`InvalidDefinitionError`.
"""

from __future__ import annotations

import runpy
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from modelyard.errors import InvalidDefinitionError, InvalidInputError

__all__ = ["existing", "python_files", "run_files"]


def existing(root: Path, names: Sequence[str]) -> list[Path]:
    """The files and folders among ``names`` in ``root`` that exist."""
    return [root / name for name in names if (root / name).exists()]


def python_files(paths: Sequence[Path]) -> list[Path]:
    """The files named, and the ``*.py`` files of the folders named (sorted, without the
    ``_private`` ones); a path that does not exist is refused."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidInputError(f"no file or folder at {path}", field="path")
    return files


def run_files(files: Sequence[Path]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Each file run as a module, with the names it bound."""
    for file in files:
        try:
            namespace = runpy.run_path(str(file))
        except InvalidDefinitionError as exc:
            raise InvalidDefinitionError(f"{_where(file, exc)}: {exc.message}",
                                         **{**exc.details, "path": str(file)}) from None
        except (Exception, SystemExit) as exc:  # a sys.exit() in the file too
            raise InvalidDefinitionError(
                f"{_where(file, exc)} cannot be imported: {type(exc).__name__}: {exc}",
                path=str(file)) from exc
        yield file, namespace


def _where(file: Path, exc: BaseException) -> str:
    """``file:line`` of the file's line the exception came through (``file`` if none)."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__)
             if f.filename == str(file)]
    return f"{file}:{lines[-1]}" if lines else str(file)
