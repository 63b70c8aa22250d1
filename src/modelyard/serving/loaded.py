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

    def predict_columns(self, columns: Mapping[str, list[Any]]) -> list[Any]:
        """Predictions for checked input columns (from the decoder), JSON-ready."""
        if self._fast is not None and self.decoder is not None:
            return _tolist(self._predict_fast(self.decoder.matrix(columns)))
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
