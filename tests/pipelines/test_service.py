"""``yard.pipelines`` on SQLite and PostgreSQL: apply and versions, refusals, runs end to
end, the queue and its leases, alert, upstream and schedule triggers."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import modelyard
from modelyard.backends.metadata.pipelines import ScheduleRecord
from modelyard.errors import InvalidDefinitionError, InvalidInputError, NotFoundError
from tests.pipelines.support import FAILING, TOY, UPSTREAM, alert, write


def test_apply_versions_by_content_and_plan_stores_nothing(yard: Any, project: Path) -> None:
    write(project, TOY)
    assert [str(c) for c in yard.pipelines.plan()] == ["+ create pipeline toy_retrain (v1)"]
    assert yard.pipelines.list() == []
    assert [c.action for c in yard.pipelines.apply()] == ["create"]
    assert [c.action for c in yard.pipelines.apply()] == ["unchanged"]
    write(project, TOY.replace('"alpha": 1.0', '"alpha": 2.0'))
    assert [str(c) for c in yard.pipelines.plan()] == [
        "~ update pipeline toy_retrain (v1 -> v2)"]
    [change] = yard.pipelines.apply()
    assert (change.action, change.version, change.previous) == ("update", 2, 1)
    stored = yard.pipelines.record("toy_retrain")
    assert stored.spec["params"] == {"alpha": 2.0, "rows": 40}
    assert "def make_frame" in stored.spec["code"]
    assert yard.pipelines.get("toy_retrain", 1).params == {"alpha": 1.0, "rows": 40}


def test_apply_refuses_with_the_thing_named(yard: Any, project: Path) -> None:
    write(project, "import modelyard\n"
          "@modelyard.pipeline(model='toy', triggers=[modelyard.on_success('ghost')])\n"
          "def orphan(ctx):\n    pass\n")
    with pytest.raises(InvalidDefinitionError,
                       match="pipeline 'orphan': on_success names pipeline 'ghost'"):
        yard.pipelines.apply()
    write(project, "import modelyard\n"
          "@modelyard.pipeline(model='toy', triggers=[modelyard.on_alert(rule='psi(*) > 9')])\n"
          "def watcher(ctx):\n    pass\n")
    with pytest.raises(InvalidDefinitionError, match=r"on_alert names rule 'psi.*model 'toy'"):
        yard.pipelines.apply()
    write(project, "import modelyard\nfrom missing_package import thing\n")
    with pytest.raises(InvalidDefinitionError, match="cannot be imported"):
        yard.pipelines.apply()
    assert yard.pipelines.list() == []  # nothing half-applied
    with pytest.raises(NotFoundError, match="no pipeline 'nope'"):
        yard.pipelines.run("nope")


def test_a_manual_run_registers_a_model_version_with_its_record(yard: Any,
                                                               project: Path) -> None:
    write(project, TOY)
    yard.pipelines.apply()
    seen: list[list[dict[str, Any]]] = []
    run = yard.pipelines.run("toy_retrain", {"alpha": 0.5}, on_step=seen.append)
    assert run.status == "succeeded", run.error
    assert run.result["model"] == "toy" and run.result["version"] == 1
    version = yard.models.get_version("toy", 1)
    assert version.run_id == run.result["tracking_run"]
    tracked = yard.get_run(run.result["tracking_run"])
    assert tracked.params["alpha"] == "0.5" and "r2" in tracked.metrics
    assert tracked.tags["modelyard.pipeline_run"] == run.run_id
    assert [s["name"] for s in run.steps] == ["data", "fit"]
    assert {s["status"] for s in run.steps} == {"succeeded"}
    assert [s[-1]["name"] for s in seen][-1] == "fit"
    assert "training rows: 40" in run.logs and "alpha is 0.5" in run.logs
    assert run.trigger == "manual" and run.params == {"alpha": 0.5, "rows": 40}
    assert run.started_at_ms is not None and run.ended_at_ms >= run.started_at_ms
    loaded = yard.models.load("toy", 1)
    assert loaded.predict(version_frame()).shape == (2,)
    with pytest.raises(InvalidInputError, match="has no param 'beta'"):
        yard.pipelines.enqueue("toy_retrain", {"beta": 1})


def version_frame() -> Any:
    import pandas as pd

    return pd.DataFrame({"a": [0.1, 0.2], "b": [1.0, -1.0]})


def test_a_failing_pipeline_is_a_failed_run_and_the_queue_goes_on(yard: Any,
                                                                  project: Path) -> None:
    write(project, FAILING, UPSTREAM)
    yard.pipelines.apply()
    yard.pipelines.enqueue("broken")
    yard.pipelines.enqueue("first")
    failed = yard.pipelines.work_once("w1", lease_ms=10_000)
    assert failed.status == "failed" and failed.pipeline == "broken"
    assert "ValueError: no data for" in failed.error
    assert 'raise ValueError("no data for "' in failed.error  # the stored code's line
    assert "about to fail" in failed.logs
    assert failed.steps[0]["status"] == "failed"
    first = yard.pipelines.work_once("w1", lease_ms=10_000)
    assert first.status == "succeeded" and first.pipeline == "first"
    second = yard.pipelines.work_once("w1", lease_ms=10_000)  # queued by first's success
    assert (second.pipeline, second.trigger, second.status) == ("second", "upstream",
                                                                 "succeeded")
    assert second.trigger_detail["run_id"] == first.run_id
    assert "second ran after first" in second.logs
    assert yard.pipelines.work_once("w1") is None
    # the failure released its trigger: a later alert queues a new run
    [queued] = yard.pipelines.on_alerts([alert("toy")])
    assert queued.status == "queued" and queued.pipeline == "broken"


def test_an_alert_storm_queues_one_run(yard: Any, project: Path) -> None:
    write(project, TOY)
    yard.pipelines.apply()
    queued = {r.run_id for _ in range(100) for r in yard.pipelines.on_alerts([alert("toy")])}
    assert len(queued) == 1
    assert yard.pipelines.on_alerts([alert("another-model")]) == []
    [run] = yard.pipelines.runs("toy_retrain")
    assert run.trigger == "alert" and run.trigger_detail["model"] == "toy"
    done = yard.pipelines.work_once("w", lease_ms=10_000)
    assert done.status == "succeeded"
    # still within the cooldown after success: collapsed into the finished run
    assert [r.run_id for r in yard.pipelines.on_alerts([alert("toy")])] == [done.run_id]
    assert len(yard.pipelines.runs("toy_retrain")) == 1


def test_monitoring_hands_its_stored_alerts_to_pipelines(yard: Any, project: Path) -> None:
    write(project, TOY)
    yard.pipelines.apply()
    yard.pipelines.run("toy_retrain")
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"a": np.linspace(99, 101, 200), "b": np.linspace(1, -1, 200)})
    result = yard.monitoring.check("toy", data=frame, rules=["drift(a)"], notify=[])
    assert result.fired
    [queued] = yard.pipelines.runs("toy_retrain", status="queued")
    assert queued.trigger == "alert" and queued.trigger_detail["rules"] == ["drift(a)"]


@pytest.mark.parametrize("named", ["drift(a) [critical]", "drift(a)", "a moved"])
def test_an_alert_trigger_fires_on_its_rule_named_any_way_apply_accepts(
        yard: Any, project: Path, named: str) -> None:
    """A rule's text (with its severity), its condition and its name all pass apply; each
    must also match the alerts, which carry the rule's label (here its name)."""
    write(project, TOY)
    yard.pipelines.apply()
    yard.pipelines.run("toy_retrain")
    yard.monitoring.set_rules("toy", [{"rule": "drift(a)", "severity": "critical",
                                       "name": "a moved"}], notify=[])
    write(project, TOY.replace('modelyard.on_alert(cooldown="10m")',
                               f'modelyard.on_alert(rule={named!r}, cooldown="10m")'))
    yard.pipelines.apply()
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"a": np.linspace(99, 101, 200), "b": np.linspace(1, -1, 200)})
    assert [o.rule.label for o in yard.monitoring.check("toy", data=frame).fired] == [
        "a moved"]
    [queued] = yard.pipelines.runs("toy_retrain", status="queued")
    assert queued.trigger == "alert" and queued.trigger_detail["rules"] == ["a moved"]


