"""The ``python`` flavor: any other object with a callable ``predict``.

Two kinds of saved folder, told apart by ``flavor.json``:

* **code** — for a class that saves itself: it defines ``save(self, folder)``, a classmethod
  ``load(cls, folder)`` and ``predict``. The object writes its own files into ``files/``;
  ``flavor.json`` records the class's import path (``module:QualName``) and its source code,
  with what that source takes from its module: imported modules, names imported from other
  modules, helper functions and classes of the same module (their source too) and literal
  constants. Loading imports the class by path when that works, otherwise runs the stored
  source in a fresh module, then calls ``Cls.load(folder / "files")``. No pickle is read,
  but the stored source is code that runs: the folder must come from a trusted source.
  A class defined inside a function cannot reach that function's local names once stored.
* **pickle** — everything else, written with cloudpickle (``model.pkl``), which also saves
  classes and functions defined on the fly. Loading unpickles: trusted sources only, and the
  same Python version and libraries as when it was saved.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import hashlib
import inspect
import platform
import sys
import textwrap
import types
from pathlib import Path
from typing import Any, ClassVar

from modelyard.errors import ArtifactIntegrityError, InvalidInputError
from modelyard.registry.flavors.base import (
    Flavor,
    class_path,
    import_class,
    model_file,
    read_meta,
    roots_in_mro,
    write_meta,
)

__all__ = ["PythonFlavor", "saves_itself"]

PICKLE_FILE = "model.pkl"
FILES_DIR = "files"


def saves_itself(model: Any) -> bool:
    """Whether the model's class defines ``save(self, folder)``, classmethod ``load``, predict."""
    cls = type(model)
    load = inspect.getattr_static(cls, "load", None)
    save = inspect.getattr_static(cls, "save", None)
    return (
        isinstance(load, classmethod)
        and callable(save)
        and not isinstance(save, classmethod | staticmethod)
        and callable(getattr(model, "predict", None))
    )


class PythonFlavor(Flavor):
    name: ClassVar[str] = "python"
    pickled: ClassVar[bool] = True  # the pickle kind; see loads_pickle for one folder

    @classmethod
    def handles(cls, model: Any) -> bool:
        return not isinstance(model, type) and callable(getattr(model, "predict", None))

    def note_model(self, model: Any) -> None:
        super().note_model(model)
        for value in getattr(model, "__dict__", {}).values():
            self._modules.update(roots_in_mro(value))
        if not saves_itself(model):
            self._modules.add("cloudpickle")

    def save(self, model: Any, folder: Path) -> None:
        if not self.handles(model):
            raise InvalidInputError(
                f"the python flavor saves an object with a predict method, not "
                f"{type(model).__name__}", field="model")
        self.note_model(model)
        meta: dict[str, Any] = {"python": platform.python_version()}
        if saves_itself(model):
            files = folder / FILES_DIR
            files.mkdir()
            model.save(files)
            meta.update(kind="code", **_class_code(type(model)))
        else:
            import cloudpickle

            with (folder / PICKLE_FILE).open("wb") as out:
                cloudpickle.dump(model, out)
            meta.update(kind="pickle", **{"class": class_path(type(model))})
        write_meta(folder, meta)

    def load(self, folder: Path) -> Any:
        meta = read_meta(folder)
        if meta.get("kind") == "code":
            cls = _code_class(meta, folder)
            return cls.load(model_file(folder, FILES_DIR))
        import pickle

        with model_file(folder, PICKLE_FILE).open("rb") as stream:
            return pickle.load(stream)  # cloudpickle output is read by pickle itself

    def loads_pickle(self, folder: Path) -> bool:
        try:
            return read_meta(folder).get("kind") != "code"
        except ArtifactIntegrityError:
            return True


# --- storing a class as code --------------------------------------------------------------


def _class_code(cls: type) -> dict[str, Any]:
    """Import path, name, source and outside needs of a class (source None if unknown)."""
    code: dict[str, Any] = {"class": class_path(cls), "name": cls.__name__,
                            "source": None, "needs": []}
    source = _source(cls)
    if source is None:
        return code
    module = sys.modules.get(cls.__module__)
    namespace = vars(module) if module is not None else {}
    needs: list[dict[str, str]] = []
    _collect_needs(source, namespace, cls.__module__, {cls.__name__}, needs)
    code.update(source=source, needs=needs)
    return code


