"""A registered model version made ready to answer requests.

Everything a request would otherwise pay for is done here, once per version: the archive is
loaded (its sha256 checked by the artifact store), the verified ONNX twin is preferred where
one exists, the signature is compiled into an :class:`~modelyard.serving.inputs.InputDecoder`,
and, for a twin that takes one numeric tensor, the column order and output handling of the
fast path are fixed, so a request goes from JSON values to onnxruntime with one NumPy array
in between.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError
from modelyard.serving.inputs import InputDecoder

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelyard.backends.metadata.registry import VersionRecord
    from modelyard.registry.service import ModelRegistry
    from modelyard.registry.signature import Signature

__all__ = ["LoadedVersion", "load_version"]

ONNX = "onnx"


@dataclass
class LoadedVersion:
    """One version in memory: the object that predicts and how requests reach it."""

    record: VersionRecord
    model: Any
    runtime: str  # "onnx" (the verified twin) or the version's flavor
    signature: Signature | None
    decoder: InputDecoder | None
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    _fast: Any = None  # (session, input name, column order, output handling) or None
    _sklearn: _SklearnPath | None = None  # a scikit-learn model's direct path

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def input_names(self) -> list[str]:
        return [] if self.signature is None else self.signature.input_names

    @property
    def output_names(self) -> list[str]:
        names = [] if self.signature is None else self.signature.output_names
        return names or ["prediction"]

    @property
    def takes_matrix(self) -> bool:
        """Whether requests reach the model as one float matrix (an ONNX twin's fast path
        or a scikit-learn model on numeric inputs): see :meth:`predict_matrix`."""
        return (self._fast is not None or self._sklearn is not None) and (
            self.decoder is not None)

    @property
    def calls_without_gil(self) -> bool:
        """Whether a model call spends its time in native code that lets go of the GIL
        (onnxruntime), so that other requests go on while it runs in another thread; a
        walked forest makes one Python call per tree and holds the GIL between them."""
        return self._fast is not None

    def predict_matrix(self, matrix: np.ndarray) -> list[Any]:
        """Predictions for a checked float matrix (rows x inputs, in the signature's
        order: ``decoder.rows_matrix``), JSON-ready; only when :attr:`takes_matrix`."""
        if self._fast is not None:
            return _tolist(self._predict_fast(matrix))
        assert self._sklearn is not None
        return self._sklearn.predict(self, matrix)

    def predict_columns(self, columns: Mapping[str, list[Any]]) -> list[Any]:
        """Predictions for checked input columns (from the decoder), JSON-ready."""
        if self.takes_matrix:
            assert self.decoder is not None
            return self.predict_matrix(self.decoder.matrix(columns))
        frame = self.decoder.frame(columns) if self.decoder is not None else _frame(columns)
        return self.predict_frame(frame)

    def predict_frame(self, frame: pd.DataFrame) -> list[Any]:
        """Predictions for a frame already in the model's input types."""
        try:
            outputs = self.model.predict(frame)
        except InvalidInputError:
            raise
        except Exception as exc:
            raise InvalidInputError(
                f"model {self.name}:{self.version} could not predict on this input: "
                f"{type(exc).__name__}: {exc}", field="instances") from exc
        return _tolist(outputs)

    def _predict_fast(self, matrix: np.ndarray) -> np.ndarray:
        import numpy as np

        session, input_name, order, dtype, pick = self._fast
        feed = matrix if order is None else matrix[:, order]
        results = session.run(None, {input_name: np.ascontiguousarray(feed, dtype=dtype)})
        out: np.ndarray = pick(results)
        return out


