"""The demo's registry step: versions with lineage, evaluations, gates, promotions, rollback."""

from __future__ import annotations

from typing import Any

import pytest

import modelyard
from modelyard.demo.registry import ALIAS, DATASET, MODEL, SENSITIVE, gates, with_age_band

from .conftest import SmallDemo


def test_every_candidate_version_is_evaluated_and_gated(small_demo: SmallDemo) -> None:
    assert "8. Model registry" in small_demo.output
    registry = small_demo.state.registry
    assert registry is not None
    with modelyard.connect(project=small_demo.result.root) as yard:
        versions = [v for v in yard.models.versions(MODEL)  # (a 5th: the retraining's)
                    if v.version in {a.version for a in registry.attempts}]
        assert [v.version for v in versions] == [1, 2, 3, 4]
        assert {g.to_dict()["kind"] for g in gates()} == {  # what the registry step met
            r["kind"] for r in _first_report(yard, 1).report["results"]}
        for version in versions:
            assert version.run_id is not None
            assert version.training_set_id == small_demo.result.training_set_id
            assert version.spec["signature"]["inputs"]
            stored = {e.dataset: e for e in yard.models.store.evaluations(MODEL, version.version)}
            assert set(stored[DATASET].evaluation["fairness"][SENSITIVE]) >= {"error_gap_mae"}
            reports = yard.models.store.gate_reports(MODEL, version.version)
            assert reports and reports[0].alias == ALIAS
        # the registry step's history: exactly the promotions whose gates passed, then a
        # rollback (the serving step promotes once more afterwards, the retraining too)
        first = [_first_report(yard, v.version) for v in versions]
        passed = [r.version for r in sorted(first, key=lambda r: r.created_at) if r.passed]
        history = [e for e in yard.models.history(MODEL, ALIAS)
                   if e.reason.startswith("demo: ")
                   and not e.reason.startswith("demo: promoted live")
                   and not e.reason.startswith("demo: no version passed")]
        assert [e.to_version for e in history if e.action == "promote"] == passed
        if len(passed) >= 2:
            assert history[-1].action == "rollback"
            assert history[-1].to_version == passed[-2]
        lineage = yard.models.lineage(MODEL, 1)
        assert lineage.run is not None and lineage.training_set is not None
        assert {s["name"] for s in lineage.sources} == {"claims", "policyholders"}


def test_age_bands_cover_every_driver() -> None:
    import pandas as pd

    banded = with_age_band(pd.DataFrame({"age": [18, 24, 25, 60, 85]}))
    assert list(banded[SENSITIVE]) == ["under 25", "under 25", "25 and over", "25 and over",
                                      "25 and over"]


def _first_report(yard: Any, version: int) -> Any:
    """The gate report of the registry step's promotion of ``version``."""
    return min(yard.models.store.gate_reports(MODEL, version), key=lambda r: r.created_at)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_full_demo_tells_the_whole_registry_story(full_demo: SmallDemo) -> None:
    """At its default size the demo shows each gate at work: the best model promoted, the
    weakest refused for regression, the legacy-book model refused by the fairness gate, the
    runner-up promoted, and production rolled back to the best."""
    result = full_demo.result
    with modelyard.connect(project=result.root) as yard:
        reports = {v: _first_report(yard, v) for v in (1, 2, 3, 4)}
        failed = {v: {r["kind"] for r in rep.report["results"] if not r["passed"]}
                  for v, rep in reports.items()}
        assert failed[1] == set() and failed[4] == set()
        assert "regression" in failed[2]
        assert failed[3] == {"fairness"}
        assert yard.models.get_version(MODEL, 3).spec["description"]
        legacy_run = yard.get_run(str(yard.models.get_version(MODEL, 3).run_id))
        assert legacy_run.params["train.filter"] == "age >= 25"
        history = yard.models.history(MODEL, ALIAS)
        assert [(e.action, e.from_version, e.to_version) for e in history] == [
            ("promote", None, 1), ("promote", 1, 4), ("rollback", 4, 1),
            ("promote", 1, 4),  # by the serving step, while requests flowed
            ("promote", 4, 5)]  # the retrained version, on approval
        assert yard.models.aliases(MODEL) == {ALIAS: 5}
        assert yard.models.get_version(MODEL, 1).run_id == result.best_run_id
    out = full_demo.output
    assert "Rolled 'production' back from version 4 to version 1" in out
    assert "Version 4 was promoted over version 1 while requests flowed;" in out
    assert "0 failed" in out and "(forced" not in out
