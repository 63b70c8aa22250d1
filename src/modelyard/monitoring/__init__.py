"""Monitoring: drift, data quality, performance and service health of served models, alert
rules and reports.

``yard.monitoring`` (:mod:`~modelyard.monitoring.service`) is the way in; the pieces it
composes are usable on their own::

    from modelyard.monitoring import build_profile, check_quality, detect_drift

    profile = build_profile(training_frame, model.predict(training_frame))
    stored = profile.to_dict()                      # JSON-safe, kept with the model version
    report = detect_drift(ReferenceProfile.from_dict(stored), window, model.predict(window))
    report.dataset_drift, report.drifted_columns
    check_quality(profile, window).issues

Modules: reference profiles, the drift statistics and the reference's own spread live in
:mod:`modelyard.stats` (:mod:`~modelyard.stats.profile`,
:mod:`~modelyard.stats.drift_statistics`, :mod:`~modelyard.stats.drift_calibration`), shared
with the registry; here: :mod:`~modelyard.monitoring.methods` (tests by name, automatic
choice, thresholds), :mod:`~modelyard.monitoring.drift` and
:mod:`~modelyard.monitoring.report` (drift and its results),
:mod:`~modelyard.monitoring.quality` (data quality),
:mod:`~modelyard.monitoring.performance` and :mod:`~modelyard.monitoring.estimate`
(measured and estimated performance), :mod:`~modelyard.monitoring.health` (request counts,
error rate and latency from the prediction log), :mod:`~modelyard.monitoring.windows` and
:mod:`~modelyard.monitoring.window_data` (time windows and their data),
:mod:`~modelyard.monitoring.check` (one check), :mod:`~modelyard.monitoring.alerts`,
:mod:`~modelyard.monitoring.rule_checks` and :mod:`~modelyard.monitoring.notify` (alert
rules, their verdicts, where alerts go), :mod:`~modelyard.monitoring.html` (reports).
SciPy (the ``monitoring`` extra), NumPy and pandas load when a function runs, not on
import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.monitoring.alerts import AlertRule, parse_rule
    from modelyard.monitoring.check import MonitorResult
    from modelyard.monitoring.drift import compare_frames, detect_drift
    from modelyard.monitoring.estimate import PerformanceEstimate, estimate_performance
    from modelyard.monitoring.health import ServiceHealth, service_health
    from modelyard.monitoring.methods import FLOORS, TESTS, DriftOptions
    from modelyard.monitoring.performance import PerformanceReport, measure_performance
    from modelyard.monitoring.quality import (
        ColumnQuality,
        QualityOptions,
        QualityReport,
        check_quality,
    )
    from modelyard.monitoring.report import ColumnDrift, DriftReport, Summary
    from modelyard.monitoring.rule_checks import RuleOutcome, evaluate_rules
    from modelyard.stats.profile import ColumnProfile, ReferenceProfile, build_profile

__all__ = [
    "FLOORS",
    "TESTS",
    "AlertRule",
    "ColumnDrift",
    "ColumnProfile",
    "ColumnQuality",
    "DriftOptions",
    "DriftReport",
    "MonitorResult",
    "PerformanceEstimate",
    "PerformanceReport",
    "QualityOptions",
    "QualityReport",
    "ReferenceProfile",
    "RuleOutcome",
    "ServiceHealth",
    "Summary",
    "build_profile",
    "check_quality",
    "compare_frames",
    "detect_drift",
    "estimate_performance",
    "evaluate_rules",
    "measure_performance",
    "parse_rule",
    "service_health",
]

_LAZY = {
    "FLOORS": "methods", "TESTS": "methods", "DriftOptions": "methods",
    "ColumnProfile": "profile", "ReferenceProfile": "profile", "build_profile": "profile",
    "ColumnQuality": "quality", "QualityOptions": "quality", "QualityReport": "quality",
    "check_quality": "quality",
    "ColumnDrift": "report", "DriftReport": "report", "Summary": "report",
    "compare_frames": "drift", "detect_drift": "drift",
    "ServiceHealth": "health", "service_health": "health",
    "AlertRule": "alerts", "parse_rule": "alerts",
    "RuleOutcome": "rule_checks", "evaluate_rules": "rule_checks",
    "MonitorResult": "check",
    "PerformanceReport": "performance", "measure_performance": "performance",
    "PerformanceEstimate": "estimate", "estimate_performance": "estimate",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelyard.monitoring' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"modelyard.monitoring.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