def test_schedules_fire_each_due_time_once_and_can_be_edited(yard: Any,
                                                             project: Path) -> None:
    write(project, TOY.replace('params={"alpha": 1.0, "rows": 40},',
                               'params={"alpha": 1.0, "rows": 40}, schedule="0 3 * * *", '
                               'timezone="Europe/Paris",'))
    yard.pipelines.apply()
    start = datetime.now(UTC)
    assert yard.pipelines.fire_due(start) == []  # no due time since it was set
    later = start + timedelta(days=3)
    [run] = yard.pipelines.fire_due(later)
    due = datetime.fromtimestamp(run.run_at_ms / 1000, UTC)
    assert due.astimezone(modelyard_zone("Europe/Paris")).hour == 3
    assert later - timedelta(days=1) < due <= later
    assert yard.pipelines.fire_due(later) == []
    # edited without a new version; a re-apply of unchanged code keeps the edit
    yard.pipelines.set_schedule("toy_retrain", "*/10 * * * *", "UTC")
    yard.pipelines.apply()
    assert yard.pipelines.get("toy_retrain").schedule == "*/10 * * * *"
    assert yard.pipelines.record("toy_retrain").version == 1
    kinds = {t.kind: t for t in yard.pipelines.triggers()}
    assert kinds["schedule"].next_at is not None and kinds["alert"].last_status is None
    # the run's time is the due time
    done = yard.pipelines.work_once("w", lease_ms=10_000)
    assert done.status == "succeeded" and done.run_at_ms == run.run_at_ms


