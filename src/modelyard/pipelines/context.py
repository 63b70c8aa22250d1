"""What a pipeline function receives: :class:`PipelineContext`, and the capture of its
output (stdout, stderr and logging, bounded) and of its steps."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError, RunStateError

if TYPE_CHECKING:
    from modelyard.backends.metadata.predictions import PredictionStore
    from modelyard.backends.metadata.registry import VersionRecord
    from modelyard.features.service import FeatureService
    from modelyard.features.training import TrainingSet
    from modelyard.monitoring.service import MonitoringService
    from modelyard.registry.service import ModelRegistry
    from modelyard.tracking.run import Run
    from modelyard.tracking.service import TrackingService

__all__ = ["LogCapture", "PipelineContext", "PipelineServices"]

LOG_LIMIT = 64_000  # characters of output kept per run: the first and the last half


@dataclass(frozen=True)
class PipelineServices:
    """The domain services a pipeline run uses (given, not the whole Yard)."""

    tracking: TrackingService
    models: Callable[[], ModelRegistry]
    features: Callable[[], FeatureService]
    monitoring: Callable[[], MonitoringService] | None = None
    predictions: Callable[[], PredictionStore] | None = None  # for shadow trials


class LogCapture(io.TextIOBase):
    """A bounded text sink: keeps the first and the last ``limit / 2`` characters."""

    def __init__(self, limit: int = LOG_LIMIT, echo: Any = None) -> None:
        self.limit = limit
        self.echo = echo
        self._head: list[str] = []
        self._head_size = 0
        self._tail: list[str] = []
        self._tail_size = 0
        self._dropped = 0
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.echo is not None:
            self.echo.write(text)
        size = len(text)
        with self._lock:
            half = self.limit // 2
            if self._head_size < half:
                part = text[:half - self._head_size]
                self._head.append(part)
                self._head_size += len(part)
                text = text[len(part):]
            if text:
                self._tail.append(text)
                self._tail_size += len(text)
                while self._tail_size - len(self._tail[0]) >= half and len(self._tail) > 1:
                    first = self._tail.pop(0)
                    self._tail_size -= len(first)
                    self._dropped += len(first)
        return size

    def text(self) -> str:
        with self._lock:
            middle = (f"\n[... {self._dropped} characters left out ...]\n"
                      if self._dropped else "")
            return "".join(self._head) + middle + "".join(self._tail)


@contextlib.contextmanager
def capture_output(sink: LogCapture) -> Iterator[None]:
    """Send stdout, stderr and every logging record to ``sink`` while the block runs."""
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        sys.stdout.flush()


class PipelineContext:
    """A pipeline run's view of the yard: its time, parameters and the services it uses.

    ``ctx.now`` is the run's time (a schedule's due time, else when the run was asked
    for), as an aware UTC datetime; training sets default to it as their ``as_of``, so a
    run sees only data ingested by then. ``ctx.run`` is the tracking run started for the
    pipeline run (experiment ``pipeline:NAME``); ``ctx.run.log_model(model, ctx.model,
    training_set=...)`` registers the candidate with its lineage.
    """

    def __init__(self, *, run_id: str, pipeline: str, version: int, model: str | None,
                 now: datetime, params: dict[str, Any], trigger: str,
                 trigger_detail: dict[str, Any], services: PipelineServices,
                 on_step: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        self.run_id = run_id
        self.pipeline = pipeline
        self.version = version
        self.model = model
        self.now = now
        self.params = params
        self.trigger = trigger
        self.trigger_detail = trigger_detail
        self.log = logging.getLogger(f"modelyard.pipeline.{pipeline}")
        self.steps: list[dict[str, Any]] = []
        self.registered: list[VersionRecord] = []
        self.evaluation: Any = None  # the frozen data the candidate and champion meet on
        self.training: Any = None  # the training set of the last version registered
        self.evaluation_label: str | None = None
        self._services = services
        self._on_step = on_step
        self._run: Run | None = None

    def __repr__(self) -> str:
        return (f"PipelineContext(pipeline={self.pipeline!r}, run_id={self.run_id!r}, "
                f"now={self.now.isoformat()!r})")

    @property
    def tracking(self) -> TrackingService:
        return self._services.tracking

    @property
    def models(self) -> ModelRegistry:
        return self._services.models()

    @property
    def features(self) -> FeatureService:
        return self._services.features()

    @property
    def monitoring(self) -> MonitoringService:
        """Monitoring: ``ctx.monitoring.run()`` checks every monitored model, so a
        scheduled pipeline can run the checks (whose alerts may trigger retraining)."""
        if self._services.monitoring is None:
            raise RunStateError("this pipeline service was given no monitoring service")
        return self._services.monitoring()

    @property
    def run(self) -> Run:
        """The tracking run of this pipeline run, started on first use."""
        if self._run is None:
            self._run = self.tracking.start_run(
                f"pipeline:{self.pipeline}", name=f"{self.pipeline}-{self.run_id[:8]}",
                nested=False, tags={"modelyard.pipeline": self.pipeline,
                                    "modelyard.pipeline_version": self.version,
                                    "modelyard.pipeline_run": self.run_id,
                                    "modelyard.trigger": self.trigger})
            self._run.log_params(self.params)
        return self._run

    def training_set(self, spine: Any = None, features: Sequence[str] | str = (), *,
                     label: str | None = None, timestamp: str | None = None,
                     as_of: datetime | str | None = None, start: datetime | None = None,
                     end: datetime | None = None) -> TrainingSet:
        """A point-in-time training set, as of the run's time unless told otherwise."""
        return self.features.training_set(spine, features, label=label, timestamp=timestamp,
                                          as_of=self.now if as_of is None else as_of,
                                          start=start, end=end)

    def register(self, model: Any, *, training_set: TrainingSet | None = None,
                 evaluation: Any = None, label: str | None = None,
                 **options: Any) -> VersionRecord:
        """Register ``model`` as the next version of the pipeline's model, from the run.

        ``evaluation`` (a training set, or a DataFrame with the label column) is the data
        a pipeline with a policy evaluates this candidate and the champion on; ``label``
        names its label column when neither it nor the model's training set does."""
        if self.model is None:
            raise InvalidInputError(
                f"pipeline {self.pipeline!r} declares no model to register versions of: "
                "give @modelyard.pipeline a model=, or call ctx.run.log_model(model, NAME)",
                field="model")
        version = self.run.log_model(model, self.model, training_set=training_set, **options)
        self.registered.append(version)
        self.training = training_set
        if evaluation is not None:
            self.evaluation = evaluation
            self.evaluation_label = label or getattr(evaluation, "label", None)
        return version

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Record a named step: when it started, how long it took, how it ended."""
        record: dict[str, Any] = {"name": str(name), "started_at_ms": int(time.time() * 1000),
                                  "status": "running"}
        self.steps.append(record)
        self._changed()
        began = time.perf_counter()
        try:
            yield
        except BaseException:
            record["status"] = "failed"
            raise
        else:
            record["status"] = "succeeded"
        finally:
            record["seconds"] = round(time.perf_counter() - began, 3)
            self._changed()

    def _changed(self) -> None:
        if self._on_step is not None:
            self._on_step([dict(s) for s in self.steps])

    def close(self, failed: bool) -> None:
        if self._run is not None:
            self._run.end("failed" if failed else "finished")
