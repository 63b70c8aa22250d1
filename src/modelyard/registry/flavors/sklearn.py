"""The ``sklearn`` flavor: scikit-learn estimators and pipelines, saved with joblib.

Any object whose class comes from ``sklearn.`` and has ``predict`` belongs here, a Pipeline
whose last step is an xgboost or LightGBM model included. joblib files are pickles: loading
one runs code, so the folder must come from a trusted source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from modelyard.registry.flavors.base import Flavor, model_file, roots_in_mro

__all__ = ["SklearnFlavor"]

MODEL_FILE = "model.joblib"


class SklearnFlavor(Flavor):
    name: ClassVar[str] = "sklearn"
    pickled: ClassVar[bool] = True
    base_libraries: ClassVar[tuple[str, ...]] = ("sklearn", "numpy", "scipy", "joblib")

    @classmethod
    def handles(cls, model: Any) -> bool:
        return (
            not isinstance(model, type)
            and type(model).__module__.startswith("sklearn.")
            and callable(getattr(model, "predict", None))
        )

    def note_model(self, model: Any) -> None:
        super().note_model(model)
        get_params = getattr(model, "get_params", None)
        if not callable(get_params):
            return
        try:
            params = get_params(deep=True)
        except Exception:  # an estimator with a broken get_params still saves
            return
        for value in params.values():
            if hasattr(value, "get_params") or hasattr(value, "predict"):
                self._modules.update(roots_in_mro(value))

    def save(self, model: Any, folder: Path) -> None:
        import joblib

        self.note_model(model)
        joblib.dump(model, folder / MODEL_FILE)

    def load(self, folder: Path) -> Any:
        import joblib

        return joblib.load(model_file(folder, MODEL_FILE))
