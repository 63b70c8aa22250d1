"""The ``xgboost`` and ``lightgbm`` flavors: gradient-boosted trees in their own formats.

* xgboost: both the sklearn API (``XGBRegressor``, ``XGBClassifier``, ...) and a raw
  ``Booster`` are saved with ``save_model`` as JSON (``model.json``), which xgboost reads back
  across versions and which keeps the classifier's classes and probabilities. Nothing is
  unpickled on load.
* lightgbm: a raw ``Booster`` is saved as LightGBM's text model (``model.txt``). The sklearn
  API (``LGBMRegressor``, ``LGBMClassifier``, ...) has no loader for that text, so it is saved
  with joblib (``model.joblib``) to keep ``classes_`` and ``predict_proba``: such a folder is
  a pickle and must come from a trusted source.

``flavor.json`` records which class was saved, so loading builds the same class again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from modelyard.errors import ArtifactIntegrityError, InvalidInputError
from modelyard.registry.flavors.base import (
    Flavor,
    class_path,
    import_class,
    model_file,
    read_meta,
    write_meta,
)

__all__ = ["LightGBMFlavor", "XGBoostFlavor"]

XGBOOST_FILE = "model.json"
LIGHTGBM_TEXT_FILE = "model.txt"
LIGHTGBM_JOBLIB_FILE = "model.joblib"


def _saved_class(folder: Path, package: str) -> type:
    """The class ``flavor.json`` names, refused unless it comes from ``package``."""
    path = str(read_meta(folder).get("class", ""))
    if not path.startswith(f"{package}.") and not path.startswith(f"{package}:"):
        raise ArtifactIntegrityError(
            f"{folder} records class {path!r}, which is not a {package} class", path=str(folder))
    try:
        return import_class(path)
    except (ImportError, AttributeError, TypeError) as exc:
        raise ArtifactIntegrityError(
            f"cannot import {path} recorded in {folder}: {exc}", path=str(folder)) from exc


def _is_lightgbm_booster(model: Any) -> bool:
    if not type(model).__module__.startswith("lightgbm."):
        return False
    import lightgbm

    return isinstance(model, lightgbm.Booster)


class XGBoostFlavor(Flavor):
    name: ClassVar[str] = "xgboost"
    pickled: ClassVar[bool] = False
    base_libraries: ClassVar[tuple[str, ...]] = ("xgboost", "numpy", "scipy")

    @classmethod
    def handles(cls, model: Any) -> bool:
        if isinstance(model, type) or not type(model).__module__.startswith("xgboost."):
            return False
        import xgboost

        return isinstance(model, xgboost.Booster) or (
            isinstance(model, xgboost.XGBModel) and callable(getattr(model, "predict", None)))

    def save(self, model: Any, folder: Path) -> None:
        import xgboost

        if not self.handles(model):
            raise InvalidInputError(
                f"the xgboost flavor saves an XGBModel or a Booster, not {type(model).__name__}",
                field="model")
        self.note_model(model)
        try:
            model.save_model(folder / XGBOOST_FILE)
        except xgboost.core.XGBoostError as exc:
            raise InvalidInputError(
                f"cannot save {type(model).__name__}: {str(exc).splitlines()[0]}",
                field="model") from exc
        except (AttributeError, ValueError) as exc:  # sklearn wrapper not fitted
            raise InvalidInputError(
                f"cannot save {type(model).__name__}: {exc}", field="model") from exc
        write_meta(folder, {"class": class_path(type(model)), "format": "json"})

    def load(self, folder: Path) -> Any:
        import xgboost

        cls = _saved_class(folder, "xgboost")
        path = model_file(folder, XGBOOST_FILE)
        if issubclass(cls, xgboost.Booster):
            return cls(model_file=str(path))
        if not issubclass(cls, xgboost.XGBModel):
            raise ArtifactIntegrityError(f"{cls.__name__} is not an xgboost model",
                                         path=str(folder))
        model = cls()
        model.load_model(path)
        return model


class LightGBMFlavor(Flavor):
    name: ClassVar[str] = "lightgbm"
    pickled: ClassVar[bool] = True  # the sklearn API is saved with joblib
    base_libraries: ClassVar[tuple[str, ...]] = ("lightgbm", "numpy", "scipy")

    @classmethod
    def handles(cls, model: Any) -> bool:
        if isinstance(model, type) or not type(model).__module__.startswith("lightgbm."):
            return False
        import lightgbm

        return isinstance(model, lightgbm.Booster) or (
            isinstance(model, lightgbm.LGBMModel) and callable(getattr(model, "predict", None)))

    def note_model(self, model: Any) -> None:
        super().note_model(model)
        if not _is_lightgbm_booster(model):
            self._modules.add("joblib")

    def save(self, model: Any, folder: Path) -> None:
        if not self.handles(model):
            raise InvalidInputError(
                f"the lightgbm flavor saves an LGBMModel or a Booster, not "
                f"{type(model).__name__}", field="model")
        self.note_model(model)
        if _is_lightgbm_booster(model):
            model.save_model(str(folder / LIGHTGBM_TEXT_FILE))
            fmt = "text"
        else:
            import joblib

            joblib.dump(model, folder / LIGHTGBM_JOBLIB_FILE)
            fmt = "joblib"
        write_meta(folder, {"class": class_path(type(model)), "format": fmt})

    def load(self, folder: Path) -> Any:
        import lightgbm

        cls = _saved_class(folder, "lightgbm")
        if issubclass(cls, lightgbm.Booster):
            return cls(model_file=str(model_file(folder, LIGHTGBM_TEXT_FILE)))
        import joblib

        model = joblib.load(model_file(folder, LIGHTGBM_JOBLIB_FILE))
        if not isinstance(model, cls):
            raise ArtifactIntegrityError(
                f"{folder} holds a {type(model).__name__}, expected {cls.__name__}",
                path=str(folder))
        return model

    def loads_pickle(self, folder: Path) -> bool:
        return not (folder / LIGHTGBM_TEXT_FILE).exists()
