"""Model flavors: how a model object is saved to files and loaded back.

:data:`FLAVORS` lists them in the order :func:`detect` asks them: ``sklearn``, ``xgboost``,
``lightgbm``, ``onnx``, then ``python``, which takes any other object with ``predict``.
:func:`library_drift` compares the library versions recorded with a saved model to the ones
installed now.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from modelyard.errors import InvalidInputError
from modelyard.registry.flavors.base import Flavor
from modelyard.registry.flavors.boosting import LightGBMFlavor, XGBoostFlavor
from modelyard.registry.flavors.onnx import OnnxClassifier, OnnxFlavor, OnnxModel
from modelyard.registry.flavors.python import PythonFlavor
from modelyard.registry.flavors.sklearn import SklearnFlavor

__all__ = [
    "FLAVORS",
    "Flavor",
    "LightGBMFlavor",
    "OnnxClassifier",
    "OnnxFlavor",
    "OnnxModel",
    "PythonFlavor",
    "SklearnFlavor",
    "XGBoostFlavor",
    "detect",
    "flavor",
    "library_drift",
]

FLAVORS: tuple[type[Flavor], ...] = (
    SklearnFlavor,
    XGBoostFlavor,
    LightGBMFlavor,
    OnnxFlavor,
    PythonFlavor,
)
_BY_NAME: dict[str, type[Flavor]] = {cls.name: cls for cls in FLAVORS}


def detect(model: Any) -> Flavor:
    """The flavor that saves ``model`` (first of :data:`FLAVORS` that handles it)."""
    for cls in FLAVORS:
        if cls.handles(model):
            return cls.for_model(model)
    if isinstance(model, type):
        raise InvalidInputError(
            f"{model.__module__}.{model.__qualname__} is a class, not a model: pass a fitted "
            f"instance (known flavors: {', '.join(_BY_NAME)})", field="model",
            type=f"{model.__module__}.{model.__qualname__}", flavors=list(_BY_NAME))
    kind = type(model)
    raise InvalidInputError(
        f"no flavor saves a {kind.__module__}.{kind.__qualname__}: known flavors are "
        f"{', '.join(_BY_NAME)}; any object with a predict method is saved by the "
        f"'python' flavor", field="model", type=f"{kind.__module__}.{kind.__qualname__}",
        flavors=list(_BY_NAME))


def flavor(name: str) -> Flavor:
    """The flavor called ``name``, to load a saved model with."""
    cls = _BY_NAME.get(name)
    if cls is None:
        raise InvalidInputError(
            f"unknown flavor {name!r}: expected one of {', '.join(_BY_NAME)}", field="flavor",
            value=name)
    return cls()


def library_drift(recorded: dict[str, str]) -> list[str]:
    """How the installed libraries differ from ``recorded`` (distribution -> version).

    One line per difference, e.g. ``"scikit-learn 1.8.0 recorded, 1.9.1 installed"`` or
    ``"xgboost 3.1.0 recorded, not installed"``; empty when everything matches.
    """
    drift = []
    for name, version in sorted(recorded.items()):
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            drift.append(f"{name} {version} recorded, not installed")
            continue
        if installed != version:
            drift.append(f"{name} {version} recorded, {installed} installed")
    return drift