def load_version(registry: ModelRegistry, record: VersionRecord, *,
                 prefer_onnx: bool = True) -> LoadedVersion:
    """Load ``record`` for serving: its verified ONNX twin when it has one (and
    ``prefer_onnx``), else the model itself."""
    from modelyard.registry.signature import Signature

    began = time.perf_counter()
    signature = (Signature.from_dict(record.spec["signature"])
                 if record.spec.get("signature") else None)
    twin = (record.spec.get("onnx") or {}).get("status") == "ok" and record.onnx_sha256
    if prefer_onnx and twin:
        from modelyard.registry.flavors.onnx import OnnxModel

        assert record.onnx_sha256 is not None
        model: Any = OnnxModel.from_bytes(registry.artifacts.get_bytes(record.onnx_sha256),
                                          threads=1)
        runtime = ONNX
    else:
        model = registry.load(record.name, record.version)
        runtime = record.flavor
    decoder = (InputDecoder(signature, float_width=_float_width(model, runtime))
               if signature is not None else None)
    loaded = LoadedVersion(record, model, runtime, signature, decoder)
    if runtime == ONNX and decoder is not None and decoder.numeric:
        loaded._fast = _fast_path(model, decoder.names)
    elif runtime == "sklearn" and decoder is not None and signature is not None:
        loaded._sklearn = _SklearnPath.of(model, signature)
    loaded.load_seconds = time.perf_counter() - began
    return loaded


def _float_width(model: Any, runtime: str) -> str:
    """``float32`` when the model takes float32 tensors (an ONNX twin usually does), so a
    float input beyond float32's range is refused rather than turned into infinity."""
    if runtime != ONNX:
        return "float64"
    from modelyard.registry.flavors.onnx import _NUMPY_TYPES

    kinds = {_NUMPY_TYPES.get(spec.type) for spec in getattr(model, "inputs", ())}
    return "float32" if kinds & {"float32", "float16"} else "float64"


def _fast_path(model: Any, names: list[str]) -> Any:
    """How a numeric twin with one 2-D input runs straight from a float matrix, or None."""
    import numpy as np

    from modelyard.registry.flavors.onnx import _NUMPY_TYPES

    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 2:
        return None
    spec = model.inputs[0]
    dtype = _NUMPY_TYPES.get(spec.type)
    if dtype not in ("float32", "float64"):
        return None
    columns = model.columns or names
    if sorted(columns) != sorted(names):
        return None
    order = None if columns == names else [names.index(c) for c in columns]
    label, proba, mode = model.label_index, model.proba_index, model.predict_mode

    def pick(results: list[Any]) -> np.ndarray:
        if mode != "label":
            values = results[proba]
            array = (np.array([[row[k] for k in sorted(row)] for row in values])
                     if isinstance(values, list) else np.asarray(values))
            return array if mode == "probabilities" else array[:, 1]
        out = np.asarray(results[label])
        return out.reshape(-1) if out.ndim == 2 and out.shape[1] == 1 else out

    return model.session, spec.name, order, np.dtype(dtype), pick


