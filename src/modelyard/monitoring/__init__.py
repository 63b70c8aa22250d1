"""Monitoring: drift and data quality of production inputs against a reference profile.

::

    from modelyard.monitoring import build_profile, check_quality, detect_drift

    profile = build_profile(training_frame, model.predict(training_frame))
    stored = profile.to_dict()                      # JSON-safe, kept with the model version
    report = detect_drift(ReferenceProfile.from_dict(stored), window, model.predict(window))
    report.dataset_drift, report.drifted_columns
    check_quality(profile, window).issues

Modules: :mod:`~modelyard.monitoring.profile` (reference profiles),
:mod:`~modelyard.monitoring.stats` (the statistics), :mod:`~modelyard.monitoring.methods`
(tests by name, automatic choice, thresholds), :mod:`~modelyard.monitoring.calibration`
(the reference's own spread), :mod:`~modelyard.monitoring.drift` and
:mod:`~modelyard.monitoring.report` (drift and its results),
:mod:`~modelyard.monitoring.quality` (data quality), :mod:`~modelyard.monitoring.health`
(request counts, error rate and latency from the prediction log). SciPy (the ``monitoring`` extra),
NumPy and pandas load when a function runs, not on import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.monitoring.drift import compare_frames, detect_drift
    from modelyard.monitoring.health import ServiceHealth, service_health
    from modelyard.monitoring.methods import FLOORS, TESTS, DriftOptions
    from modelyard.monitoring.profile import ColumnProfile, ReferenceProfile, build_profile
    from modelyard.monitoring.quality import (
        ColumnQuality,
        QualityOptions,
        QualityReport,
        check_quality,
    )
    from modelyard.monitoring.report import ColumnDrift, DriftReport, Summary

__all__ = [
    "FLOORS",
    "TESTS",
    "ColumnDrift",
    "ColumnProfile",
    "ColumnQuality",
    "DriftOptions",
    "DriftReport",
    "QualityOptions",
    "QualityReport",
    "ReferenceProfile",
    "ServiceHealth",
    "Summary",
    "build_profile",
    "check_quality",
    "compare_frames",
    "detect_drift",
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
