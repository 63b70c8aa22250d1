"""Reproducing a model version from its pipeline run: a seeded pipeline matches exactly,
an unseeded one is reported with its difference, a hand-registered version is refused;
nothing is registered and no alias moves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelyard.errors import InvalidInputError
from tests.pipelines.support import REPRODUCIBLE, write
from tests.registry.support import linear, setup_features, training_set

sqlite = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


def _registered(yard: Any, project: Path, seed: int | None) -> None:
    setup_features(yard)
    write(project, REPRODUCIBLE)
    yard.pipelines.apply()
    run = yard.pipelines.run("claims_fit", {"seed": seed})
    assert run.status == "succeeded", run.error
    yard.models.promote("claims-model", 1, "production")


@sqlite
def test_a_seeded_pipeline_reproduces_exactly(yard: Any, project: Path) -> None:
    _registered(yard, project, 7)
    found = yard.pipelines.reproduce("claims-model@production")
    assert (found.model, found.version, found.pipeline, found.pipeline_version) == (
        "claims-model", 1, "claims_fit", 1)
    assert found.exact and found.matches and found.max_abs_diff == 0.0
    assert found.data == "training set" and found.rows == 120
    assert found.params == {"seed": 7} and found.libraries == []
    assert "matches exactly" in "\n".join(found.lines())
    assert [v.version for v in yard.models.versions("claims-model")] == [1]
    assert yard.models.aliases("claims-model") == {"production": 1}
    assert found.tracking_run is None  # the code logged nothing: no tracking run either


@sqlite
def test_an_unseeded_pipeline_does_not_match(yard: Any, project: Path) -> None:
    _registered(yard, project, None)
    found = yard.pipelines.reproduce("claims-model:1", rtol=1e-6)
    assert not found.exact and not found.matches
    assert found.max_abs_diff > 0 and found.max_rel_diff > 1e-6
    assert "does NOT match within rtol=1e-06" in "\n".join(found.lines())
    assert found.to_dict()["max_abs_diff"] == found.max_abs_diff
    assert [v.version for v in yard.models.versions("claims-model")] == [1]


@sqlite
def test_a_hand_registered_version_is_refused(yard: Any, project: Path) -> None:
    rows = setup_features(yard)
    ts = training_set(yard, rows)
    with yard.start_run("claims") as run:
        run.log_model(linear(ts), "claims-model", training_set=ts, onnx=False)
    with pytest.raises(InvalidInputError,
                       match=r"claims-model:1 was not produced by a pipeline"):
        yard.pipelines.reproduce("claims-model:1")


@sqlite
def test_library_versions_that_changed_since_are_named(yard: Any, project: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.tracking import environment

    _registered(yard, project, 7)
    monkeypatch.setattr(environment, "installed_packages", lambda: "scikit-learn==0.0.1\n")
    found = yard.pipelines.reproduce("claims-model:1")
    [change] = [c for c in found.libraries if c.name == "scikit-learn"]
    assert change.now == "0.0.1" and change.then not in (None, "0.0.1")
    assert f"scikit-learn {change.then} -> 0.0.1" in "\n".join(found.lines())


@sqlite
def test_a_model_logged_through_the_run_is_kept_not_registered(yard: Any,
                                                              project: Path) -> None:
    setup_features(yard)
    write(project, REPRODUCIBLE.replace(
        "return ctx.register(model, training_set=ts, onnx=False)",
        'return ctx.run.log_model(model, "claims-model", training_set=ts, onnx=False)'))
    yard.pipelines.apply()
    assert yard.pipelines.run("claims_fit").status == "succeeded"
    found = yard.pipelines.reproduce("claims-model:1")
    assert found.exact and found.tracking_run is not None
    assert yard.get_run(found.tracking_run).tags["modelyard.reproduces"] == "claims-model:1"
    assert [v.version for v in yard.models.versions("claims-model")] == [1]
