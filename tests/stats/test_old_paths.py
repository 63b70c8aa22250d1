"""The statistics moved to ``modelyard.stats`` are still importable from where they were:
the same objects, every public name."""

from __future__ import annotations

import importlib

import pytest

MOVED = {
    "modelyard.monitoring.profile": "modelyard.stats.profile",
    "modelyard.monitoring.stats": "modelyard.stats.drift_statistics",
    "modelyard.monitoring.calibration": "modelyard.stats.drift_calibration",
    "modelyard.monitoring.columns": "modelyard.stats.columns",
    "modelyard.monitoring.strings": "modelyard.stats.strings",
    "modelyard.registry.metrics": "modelyard.stats.metrics",
    "modelyard.registry.plots": "modelyard.stats.plots",
    "modelyard.registry.evaluation": "modelyard.stats.evaluation",
    "modelyard.monitoring.estimate": "modelyard.stats.score_calibration",
    "modelyard.registry.reference": "modelyard.stats.profile",
}


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_path_gives_the_same_objects(old: str, new: str) -> None:
    before, now = importlib.import_module(old), importlib.import_module(new)
    shared = [n for n in now.__all__ if hasattr(before, n)]
    assert shared, f"{old} re-exports nothing of {new}"
    for name in shared:
        assert getattr(before, name) is getattr(now, name), f"{old}.{name}"
    if old.endswith(("profile", "stats", "calibration", "columns", "strings", "metrics",
                     "plots")):
        assert sorted(before.__all__) == sorted(now.__all__)  # a shim: every public name


def test_lazy_monitoring_names_come_from_stats() -> None:
    import modelyard.monitoring as monitoring
    from modelyard.stats.profile import ReferenceProfile, build_profile

    assert monitoring.ReferenceProfile is ReferenceProfile
    assert monitoring.build_profile is build_profile
