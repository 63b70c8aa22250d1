"""The ``onnx`` flavor: an ONNX model, run with onnxruntime through :class:`OnnxModel`.

An ``onnx.ModelProto``, the bytes of one, or an :class:`OnnxModel` is saved as
``model.onnx``; loading gives back an :class:`OnnxModel` (an :class:`OnnxClassifier`, which
adds ``predict_proba``, when the graph has a probability output). Nothing is unpickled.

Two input layouts are understood:

* one 2-D tensor: the frame's columns stacked in order (or in the order the model's metadata
  ``modelyard.columns`` lists) and cast to the tensor's type, usually float32;
* one input per column, matched by name, each shaped ``(n, 1)`` in the type the graph
  declares (string columns as text).

Metadata ``modelyard.predict`` may say what ``predict`` returns: ``label`` (the default: the
first output that is not the probabilities), ``probabilities``, or
``positive_probability`` (the second column of the probabilities, as a raw binary Booster
predicts).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelyard.errors import ArtifactIntegrityError, InvalidInputError
from modelyard.registry.flavors.base import Flavor, model_file

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["COLUMNS_KEY", "PREDICT_KEY", "OnnxClassifier", "OnnxFlavor", "OnnxModel"]

MODEL_FILE = "model.onnx"
COLUMNS_KEY = "modelyard.columns"
PREDICT_KEY = "modelyard.predict"
PREDICT_MODES = ("label", "probabilities", "positive_probability")

_NUMPY_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


class OnnxModel:
    """An ONNX model ready to predict on data frames (an onnxruntime session inside)."""

    def __init__(self, data: bytes, *, threads: int | None = None) -> None:
        import onnxruntime

        self._data = bytes(data)
        self._threads = threads
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # shape notes from converted models are noise here
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                self._data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise InvalidInputError(
                f"onnxruntime cannot load this model: {_first_line(exc)}", field="model") from exc
        self.inputs = list(self.session.get_inputs())
        self.outputs = list(self.session.get_outputs())
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            columns = json.loads(meta[COLUMNS_KEY]) if COLUMNS_KEY in meta else None
        except ValueError as exc:
            raise InvalidInputError(f"metadata {COLUMNS_KEY} is not JSON: {exc}",
                                    field="model") from exc
        self.columns: list[str] | None = (
            [str(c) for c in columns] if isinstance(columns, list) and columns else None)
        self.predict_mode = meta.get(PREDICT_KEY, "label")
        if self.predict_mode not in PREDICT_MODES:
            raise InvalidInputError(
                f"metadata {PREDICT_KEY}={self.predict_mode!r} is not one of "
                f"{', '.join(PREDICT_MODES)}", field="model")
        self.proba_index = _probability_output(self.outputs)
        self.label_index = next(
            (i for i in range(len(self.outputs)) if i != self.proba_index), 0)

    @classmethod
    def from_bytes(cls, data: bytes, *, threads: int | None = None) -> OnnxModel:
        """The wrapper for serialized ONNX bytes: an OnnxClassifier if it has probabilities."""
        model = cls(data, threads=threads)
        if model.proba_index is not None and cls is OnnxModel:
            model.__class__ = OnnxClassifier
        return model

    def to_bytes(self) -> bytes:
        return self._data

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def predict(self, frame: Any) -> np.ndarray:
        """Predictions for every row of ``frame`` (a pandas DataFrame or a 2-D array)."""
        results = self._run(frame)
        if self.predict_mode != "label":
            proba = self._probabilities(results)
            return proba if self.predict_mode == "probabilities" else proba[:, 1]
        out = _as_array(results[self.label_index])
        return out.reshape(-1) if out.ndim == 2 and out.shape[1] == 1 else out

    def _probabilities(self, results: list[Any]) -> np.ndarray:
        if self.proba_index is None:
            raise InvalidInputError("this ONNX model has no probability output", field="model")
        return _as_array(results[self.proba_index])

    def _run(self, frame: Any) -> list[Any]:
        feeds = self._feeds(frame)
        try:
            return list(self.session.run(None, feeds))
        except Exception as exc:
            raise InvalidInputError(
                f"the ONNX model cannot run on this input: {_first_line(exc)}",
                field="frame") from exc

    def _feeds(self, frame: Any) -> dict[str, Any]:
        import numpy as np

        if isinstance(frame, np.ndarray):
            if len(self.inputs) != 1 or frame.ndim != 2:
                raise InvalidInputError(
                    "an array input needs a model with one 2-D input", field="frame")
            return {self.inputs[0].name: _cast(frame, self.inputs[0].type)}
        data = _to_pandas(frame)
        names = [str(c) for c in data.columns]
        if self._per_column(names):
            return {i.name: _cast(data[[i.name]], i.type) for i in self.inputs}
        if len(self.inputs) > 1:
            missing = [i.name for i in self.inputs if i.name not in names]
            raise InvalidInputError(
                f"the ONNX model takes one input per column; missing column"
                f"{'s' * (len(missing) != 1)} {', '.join(missing)}", field="columns",
                missing=missing)
        spec = self.inputs[0]
        if self.columns is not None:
            missing = [c for c in self.columns if c not in names]
            if missing:
                raise InvalidInputError(
                    f"missing column{'s' * (len(missing) != 1)} {', '.join(missing)}",
                    field="columns", missing=missing)
            data = data[self.columns]
        width = spec.shape[1] if len(spec.shape) == 2 else None
        if isinstance(width, int) and width != data.shape[1]:
            raise InvalidInputError(
                f"the ONNX model takes {width} columns, the frame has {data.shape[1]}",
                field="columns")
        return {spec.name: _cast(data, spec.type)}

    def _per_column(self, names: list[str]) -> bool:
        if not all(i.name in names for i in self.inputs):
            return False
        shape = self.inputs[0].shape
        return len(self.inputs) > 1 or (len(shape) == 2 and shape[1] == 1)

    def __getstate__(self) -> dict[str, Any]:
        return {"data": self._data, "threads": self._threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        OnnxModel.__init__(self, state["data"], threads=state["threads"])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(inputs={self.input_names}, "
                f"outputs={self.output_names})")


class OnnxClassifier(OnnxModel):
    """An ONNX model whose graph gives class probabilities."""

    def predict_proba(self, frame: Any) -> np.ndarray:
        """Class probabilities, shape ``(n, classes)``."""
        return self._probabilities(self._run(frame))


class OnnxFlavor(Flavor):
    name: ClassVar[str] = "onnx"
    pickled: ClassVar[bool] = False
    base_libraries: ClassVar[tuple[str, ...]] = ("onnxruntime", "numpy")

    @classmethod
    def handles(cls, model: Any) -> bool:
        if isinstance(model, OnnxModel):
            return True
        if isinstance(model, bytes | bytearray):
            return model[:1] == b"\x08"  # field 1 (ir_version) opens every ModelProto
        if type(model).__module__.split(".")[0] != "onnx":
            return False
        import onnx

        return isinstance(model, onnx.ModelProto)

    def note_model(self, model: Any) -> None:
        """Loading needs onnxruntime and numpy only, whatever made the model."""

    def save(self, model: Any, folder: Path) -> None:
        (folder / MODEL_FILE).write_bytes(onnx_bytes(model))

    def load(self, folder: Path) -> Any:
        data = model_file(folder, MODEL_FILE).read_bytes()
        try:
            return OnnxModel.from_bytes(data)
        except InvalidInputError as exc:
            raise ArtifactIntegrityError(
                f"{folder / MODEL_FILE} does not load: {exc.message}", path=str(folder)) from exc


def onnx_bytes(model: Any) -> bytes:
    """Serialized ONNX from a ModelProto, an OnnxModel or bytes (checked to parse)."""
    if isinstance(model, OnnxModel):
        return model.to_bytes()
    if isinstance(model, bytes | bytearray):
        import onnx
        from google.protobuf.message import DecodeError

        try:
            proto = onnx.load_from_string(bytes(model))
        except (DecodeError, ValueError) as exc:
            raise InvalidInputError(f"the bytes are not an ONNX model: {exc}",
                                    field="model") from exc
        if not proto.graph.node and not proto.graph.output:
            raise InvalidInputError("the bytes are not an ONNX model: empty graph",
                                    field="model")
        return bytes(model)
    serialize = getattr(model, "SerializeToString", None)
    if not callable(serialize):
        raise InvalidInputError(
            f"expected an onnx.ModelProto, its bytes or an OnnxModel, got "
            f"{type(model).__name__}", field="model")
    return bytes(serialize())


# --- helpers ------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _probability_output(outputs: list[Any]) -> int | None:
    for i, out in enumerate(outputs):
        if "prob" in out.name.lower():
            return i
    if len(outputs) >= 2:
        second = outputs[1]
        if second.type in ("tensor(float)", "tensor(double)") and len(second.shape) == 2:
            return 1
    return None


def _as_array(value: Any) -> np.ndarray:
    """An output as an array; a list of {class: probability} maps becomes (n, classes)."""
    import numpy as np

    if isinstance(value, list) and value and isinstance(value[0], dict):
        keys = sorted(value[0])
        return np.array([[row[k] for k in keys] for row in value], dtype=np.float64)
    return np.asarray(value)


def _cast(values: Any, onnx_type: str) -> np.ndarray:
    """A pandas Series, DataFrame or array as the numpy type an ONNX input declares."""
    import numpy as np
    import pandas as pd

    dtype = _NUMPY_TYPES.get(onnx_type)
    if dtype is None:
        raise InvalidInputError(f"inputs of type {onnx_type} are not supported", field="model")
    shape = values.shape
    if dtype == "object":
        flat = ["" if _missing(v) else str(v) for v in np.asarray(values).reshape(-1)]
        return np.array(flat, dtype=object).reshape(shape)
    data = values if isinstance(values, pd.Series | pd.DataFrame) else pd.DataFrame(
        np.asarray(values).reshape(shape[0], -1))
    dtypes = data.dtypes if isinstance(data, pd.DataFrame) else [data.dtype]
    kinds = {d.kind if isinstance(d, np.dtype) else "?" for d in dtypes}
    if np.dtype(dtype).kind in "iu" and kinds <= {"i", "u", "b"}:  # exact, past 2**53 too
        return np.ascontiguousarray(data.to_numpy().reshape(shape).astype(dtype))
    try:
        numbers = data.to_numpy(dtype=np.float64, na_value=np.nan).reshape(shape)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"values do not convert to {onnx_type}: {_first_line(exc)}", field="frame") from exc
    if np.dtype(dtype).kind in "iub":
        if np.isnan(numbers).any():
            raise InvalidInputError(
                f"missing values cannot go into a {onnx_type} input", field="frame")
        if not np.array_equal(numbers, np.round(numbers)):
            raise InvalidInputError(
                f"non-whole numbers cannot go into a {onnx_type} input", field="frame")
    return np.ascontiguousarray(numbers.astype(dtype))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or (
        type(value).__name__ in ("NAType", "NaTType"))


def _to_pandas(frame: Any) -> pd.DataFrame:
    import pandas as pd

    if isinstance(frame, pd.DataFrame):
        return frame
    if hasattr(frame, "to_pandas"):  # pyarrow Table, Polars DataFrame
        result = frame.to_pandas()
        if isinstance(result, pd.DataFrame):
            return result
    if isinstance(frame, dict | list):
        return pd.DataFrame(frame)
    raise InvalidInputError(
        f"expected a pandas DataFrame or a 2-D array, got {type(frame).__name__}",
        field="frame")