def _source(obj: Any) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return None


def _collect_needs(source: str, namespace: dict[str, Any], own_module: str, seen: set[str],
                   needs: list[dict[str, str]]) -> None:
    """Append, dependencies first, what ``source`` uses from its module's namespace."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    names = sorted({node.id for node in ast.walk(tree) if isinstance(node, ast.Name)})
    for name in names:
        if name in seen or name not in namespace:
            continue
        seen.add(name)
        value = namespace[name]
        if isinstance(value, types.ModuleType):
            needs.append({"name": name, "module": value.__name__})
        elif (path := _importable_path(value, own_module)) is not None:
            needs.append({"name": name, "import": path})
        elif (inspect.isfunction(value) or inspect.isclass(value)) and (
                getattr(value, "__module__", None) == own_module):
            helper = _source(value)
            if helper is not None:
                _collect_needs(helper, namespace, own_module, seen, needs)
                needs.append({"name": name, "source": helper})
        elif (literal := _literal(value)) is not None:
            needs.append({"name": name, "literal": literal})


def _importable_path(value: Any, own_module: str) -> str | None:
    module_name = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str):
        return None
    if module_name in (own_module, "__main__") or "<locals>" in qualname:
        return None
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return f"{module_name}:{qualname}" if obj is value else None


def _literal(value: Any) -> str | None:
    if not isinstance(value, int | float | str | bytes | bool | tuple | list | dict | set
                      | type(None)):
        return None
    text = repr(value)
    try:
        same = bool(ast.literal_eval(text) == value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return text if same else None


# --- loading a class stored as code -------------------------------------------------------


def _code_class(meta: dict[str, Any], folder: Path) -> Any:
    """The saved class: imported by path when possible, else built from the stored source."""
    path = str(meta.get("class", ""))
    import_error = "no import path recorded"
    if path and "<locals>" not in path:
        try:
            return import_class(path)
        except Exception as exc:  # any failure importing user code falls back to the source
            import_error = f"{type(exc).__name__}: {exc}"
    source = meta.get("source")
    if not isinstance(source, str):
        raise ArtifactIntegrityError(
            f"cannot import {path} ({import_error}) and {folder} stores no source for it",
            path=str(folder))
    return _exec_source(source, str(meta.get("name", "")), meta.get("needs") or [], folder)


def _exec_source(source: str, name: str, needs: list[dict[str, str]], folder: Path) -> Any:
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    module_name = f"modelyard_stored_{digest}"
    module = sys.modules.get(module_name)
    if module is not None and isinstance(getattr(module, name, None), type):
        return getattr(module, name)
    module = types.ModuleType(module_name, f"stored source of {name}")
    module.__dict__["__builtins__"] = builtins
    sys.modules[module_name] = module
    flags = __future__.annotations.compiler_flag
    try:
        for need in needs:
            module.__dict__[need["name"]] = _resolve(need, flags, module.__dict__)
        exec(compile(source, f"<stored {name}>", "exec", flags=flags, dont_inherit=True),
             module.__dict__)
        cls = module.__dict__[name]
    except Exception as exc:
        del sys.modules[module_name]
        raise ArtifactIntegrityError(
            f"the source of {name} stored in {folder} does not run here: "
            f"{type(exc).__name__}: {exc}", path=str(folder)) from exc
    return cls


def _resolve(need: dict[str, str], flags: int, namespace: dict[str, Any]) -> Any:
    import importlib

    if "module" in need:
        return importlib.import_module(need["module"])
    if "import" in need:
        module_path, _, qualname = need["import"].partition(":")
        obj: Any = importlib.import_module(module_path)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj
    if "literal" in need:
        return ast.literal_eval(need["literal"])
    exec(compile(need["source"], f"<stored {need['name']}>", "exec", flags=flags,
                 dont_inherit=True), namespace)
    return namespace[need["name"]]
