"""The flavor contract: how one kind of model object is written to files and read back.

A flavor writes a model into an existing empty folder and loads it back from there. It also
names the installed libraries whose versions matter for loading, so a registry can record
them next to the files and warn when they drift (:func:`installed_versions`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from modelyard.errors import ArtifactIntegrityError

__all__ = [
    "META_FILE",
    "Flavor",
    "class_path",
    "distribution_of",
    "import_class",
    "installed_versions",
    "model_file",
    "module_root",
    "read_meta",
    "roots_in_mro",
    "write_meta",
]

META_FILE = "flavor.json"

_F = TypeVar("_F", bound="Flavor")

# import name -> distributions that may provide it, tried in order (the common cases,
# answered without scanning every installed distribution)
_KNOWN: dict[str, tuple[str, ...]] = {
    "sklearn": ("scikit-learn",),
    "xgboost": ("xgboost", "xgboost-cpu"),
    "lightgbm": ("lightgbm",),
    "numpy": ("numpy",),
    "scipy": ("scipy",),
    "pandas": ("pandas",),
    "joblib": ("joblib",),
    "cloudpickle": ("cloudpickle",),
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
}
# modules of the interpreter or of this package: never a requirement of a model
_NOT_DISTRIBUTIONS = frozenset({"builtins", "__main__", "modelyard"})


class Flavor(ABC):
    """How one kind of model object is saved to a folder and loaded back.

    ``pickled`` is True when loading may unpickle a file (joblib or cloudpickle): such a
    folder must come from a trusted source. A flavor instance made by :meth:`for_model`, or
    one that has saved a model, also knows the libraries that model's own parts come from
    (e.g. the xgboost inside an sklearn Pipeline).
    """

    name: ClassVar[str]
    pickled: ClassVar[bool]
    base_libraries: ClassVar[tuple[str, ...]] = ()  # import names always needed to load

    def __init__(self, extra_modules: Iterable[str] = ()) -> None:
        self._modules: set[str] = set(self.base_libraries) | set(extra_modules)

    @classmethod
    @abstractmethod
    def handles(cls, model: Any) -> bool:
        """Whether this flavor saves ``model``; cheap, imports nothing the model does not use."""

    @abstractmethod
    def save(self, model: Any, folder: Path) -> None:
        """Write the model's files into ``folder`` (which exists and is empty)."""

    @abstractmethod
    def load(self, folder: Path) -> Any:
        """The model object saved in ``folder``."""

    @classmethod
    def for_model(cls: type[_F], model: Any) -> _F:
        """An instance that also knows the libraries ``model``'s parts come from."""
        flavor = cls()
        flavor.note_model(model)
        return flavor

    def note_model(self, model: Any) -> None:
        """Remember the libraries ``model`` is made of (called by :meth:`for_model`, save)."""
        self._modules.update(roots_in_mro(model))

    def libraries(self) -> dict[str, str]:
        """Distribution name -> installed version, for every library loading needs."""
        return installed_versions(self._modules)

    def requirements(self) -> list[str]:
        """Pinned pip lines for :meth:`libraries`, e.g. ``["scikit-learn==1.9.1"]``."""
        return [f"{name}=={version}" for name, version in sorted(self.libraries().items())]

    def loads_pickle(self, folder: Path) -> bool:
        """Whether loading this saved folder unpickles a file (``pickled`` when unsure)."""
        return self.pickled


def module_root(obj_type: type) -> str:
    """The top-level package a class comes from: ``sklearn`` for ``sklearn.linear_model``."""
    return str(getattr(obj_type, "__module__", "") or "").split(".")[0]


def roots_in_mro(model: Any) -> set[str]:
    """Top-level packages of the model's class and its base classes."""
    return {module_root(base) for base in type(model).__mro__} - {"builtins", ""}


def installed_versions(modules: Iterable[str]) -> dict[str, str]:
    """Distribution name -> installed version for the given import names.

    Names that no installed distribution provides (the standard library, scripts, this
    package) are left out.
    """
    found: dict[str, str] = {}
    for module in sorted(set(modules)):
        dist = distribution_of(module)
        if dist is not None:
            found[dist] = importlib.metadata.version(dist)
    return found


def distribution_of(module: str) -> str | None:
    """The installed distribution that provides the import name ``module``, if any."""
    if module in _NOT_DISTRIBUTIONS or not module:
        return None
    for dist in _KNOWN.get(module, ()):
        if _installed(dist):
            return dist
    candidates = _packages_distributions().get(module, [])
    return candidates[0] if candidates and _installed_module(module) else None


def _installed_module(module: str) -> bool:
    """Whether an imported package lives in site-packages (not a script or source tree
    that happens to share a name with some installed distribution)."""
    loaded = sys.modules.get(module)
    if loaded is None:
        return True
    location = getattr(loaded, "__file__", None) or next(iter(getattr(loaded, "__path__", [])),
                                                          None)
    if not location:
        return False
    parts = Path(location).parts
    return "site-packages" in parts or "dist-packages" in parts


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def model_file(folder: Path, name: str) -> Path:
    """``folder / name``, or ArtifactIntegrityError when the saved model lacks that file."""
    path = folder / name
    if not path.exists():
        raise ArtifactIntegrityError(
            f"the saved model in {folder} has no {name}; the folder is incomplete",
            path=str(path))
    return path


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    """Write the flavor's own notes about the saved files (``flavor.json``)."""
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def read_meta(folder: Path) -> dict[str, Any]:
    """The notes :func:`write_meta` wrote, or ArtifactIntegrityError when unreadable."""
    path = model_file(folder, META_FILE)
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactIntegrityError(f"{path} is not valid JSON: {exc}", path=str(path)) from exc
    if not isinstance(meta, dict):
        raise ArtifactIntegrityError(f"{path} does not hold a JSON object", path=str(path))
    return meta


def class_path(cls: type) -> str:
    """``"module:QualName"`` of a class, the form :func:`import_class` reads."""
    return f"{cls.__module__}:{cls.__qualname__}"


def import_class(path: str) -> type:
    """The class named by ``"module:QualName"``; ImportError or AttributeError if absent."""
    import importlib

    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise TypeError(f"{path} is not a class")
    return obj
