"""One check of one model over one window: drift, data quality, performance (measured where
labels arrived, estimated from the model's confidence where they did not), service health,
and the alert rules' verdicts, as one :class:`MonitorResult`.

Each part runs only when it can: drift and quality need a reference profile and rows;
performance needs labels; the estimate needs a classifier's probabilities; health needs the
prediction log. A part that cannot run leaves a note saying why, never an error, so a check
of a quiet window or of a model registered without a reference still stores what it could.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.errors import ModelyardError
from modelyard.monitoring.window_data import WindowData, align_to_reference

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.monitoring.alerts import AlertRule
    from modelyard.monitoring.methods import DriftOptions
    from modelyard.monitoring.rule_checks import RuleOutcome
    from modelyard.monitoring.windows import Window
    from modelyard.stats.profile import ReferenceProfile

__all__ = ["CheckInputs", "MonitorResult", "run_check", "summary_of"]

# statistics kept per feature beside the drift test, for alert rules such as "psi(x) > 0.2"
_FEATURE_STATISTICS = ("psi", "jensenshannon", "wasserstein")
Probabilities = Callable[["pd.DataFrame"], "tuple[Any, list[Any]] | None"]


@dataclass(frozen=True)
class CheckInputs:
    """What a check reads, gathered by :class:`modelyard.monitoring.service.MonitoringService`."""

    model: str
    version: int | None
    window: Window | None
    data: WindowData
    profile: ReferenceProfile | None
    reference_rows: int | None = None
    evaluation: Mapping[str, Any] | None = None  # the registered Evaluation.to_dict()
    evaluation_dataset: str | None = None
    label: str | None = None
    prediction: str = "prediction"
    slice_by: Sequence[str] = ()
    drift_options: DriftOptions | None = None
    probabilities: Probabilities | None = None  # a classifier's predict_proba, and classes
    health: Mapping[str, Any] | None = None
    period_us: int | None = None
    rules: Sequence[AlertRule] = ()
    notes: Sequence[str] = ()


@dataclass
class MonitorResult:
    """A check's findings. :meth:`to_dict` is what is stored and what reports read."""

    result_id: str
    model: str
    version: int | None
    window: dict[str, str] | None
    checked_at: str
    rows: int
    sections: dict[str, Any]  # drift, feature_statistics, quality, performance, estimate, health
    alerts: list[RuleOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    versions: dict[int, int] = field(default_factory=dict)
    reference: dict[str, Any] | None = None

    @property
    def fired(self) -> list[RuleOutcome]:
        return [a for a in self.alerts if a.fired]

    @property
    def drift(self) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.sections.get("drift")
        return found

    def to_dict(self) -> dict[str, Any]:
        return {"result_id": self.result_id, "model": self.model, "version": self.version,
                "versions": sorted(self.versions), "rows_per_version": {
                    str(v): n for v, n in sorted(self.versions.items())},
                "window": self.window, "checked_at": self.checked_at, "rows": self.rows,
                "reference": self.reference, **self.sections,
                "alerts": [a.to_dict() for a in self.alerts], "notes": list(self.notes)}


def run_check(inputs: CheckInputs, checked_at: str) -> MonitorResult:
    from modelyard.monitoring.rule_checks import evaluate_rules

    data, notes = inputs.data, list(inputs.notes)
    sections: dict[str, Any] = {"drift": None, "feature_statistics": {}, "quality": None,
                                "performance": None, "estimate": None,
                                "health": None if inputs.health is None else dict(inputs.health)}
    features = align_to_reference(data.features, inputs.profile)
    outputs = align_to_reference(data.outputs, inputs.profile, outputs=True)
    if data.rows == 0:
        notes.append("no predictions in this window: drift, quality and performance were "
                     "not checked")
    elif inputs.profile is None:
        notes.append(f"model {inputs.model} version {inputs.version} has no reference "
                     "profile: drift and data quality were not checked (register it with a "
                     "training set, or set one with yard.monitoring.set_reference)")
    else:
        sections.update(_drift_and_quality(inputs.profile, features, outputs,
                                           inputs.drift_options))
    if data.rows:
        sections["performance"], note = _performance(inputs, outputs)
        notes += note
        sections["estimate"], note = _estimate(inputs, features, outputs)
        notes += note
    result = MonitorResult(uuid.uuid4().hex, inputs.model, inputs.version,
                           None if inputs.window is None else inputs.window.to_dict(),
                           checked_at, data.rows, sections, notes=notes,
                           versions=dict(data.versions),
                           reference=None if inputs.profile is None else {
                               "version": inputs.version, "rows": inputs.reference_rows})
    result.alerts = evaluate_rules(inputs.rules, result.to_dict())
    return result


def _drift_and_quality(profile: ReferenceProfile, features: pd.DataFrame,
                       outputs: pd.DataFrame, options: DriftOptions | None) -> dict[str, Any]:
    from modelyard.monitoring.drift import column_drift, detect_drift
    from modelyard.monitoring.methods import DriftOptions
    from modelyard.monitoring.quality import check_quality

    predictions = outputs[[c for c in profile.predictions if c in outputs.columns]]
    report = detect_drift(profile, features,
                          predictions if len(predictions.columns) else None, options=options)
    statistics: dict[str, dict[str, float]] = {}
    for row in report.columns:
        if not row.compared:
            continue
        ref, series = profile.columns[row.column], features[row.column]
        found: dict[str, float] = {}
        for test in _FEATURE_STATISTICS:
            if test == "wasserstein" and (not ref.numeric or ref.constant):
                continue
            value = (row.statistic if row.test == test else
                     column_drift(ref, series, DriftOptions(tests={row.column: test}))
                     .statistic)
            if value is not None and math.isfinite(value):
                found[test] = value
        statistics[row.column] = found
    return {"drift": report.to_dict(), "feature_statistics": statistics,
            "quality": check_quality(profile, features).to_dict()}


def _label_column(inputs: CheckInputs) -> str | None:
    labels = inputs.data.labels
    if inputs.label is not None:
        return inputs.label if inputs.label in labels.columns else None
    return str(labels.columns[0]) if len(labels.columns) == 1 else None


def _performance(inputs: CheckInputs, outputs: pd.DataFrame
                 ) -> tuple[dict[str, Any] | None, list[str]]:
    from modelyard.monitoring.performance import measure_performance

    label = _label_column(inputs)
    if label is None:
        found = list(inputs.data.labels.columns)
        return None, ["no labels in this window yet: performance is not measured" if not found
                      else f"labels {found} arrived but none is the model's label "
                           f"{inputs.label!r}: performance is not measured"]
    if inputs.prediction not in outputs.columns:
        return None, [f"the logged outputs have no {inputs.prediction!r} column: performance "
                      "is not measured"]
    y_true = inputs.data.labels[label]
    if int(y_true.notna().sum()) == 0:
        return None, ["no labels in this window yet: performance is not measured"]
    features = inputs.data.features
    slices = {c: features[c] for c in inputs.slice_by if c in features.columns}
    task = None if inputs.evaluation is None else inputs.evaluation.get("task")
    report = measure_performance(
        y_true, outputs[inputs.prediction], task=task, slices=slices or None,
        at_us=inputs.data.at_us, period_us=inputs.period_us if inputs.data.at_us is not None
        else None, reference=inputs.evaluation, reference_dataset=inputs.evaluation_dataset)
    return report.to_dict(), []


def _estimate(inputs: CheckInputs, features: pd.DataFrame, outputs: pd.DataFrame
              ) -> tuple[dict[str, Any] | None, list[str]]:
    from modelyard.monitoring.estimate import ScoreCalibration, estimate_performance

    task = None if inputs.evaluation is None else inputs.evaluation.get("task")
    if inputs.probabilities is None or task == "regression":
        return None, []
    try:
        found = inputs.probabilities(features)
    except (ModelyardError, ValueError, TypeError, KeyError) as exc:
        return None, [f"performance could not be estimated: the model's probabilities "
                      f"failed on the window ({type(exc).__name__})"]
    if found is None:
        return None, []
    probabilities, classes = found
    calibration = None
    stored = None if inputs.evaluation is None else inputs.evaluation.get("calibration")
    if stored:
        calibration = ScoreCalibration.from_dict(stored)
    predicted = (outputs[inputs.prediction].to_numpy()
                 if inputs.prediction in outputs.columns else None)
    estimate = estimate_performance(probabilities, classes, predicted=predicted,
                                    calibration=calibration, reference=inputs.evaluation)
    return estimate.to_dict(), []


def summary_of(result: Mapping[str, Any]) -> dict[str, Any]:
    """The few numbers of a stored result that trends are drawn from."""
    drift = result.get("drift") or {}
    performance = result.get("performance") or {}
    estimate = result.get("estimate") or {}
    health = result.get("health") or {}
    latency = health.get("latency_ms") or {}
    return {"checked_at": result.get("checked_at"), "window": result.get("window"),
            "rows": result.get("rows", 0), "drifted_share": drift.get("drifted_share"),
            "dataset_drift": drift.get("dataset_drift"),
            "drifted_columns": drift.get("drifted_columns", []),
            "metrics": performance.get("metrics", {}), "estimated": estimate.get("metrics", {}),
            "error_rate": health.get("error_rate"), "latency_p99_ms": latency.get("p99"),
            "alerts": sum(1 for a in result.get("alerts", []) if a.get("fired"))}