def modelyard_zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def test_concurrent_schedule_firing_enqueues_once(yard: Any, project: Path,
                                                  store_uri: str) -> None:
    write(project, TOY)
    yard.pipelines.apply()
    past = int((time.time() - 600) * 1000)
    yard.pipelines.store.set_schedule(ScheduleRecord("toy_retrain", "* * * * *", "UTC", {},
                                                     past, past))
    now = datetime.now(UTC)
    others = [modelyard.connect(store_uri, capture_packages=False, capture_git=False)
              for _ in range(4)]
    barrier = threading.Barrier(len(others))
    fired: list[int] = []

    def fire(y: Any) -> None:
        barrier.wait()
        fired.extend(r.run_at_ms for r in y.pipelines.fire_due(now))

    threads = [threading.Thread(target=fire, args=(y,)) for y in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for y in others:
        y.close()
    runs = yard.pipelines.runs("toy_retrain")
    assert len(fired) == 1 and len(runs) == 1 and runs[0].trigger == "schedule"


def test_a_lapsed_lease_is_retried_then_failed(yard: Any, project: Path) -> None:
    write(project, TOY)
    yard.pipelines.apply()
    store = yard.pipelines.store
    queued = yard.pipelines.enqueue("toy_retrain")
    now = int(time.time() * 1000)
    first = store.claim("dead-worker", 1_000, now)
    assert first.run_id == queued.run_id and first.attempts == 1
    assert store.claim("other", 1_000, now) is None  # leased, not handed out twice
    second = store.claim("other", 1_000, now + 5_000)  # the lease lapsed: tried again
    assert (second.run_id, second.attempts, second.worker) == (queued.run_id, 2, "other")
    assert "lease lapsed" in second.error
    assert not store.finish(queued.run_id, "dead-worker", status="succeeded",
                            ended_at_ms=now, result={}, error=None, logs="", steps=[])
    assert store.claim("third", 1_000, now + 10_000) is None  # last attempt used up
    lost = store.get_run(queued.run_id)
    assert lost.status == "failed" and "last attempt" in lost.error
    assert store.get_run(queued.run_id[:10]) == lost


def test_each_run_is_claimed_by_one_worker(yard: Any, project: Path) -> None:
    write(project, TOY)
    yard.pipelines.apply()
    ids = [yard.pipelines.enqueue("toy_retrain").run_id for _ in range(3)]
    now = int(time.time() * 1000)
    got = [yard.pipelines.store.claim(f"w{i}", 60_000, now) for i in range(4)]
    assert sorted(g.run_id for g in got[:3]) == sorted(ids) and got[3] is None
    held = replace(got[0])
    assert yard.pipelines.store.renew(held.run_id, "w0", now + 120_000)
    assert not yard.pipelines.store.renew(held.run_id, "w1", now + 120_000)


def test_new_rows_in_a_source_queue_a_run_once(yard: Any, project: Path) -> None:
    import pandas as pd

    events = modelyard.Source.frame("events", timestamp="at")
    yard.apply([events])

    def batch(rows: int) -> pd.DataFrame:
        return pd.DataFrame({"id": range(rows), "at": [datetime.now(UTC)] * rows})

    yard.ingest(events, batch(5))  # before the pipeline: not new to it
    write(project, "import modelyard\n"
          "@modelyard.pipeline(model='toy', "
          "triggers=[modelyard.on_new_data('events', min_rows=10)])\n"
          "def on_data(ctx):\n    print(ctx.trigger_detail['rows'], 'new rows')\n")
    yard.pipelines.apply()
    assert yard.pipelines.fire_new_data() == []
    yard.ingest(events, batch(6))
    assert yard.pipelines.fire_new_data() == []  # 6 < 10
    yard.ingest(events, batch(4))
    [run] = yard.pipelines.fire_new_data()
    assert run.trigger == "data" and run.trigger_detail["rows"] == 10
    assert run.trigger_detail["commits"] == 2
    assert yard.pipelines.fire_new_data() == []  # the same commits queue once
    done = yard.pipelines.work_once("w", lease_ms=10_000)
    assert done.status == "succeeded" and "10 new rows" in done.logs
    yard.ingest(events, batch(12))
    [again] = yard.pipelines.fire_new_data()
    assert again.trigger_detail["rows"] == 12  # counted from the last run's commit
    kinds = {t.kind: t for t in yard.pipelines.triggers()}
    assert kinds["data"].detail == "10+ new rows in events"


def test_a_new_data_trigger_names_a_known_source(yard: Any, project: Path) -> None:
    write(project, "import modelyard\n"
          "@modelyard.pipeline(model='toy', triggers=[modelyard.on_new_data('nowhere')])\n"
          "def on_data(ctx):\n    pass\n")
    with pytest.raises(InvalidDefinitionError, match="on_new_data names source 'nowhere'"):
        yard.pipelines.apply()


CHECKS = '''
import modelyard


@modelyard.pipeline(name="checks", schedule="0 * * * *")
def checks(ctx):
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"a": np.linspace(99, 101, 200), "b": np.linspace(1, -1, 200)})
    result = ctx.monitoring.check("toy", data=frame, notify=[])
    print("fired:", [o.rule.label for o in result.fired])


@modelyard.pipeline(name="no_model")
def no_model(ctx):
    ctx.register(object())
'''


def test_a_scheduled_check_pipeline_alerts_and_queues_retraining(yard: Any,
                                                                 project: Path) -> None:
    write(project, TOY, CHECKS)
    yard.pipelines.apply()
    assert yard.pipelines.run("toy_retrain").status == "succeeded"
    yard.monitoring.set_rules("toy", ["drift(a)"])
    checked = yard.pipelines.run("checks")
    assert checked.status == "succeeded", checked.error
    assert "fired: ['drift(a)']" in checked.logs
    [queued] = yard.pipelines.runs("toy_retrain", status="queued")
    assert queued.trigger == "alert"
    refused = yard.pipelines.run("no_model")
    assert refused.status == "failed" and "declares no model" in refused.error

    def x(ctx: Any) -> None:
        return None

    with pytest.raises(InvalidDefinitionError, match="on_alert\\(\\) needs a model"):
        modelyard.pipeline(name="x", triggers=[modelyard.on_alert()])(x)
    with pytest.raises(InvalidDefinitionError, match="defined with def"):
        modelyard.pipeline(name="y")(lambda ctx: None)


def test_plan_shows_a_schedule_change_and_a_hand_set_schedule_is_kept(
        yard: Any, project: Path) -> None:
    write(project, TOY)
    yard.pipelines.apply()
    yard.pipelines.set_schedule("toy_retrain", "0 5 * * *")
    [kept] = yard.pipelines.apply()  # the code declares no schedule, as before
    assert str(kept) == "  unchanged pipeline toy_retrain (v1)" and not kept.changed
    assert yard.pipelines.get("toy_retrain").schedule == "0 5 * * *"
    write(project, TOY.replace('params={"alpha": 1.0, "rows": 40},',
                               'params={"alpha": 1.0, "rows": 40}, schedule="0 3 * * 1",'))
    [planned] = yard.pipelines.plan()
    assert str(planned) == ("~ keep pipeline toy_retrain (v1), schedule '0 5 * * *' (UTC) "
                            "-> '0 3 * * 1' (UTC)") and planned.changed
    assert yard.pipelines.get("toy_retrain").schedule == "0 5 * * *"  # plan stores nothing
    yard.pipelines.apply()
    assert yard.pipelines.get("toy_retrain").schedule == "0 3 * * 1"
    assert yard.pipelines.record("toy_retrain").version == 1
