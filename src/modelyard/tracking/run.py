"""A live run: what a training script logs to, usually as a context manager."""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import numbers
import os
import re
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.base import ArtifactEntry, MetricPoint, RunInfo, RunRecord
from modelyard.errors import InvalidInputError, InvalidMetricError, RunStateError

if TYPE_CHECKING:
    from modelyard.backends.metadata.registry import VersionRecord
    from modelyard.features.training import TrainingSet
    from modelyard.tracking.service import TrackingService

NOTE_TAG = "modelyard.note"
ERROR_TAG = "modelyard.error"
TRAINING_SET_TAG = "modelyard.training_set"
MODEL_TAG = "modelyard.model"
_KEY = re.compile(r"^[\w\-. /:]{1,255}$")
MAX_PARAM_LENGTH = 8_000


def validate_key(kind: str, key: object) -> str:
    if not isinstance(key, str) or not _KEY.match(key) or key.startswith("/"):
        raise InvalidInputError(
            f"{kind} name {key!r} is not valid: use 1-255 letters, digits, and _ - . / : or "
            "spaces, not starting with '/'",
            field=kind, value=repr(key),
        )
    return key


def _metric_value(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidMetricError(
            f"metric {key!r} must be a real number, got {type(value).__name__} {value!r}",
            field=key,
        )
    v = float(value)
    if not math.isfinite(v):
        raise InvalidMetricError(
            f"metric {key!r} must be finite, got {v}; NaN and infinity are refused so that "
            "searches and comparisons stay meaningful", field=key,
        )
    return v


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Run:
    """Logs params, metrics, tags, notes and artifacts to one run.

    Use it as a context manager: leaving the block ends the run as ``finished``, or as
    ``failed`` (``killed`` on KeyboardInterrupt) when an exception escapes it.
    """

    def __init__(self, service: TrackingService, info: RunInfo) -> None:
        self._service = service
        self.info = info
        self._steps: dict[str, int] = {}
        self._checked_keys: set[str] = set()
        self._ended = False
        _open_runs.add(self)

    # --- identity -------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.info.run_id

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def experiment_id(self) -> int:
        return self.info.experiment_id

    @property
    def ended(self) -> bool:
        return self._ended

    def __repr__(self) -> str:
        return f"Run(run_id={self.run_id!r}, name={self.name!r})"

    def _live(self) -> None:
        if self._ended:
            raise RunStateError(f"run {self.run_id} has ended; start a new run to log more",
                                run_id=self.run_id)

    # --- params and tags ------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params are immutable: logging a key again with another value is refused."""
        self._live()
        clean: dict[str, str] = {}
        for key, value in params.items():
            validate_key("param", key)
            text = value if isinstance(value, str) else json.dumps(value, default=str) \
                if isinstance(value, (list, dict, tuple)) else str(value)
            if len(text) > MAX_PARAM_LENGTH:
                raise InvalidInputError(
                    f"param {key!r} is {len(text)} characters long; the limit is "
                    f"{MAX_PARAM_LENGTH} (log long text as an artifact)", field=key,
                )
            clean[key] = text
        self._service.store.log_params(self.run_id, clean)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._live()
        clean = {validate_key("tag", k): str(v) for k, v in tags.items()}
        self._service.store.set_tags(self.run_id, clean)

    def set_note(self, text: str) -> None:
        """A free-text note (markdown welcome), shown by ``modelyard runs show``."""
        self.set_tags({NOTE_TAG: text})

    # --- metrics --------------------------------------------------------------------------

    def log_metric(self, key: str, value: float, step: int | None = None,
                   timestamp: int | None = None) -> None:
        """Buffered; without ``step`` each key counts its own steps from 0."""
        if self._ended:
            self._live()
        if key not in self._checked_keys:
            validate_key("metric", key)
            self._checked_keys.add(key)
        v = _metric_value(key, value)
        if step is None:
            step = self._steps.get(key, -1) + 1
        self._steps[key] = step
        self._service.buffer.add(MetricPoint(
            self.info.run_id, key, v, int(step),
            _now_ms() if timestamp is None else int(timestamp),
        ))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None,
                    timestamp: int | None = None) -> None:
        """Several metrics at once: all are validated before any is buffered."""
        self._live()
        ts = _now_ms() if timestamp is None else int(timestamp)
        points = []
        steps = dict(self._steps)
        for key, value in metrics.items():
            if key not in self._checked_keys:
                validate_key("metric", key)
            v = _metric_value(key, value)
            s = steps.get(key, -1) + 1 if step is None else int(step)
            steps[key] = s
            points.append(MetricPoint(self.info.run_id, key, v, s, ts))
        self._checked_keys.update(metrics)
        self._steps = steps
        self._service.buffer.extend(points)

    def flush(self) -> None:
        """Write buffered metrics now (otherwise done in the background and at the end)."""
        self._service.buffer.flush()

    # --- artifacts ------------------------------------------------------------------------

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None, *,
                     idempotency_key: str | None = None) -> list[ArtifactEntry]:
        """Keep a file, or every file of a folder, under ``name`` (default: its own name).
        A retry under the same ``idempotency_key`` (same names and contents) returns the
        entries first recorded and writes nothing."""
        self._live()
        return self._service.log_artifact(self.run_id, Path(path), name,
                                          idempotency_key=idempotency_key)

    def log_text(self, text: str, name: str) -> ArtifactEntry:
        self._live()
        return self._service.log_bytes(self.run_id, text.encode("utf-8"), name)

    def log_dict(self, data: Mapping[str, Any], name: str) -> ArtifactEntry:
        self._live()
        body = json.dumps(data, indent=2, sort_keys=True, default=str).encode()
        return self._service.log_bytes(self.run_id, body, name)

    def log_pickle(self, obj: Any, name: str) -> ArtifactEntry:
        """Keep a Python object with joblib (fitted models and the like)."""
        self._live()
        import joblib

        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "object.joblib"
            joblib.dump(obj, target)
            return self._service.log_artifact(self.run_id, target, name)[0]

    def log_training_set(self, training_set: TrainingSet) -> None:
        """Record the training set this run used: its id as a tag, its lineage (feature
        versions, table commits, spine hash) as ``modelyard/training_set.json``."""
        self._live()
        self.set_tags({TRAINING_SET_TAG: training_set.training_set_id})
        body = json.dumps(training_set.lineage(), indent=2, sort_keys=True).encode()
        self._service.log_bytes(self.run_id, body, "modelyard/training_set.json")

    def log_model(self, model: Any, name: str, *, training_set: TrainingSet | None = None,
                  **options: Any) -> VersionRecord:
        """Register ``model`` as the next version of ``name``, its lineage pointing at this
        run (and at ``training_set``, which is logged to the run too). ``options`` are those
        of ``yard.models.register`` (input_example, features, description, flavor, onnx,
        idempotency_key: a retry under the same key returns the version first
        registered)."""
        self._live()
        if self._service.models is None:
            raise RunStateError("this run's tracking service has no model registry; start the "
                                "run from a Yard (modelyard.connect())")
        if training_set is not None:
            self.log_training_set(training_set)
        version = self._service.models().register(model, name, training_set=training_set,
                                                  run_id=self.run_id, **options)
        self.set_tags({MODEL_TAG: f"{version.name}:{version.version}"})
        return version

    # --- lifecycle ------------------------------------------------------------------------

    def end(self, status: str = "finished") -> None:
        if self._ended:
            return
        if status not in ("finished", "failed", "killed"):
            raise InvalidInputError(
                f"a run ends as finished, failed or killed, not {status!r}", field="status"
            )
        self._service.end_run(self, status)
        self._ended = True
        _open_runs.discard(self)

    def data(self) -> RunRecord:
        """Everything stored for this run (buffered metrics are flushed first)."""
        self._service.buffer.flush()
        return self._service.get_run(self.run_id)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.end("finished")
            return
        status = "killed" if issubclass(exc_type, KeyboardInterrupt) else "failed"
        with contextlib.suppress(Exception):  # the original exception matters more
            self._service.store.set_tags(self.run_id,
                                         {ERROR_TAG: f"{exc_type.__name__}: {exc}"[:8000]})
        self.end(status)


# --- runs left open at interpreter exit ----------------------------------------------------

_open_runs: weakref.WeakSet[Run] = weakref.WeakSet()
_uncaught: list[BaseException] = []
_hook_lock = threading.Lock()
_hook_installed = False


def install_exit_hooks() -> None:
    """End runs still open at exit: failed if an exception ended the program, else finished."""
    global _hook_installed
    with _hook_lock:
        if _hook_installed:
            return
        _hook_installed = True
        previous = sys.excepthook

        def hook(exc_type: type[BaseException], exc: BaseException,
                 tb: TracebackType | None) -> None:
            _uncaught.append(exc)
            previous(exc_type, exc, tb)

        sys.excepthook = hook
        atexit.register(_end_open_runs)


def _end_open_runs() -> None:
    status = "failed" if _uncaught else "finished"
    if _uncaught and isinstance(_uncaught[-1], KeyboardInterrupt):
        status = "killed"
    for run in list(_open_runs):
        with contextlib.suppress(Exception):  # exiting anyway; never mask the exit
            run.end(status)