@dataclass(frozen=True)
class _SklearnPath:
    """How a scikit-learn model on numeric inputs runs straight from a float matrix.

    A one-row ``predict`` of a forest costs far more than its row: input validation, a
    DataFrame built and checked, a joblib dispatch per call. Here the model gets the NumPy
    matrix itself when it was fitted on arrays (a frame over that matrix, without copying
    it, when it recorded feature names); inside ``assume_finite`` when the signature refuses
    nulls, since the input checks have then already refused NaN and infinities; and the
    loaded copy predicts with ``n_jobs=1`` (set once at load), so that concurrent requests
    are not each spread over a thread pool on top of the server's own threads.
    """

    names: tuple[str, ...]
    as_frame: bool
    finite: bool
    trees: tuple[Any, ...] | None = None  # a regression forest's trees, walked directly

    @classmethod
    def of(cls, model: Any, signature: Signature) -> _SklearnPath | None:
        kinds = {spec.type for spec in signature.inputs}
        if not signature.inputs or not kinds <= {"float", "int"} or not hasattr(
                model, "predict"):
            return None
        recorded = getattr(model, "feature_names_in_", None)
        names = tuple(signature.input_names)
        if recorded is not None and sorted(map(str, recorded)) != sorted(names):
            return None
        if recorded is not None and kinds != {"float"}:
            return None  # a frame of whole numbers keeps its dtypes: the checked frame path
        if recorded is None and getattr(model, "n_features_in_", len(names)) != len(names):
            return None
        _single_threaded(model)
        finite = not any(spec.nullable for spec in signature.inputs)
        order = tuple(map(str, recorded)) if recorded is not None else names
        if order != names:
            return None  # the decoder's matrix is in the signature's order
        path = cls(names, recorded is not None, finite)
        trees = _forest_trees(model)
        if trees is not None:
            direct = cls(names, recorded is not None, finite, trees)
            if direct._agrees(model):
                return direct
        return path

    def _agrees(self, model: Any) -> bool:
        """Whether walking the trees directly gives the model's own predictions, bit for
        bit, on a few seeded rows (checked once, at load)."""
        import numpy as np

        rows = np.random.default_rng(0).normal(size=(8, len(self.names)))
        try:
            own = np.asarray(model.predict(
                rows if not self.as_frame else _frame_of(rows, self.names)))
            return bool(np.array_equal(own, self._walk(rows)))
        except Exception:
            return False

    def _walk(self, matrix: np.ndarray) -> np.ndarray:
        """A regression forest's prediction as scikit-learn computes it (float32 inputs,
        the trees' outputs added in order, then divided by their number), without its
        per-tree dispatch, warnings filters and checks, which cost far more than one row."""
        import numpy as np

        assert self.trees is not None
        feed = np.ascontiguousarray(matrix, dtype=np.float32)
        total = np.zeros(len(feed), dtype=np.float64)
        for tree in self.trees:
            total += tree.predict(feed)[:, 0]
        total /= len(self.trees)
        return total

    def predict(self, loaded: LoadedVersion, matrix: np.ndarray) -> list[Any]:
        import sklearn

        if self.trees is not None:
            return _tolist(self._walk(matrix))
        feed: Any = matrix
        if self.as_frame:

            feed = _frame_of(matrix, self.names)
        try:
            with sklearn.config_context(assume_finite=self.finite):
                outputs = loaded.model.predict(feed)
        except Exception as exc:
            raise InvalidInputError(
                f"model {loaded.name}:{loaded.version} could not predict on this input: "
                f"{type(exc).__name__}: {exc}", field="instances") from exc
        return _tolist(outputs)


def _frame_of(matrix: np.ndarray, names: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(matrix, columns=list(names), copy=False)


def _forest_trees(model: Any) -> tuple[Any, ...] | None:
    """The low-level trees of a single-output regression forest (RandomForestRegressor,
    ExtraTreesRegressor), or None for any other model."""
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

    if type(model) not in (RandomForestRegressor, ExtraTreesRegressor):
        return None
    if getattr(model, "n_outputs_", 1) != 1 or not getattr(model, "estimators_", None):
        return None
    return tuple(estimator.tree_ for estimator in model.estimators_)


def _single_threaded(model: Any) -> None:
    """Set every ``n_jobs`` of ``model`` (and of its steps) to 1, where it has any."""
    try:
        params = model.get_params(deep=True)
    except Exception:  # not a scikit-learn estimator after all
        return
    jobs = {key: 1 for key, value in params.items()
            if key == "n_jobs" or key.endswith("__n_jobs")}
    if jobs:
        try:
            model.set_params(**jobs)
        except Exception:  # a parameter it reports but will not take: left as it is
            return


def _frame(columns: Mapping[str, list[Any]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(dict(columns))


def _tolist(outputs: Any) -> list[Any]:
    """Model outputs as JSON-ready Python values (a frame or 2-D array: one list per row)."""
    import numpy as np

    if hasattr(outputs, "to_numpy"):
        outputs = outputs.to_numpy()
    array = np.asarray(outputs)
    if array.dtype.kind == "f":
        values: list[Any] = array.astype(np.float64).tolist()
        return values
    values = array.tolist()
    return values
