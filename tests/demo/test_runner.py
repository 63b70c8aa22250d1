"""The demo's step list runs inside one parent run and is open to more steps."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

import modelyard
from modelyard.demo import DemoConfig, DemoState, Step, default_steps, run_demo


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def test_extra_steps_see_what_earlier_steps_made(tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    def act(state: DemoState, progress: object) -> None:
        seen["results"] = [r.name for r in state.results]
        seen["best"] = state.best.info.name if state.best else None
        seen["training_set"] = state.training_set
        state.parent.set_tag("extra.step", "ran")

    def tell(state: DemoState, console: Console) -> None:
        console.print("extra chapter")

    console = _quiet()
    steps = [*default_steps(), Step("extra", "An extra step", act, tell)]
    result = run_demo(DemoConfig(path=tmp_path / "d", customers=400, seed=1),
                      console=console, steps=steps)
    assert [s.key for s in default_steps()] == [
        "data", "features", "ingest", "training_set", "train", "best", "online", "registry",
        "serving", "monitoring", "retraining", "after"]
    assert len(seen["results"]) >= 3  # type: ignore[arg-type]
    assert seen["best"] is not None
    assert seen["training_set"] is not None
    out = console.file.getvalue()  # type: ignore[attr-defined]
    chapters = ["1. Data", "2. Features", "3. Ingestion", "4. Training set", "5. Candidates",
                "6. Best candidate", "extra chapter"]
    assert [out.index(c) for c in chapters] == sorted(out.index(c) for c in chapters)
    with modelyard.connect(project=result.root) as yard:
        parent = yard.get_run(result.parent_run_id)
        assert parent.info.status == "finished"
        assert parent.tags["extra.step"] == "ran"
        assert parent.tags["demo.best_run_id"] == result.best_run_id
        assert parent.params["data.version"] == result.data_version
        assert parent.metrics["best_r2"].value == yard.get_run(
            str(result.best_run_id)).metrics["r2"].value
        assert parent.tags["modelyard.training_set"] == result.training_set_id


def test_a_failing_step_fails_the_parent_run(tmp_path: Path) -> None:
    def boom(state: DemoState, progress: object) -> None:
        raise RuntimeError("step broke")

    steps = [default_steps()[0], Step("boom", "Breaking", boom, lambda s, c: None)]
    with pytest.raises(RuntimeError, match="step broke"):
        run_demo(DemoConfig(path=tmp_path / "d", customers=300), console=_quiet(),
                 steps=steps)
    with modelyard.connect(project=tmp_path / "d") as yard:
        runs = yard.search_runs("claims-demo")
    assert list(runs["status"]) == ["failed"]
    assert "step broke" in runs["tags.modelyard.error"].iloc[0]


@pytest.mark.postgres
def test_the_demo_runs_on_postgresql(tmp_path: Path, pg_uri: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_URI", pg_uri)
    result = run_demo(DemoConfig(path=tmp_path / "d", customers=300, seed=2),
                      console=_quiet())
    with modelyard.connect(pg_uri, project=result.root) as yard:
        children = yard.search_runs("claims-demo",
                                    filter=f"parent_run_id = '{result.parent_run_id}'")
        assert len(children) >= 3
        assert yard.best_run("claims-demo", "r2").info.run_id == result.best_run_id
        assert {r.name for r in yard.features.list_definitions("feature_group")} == {
            "customer_profile", "claim_history"}
        assert yard.features.get_training_set(str(result.training_set_id)).spec[
            "commits"] == result.commits
    assert not (result.root / ".modelyard" / "modelyard.db").exists()


def test_the_online_step_serves_the_materialized_features(tmp_path: Path) -> None:
    console = _quiet()
    result = run_demo(DemoConfig(path=tmp_path / "d", customers=400, seed=3), console=console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "7. Online features" in text and "no skew" in text
    with modelyard.connect(project=result.root) as yard:
        fresh = {f.group: f for f in yard.features.online.freshness()}
        assert set(fresh) == {"customer_profile", "claim_history"}
        assert all(f.runs == 1 and f.newest_event is not None for f in fresh.values())
        found = yard.online_features(["customer_profile:region"], {"customer_id": [1, 2]})
        assert found.status == ["found", "found"]
        assert yard.features.online.check_skew("claim_history", sample=50).ok
