"""Reproducing a model version: run again the pipeline version that registered it.

The stored source of that pipeline version runs with the recorded parameters and with
``ctx.now`` set to the recorded run time (so training sets are cut as they were), under a
context whose ``register`` keeps the model instead of registering it: no new version, no
alias moved. The original version and the reproduced model then predict on the original's
training set, rebuilt from its lineage (or, for a version registered without one, on the
input example kept with it), and the predictions are compared exactly and within ``rtol``.
Libraries whose installed version differs from the original run's are named.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.pipelines.context import LogCapture, PipelineContext, capture_output
from modelyard.pipelines.definitions import Pipeline

if TYPE_CHECKING:
    from modelyard.backends.metadata.registry import VersionRecord
    from modelyard.features.training import TrainingSet
    from modelyard.pipelines.service import PipelineService
    from modelyard.tracking.run import Run

__all__ = ["LibraryChange", "Reproduction", "reproduce"]


@dataclass(frozen=True)
class LibraryChange:
    """A library whose version differs between the original run and now (None: absent)."""

    name: str
    then: str | None
    now: str | None


@dataclass(frozen=True)
class Reproduction:
    """The outcome of reproducing ``model:version``."""

    model: str
    version: int
    pipeline: str
    pipeline_version: int
    pipeline_run: str
    run_at: datetime
    params: dict[str, Any]
    data: str  # "training set" or "input example": the rows both models predicted on
    rows: int
    exact: bool
    matches: bool  # equal within rtol
    rtol: float
    max_abs_diff: float
    max_rel_diff: float
    libraries: list[LibraryChange] = field(default_factory=list)
    tracking_run: str | None = None  # the tracking run of the reproduction, if it used one

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_at"] = self.run_at.isoformat()
        return data

    def lines(self) -> list[str]:
        verdict = ("matches exactly" if self.exact else
                   f"matches within rtol={self.rtol:g}" if self.matches else
                   f"does NOT match within rtol={self.rtol:g}")
        out = [f"version: {self.model}:{self.version}",
               f"pipeline: {self.pipeline} v{self.pipeline_version} "
               f"(run {self.pipeline_run}, as of {self.run_at.isoformat()})",
               f"params: {self.params}",
               f"compared on: {self.rows} rows of the {self.data}",
               f"predictions: {verdict} (max abs diff {self.max_abs_diff:.6g}, "
               f"max rel diff {self.max_rel_diff:.6g})"]
        if self.libraries:
            out.append("libraries changed since the original run: " + ", ".join(
                f"{c.name} {c.then or 'absent'} -> {c.now or 'absent'}"
                for c in self.libraries))
        else:
            out.append("libraries: the same versions as the original run")
        return out


class _ReproducingContext(PipelineContext):
    """A context whose ``register`` (and its run's ``log_model``) keeps the model
    instead of registering it."""

    def __init__(self, original: VersionRecord, reproduces: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.original = original
        self.reproduces = reproduces
        self.captured: list[Any] = []

    @property
    def run(self) -> Run:
        if self._run is None:
            self._run = self.tracking.start_run(
                f"pipeline:{self.pipeline}", name=f"reproduce-{self.reproduces}",
                nested=False, tags={"modelyard.pipeline": self.pipeline,
                                    "modelyard.pipeline_version": self.version,
                                    "modelyard.reproduces": self.reproduces})
            self._run.log_params(self.params)
            self._run.log_model = self._keep  # type: ignore[method-assign]
        return self._run

    def _keep(self, model: Any, name: str, *, training_set: TrainingSet | None = None,
              **options: Any) -> VersionRecord:
        """``ctx.run.log_model`` in a reproduction: the model is kept, not registered."""
        self.captured.append(model)
        self.training = training_set
        return self.original

    def register(self, model: Any, *, training_set: TrainingSet | None = None,
                 evaluation: Any = None, label: str | None = None,
                 **options: Any) -> VersionRecord:
        self.captured.append(model)
        self.training = training_set
        return self.original


def _version_of(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            found[name.strip().lower()] = version.strip()
    return found


def _library_changes(service: PipelineService, record: VersionRecord) -> list[LibraryChange]:
    from importlib import metadata

    from modelyard.tracking.environment import installed_packages
    from modelyard.tracking.service import REQUIREMENTS_ARTIFACT

    then: dict[str, str] = {}
    if record.run_id is not None:
        try:
            then = _version_of(service.services.tracking.read_artifact(
                record.run_id, REQUIREMENTS_ARTIFACT).decode())
        except NotFoundError:
            then = {}
    now = _version_of(installed_packages())
    for name, version in (record.spec.get("libraries") or {}).items():
        then.setdefault(name.lower(), str(version))
        if name.lower() not in now:
            with contextlib.suppress(metadata.PackageNotFoundError):
                now[name.lower()] = metadata.version(name)
    return [LibraryChange(name, version, now.get(name))
            for name, version in sorted(then.items()) if version != now.get(name)]


def _predict(model: Any, frame: Any, what: str) -> Any:
    import numpy as np

    predict = getattr(model, "predict", None)
    if predict is None:
        raise InvalidInputError(f"the {what} model ({type(model).__name__}) has no predict() "
                                "to compare predictions with", field="model")
    return np.asarray(predict(frame), dtype=float)


def reproduce(service: PipelineService, ref: str, *, rtol: float = 1e-9) -> Reproduction:
    """Run again the pipeline run that registered ``ref`` (``name:version`` or
    ``name@alias``) and compare the two models' predictions; nothing is registered."""
    import numpy as np
    import pandas as pd

    from modelyard.pipelines.why import _pipeline_run_of

    if not rtol >= 0:
        raise InvalidInputError(f"rtol must be a number of at least 0, not {rtol!r}",
                                field="rtol")
    registry = service.services.models()
    record = registry.get_version(ref)
    label = f"{record.name}:{record.version}"
    run_id = _pipeline_run_of(registry, record)
    if run_id is None:
        raise InvalidInputError(
            f"model {label} was not produced by a pipeline (it was registered by hand), so "
            "there is no pipeline run to reproduce", field="ref", model=record.name,
            version=record.version)
    run = service.store.get_run(run_id)
    pipeline = Pipeline.from_spec(service.store.get_pipeline(run.pipeline, run.version).spec)
    ctx = _ReproducingContext(
        record, label, run_id=uuid.uuid4().hex, pipeline=run.pipeline, version=run.version,
        model=pipeline.model, now=datetime.fromtimestamp(run.run_at_ms / 1000, UTC),
        params=dict(run.params), trigger="reproduce",
        trigger_detail={"model": record.name, "version": record.version},
        services=service.services)
    failed = True
    try:
        with capture_output(LogCapture()):
            pipeline.load(f"{run.pipeline} v{run.version}")(ctx)
        failed = False
    finally:
        ctx.close(failed=failed)
    if not ctx.captured:
        raise InvalidInputError(
            f"pipeline {run.pipeline} v{run.version} registered no model through "
            "ctx.register or ctx.run.log_model when run again, so there is nothing to compare with "
            f"{label}", field="pipeline", pipeline=run.pipeline)
    reproduced = ctx.captured[-1]

    signature = registry.signature(label)
    if record.training_set_id is not None:
        frame, data = registry.rebuild_training_set(label).to_pandas(), "training set"
    elif record.spec.get("input_example"):
        frame, data = pd.DataFrame(record.spec["input_example"]), "input example"
    else:
        raise NotFoundError(f"model {label} has neither a training set nor an input example "
                            "to compare predictions on", model=record.name,
                            version=record.version)
    if signature is not None:
        frame = frame[signature.input_names]
    original = _predict(registry.load(label), frame, "original")
    again = _predict(reproduced, frame, "reproduced")
    if original.shape != again.shape:
        raise InvalidInputError(f"the reproduced model predicts shape {again.shape}, the "
                                f"original {original.shape}", field="predictions")
    diff = np.abs(original - again)
    scale = np.abs(original)
    rel = np.divide(diff, scale, out=np.where(diff > 0, np.inf, 0.0), where=scale > 0)
    return Reproduction(
        model=record.name, version=record.version, pipeline=run.pipeline,
        pipeline_version=run.version, pipeline_run=run.run_id, run_at=ctx.now,
        params=dict(run.params), data=data, rows=len(frame),
        exact=bool(np.array_equal(original, again, equal_nan=True)),
        matches=bool(np.allclose(again, original, rtol=rtol, atol=0.0, equal_nan=True)),
        rtol=float(rtol), max_abs_diff=float(diff.max(initial=0.0)),
        max_rel_diff=float(rel.max(initial=0.0)),
        libraries=_library_changes(service, record),
        tracking_run=None if ctx._run is None else ctx._run.run_id)
