"""What starts pipeline runs: the success of another pipeline, monitoring's alerts,
schedules and new data, and the list of every trigger with its next time and last outcome.

Each function queues runs in the pipeline store, deduplicated there (a schedule's due time,
a new commit, an upstream run: once; alerts within a cooldown: into one run), so several
workers calling them together queue each run once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from modelyard.backends.metadata.pipelines import (
    PipelineRecord,
    PipelineRunRecord,
    PipelineStore,
)
from modelyard.errors import NotFoundError
from modelyard.pipelines import schedules
from modelyard.pipelines.definitions import OnAlert
from modelyard.pipelines.queueing import new_run, now_ms

if TYPE_CHECKING:
    from modelyard.backends.metadata.monitoring import AlertRecord
    from modelyard.features.service import FeatureService

__all__ = ["TriggerInfo", "after_success", "fire_due", "fire_new_data", "on_alerts",
           "triggers"]


@dataclass(frozen=True)
class TriggerInfo:
    """One way a pipeline starts, with when it fires next and how its last run went."""

    pipeline: str
    kind: str  # schedule | alert | upstream
    detail: str
    next_at: datetime | None
    last_status: str | None
    last_at_ms: int | None


def after_success(store: PipelineStore, run: PipelineRunRecord) -> list[PipelineRunRecord]:
    """Queue the pipelines that run after ``run``'s pipeline succeeds (once per run)."""
    queued = []
    for record in store.list_pipelines():
        for trigger in record.spec.get("triggers", []):
            if trigger.get("kind") == "upstream" and trigger.get("pipeline") == run.pipeline:
                new = new_run(store, record.name, None, "upstream",
                                    {"pipeline": run.pipeline, "run_id": run.run_id},
                                    dedupe_key=f"upstream:{record.name}:{run.run_id}")
                queued.append(store.enqueue(new)[0])
    return queued

def on_alerts(store: PipelineStore, alerts: Sequence[AlertRecord],
              labels_of: Callable[[str, str], set[str]] | None = None
              ) -> list[PipelineRunRecord]:
    """Queue the pipelines whose alert triggers match fired alerts: one run per
    pipeline, collapsed into a live or recent run within the trigger's cooldown.
    ``labels_of(model, rule)`` gives the labels alerts carry for a rule a trigger names (by
    name, condition or text, as apply accepts); without it the names are compared as given."""
    queued = []
    for record in store.list_pipelines():
        matched: list[AlertRecord] = []
        cooldown_ms = 0
        for spec in record.spec.get("triggers", []):
            if spec.get("kind") != "alert":
                continue
            trigger = OnAlert(spec.get("model"), spec.get("rule"),
                              spec.get("cooldown", "1h"))
            model = trigger.model or record.spec["model"]
            named = None if trigger.rule is None else (
                labels_of(model, trigger.rule) if labels_of is not None else {trigger.rule})
            hits = [a for a in alerts if a.model == model
                    and (named is None or a.rule in named)]
            if hits:
                matched += [a for a in hits if a not in matched]
                cooldown_ms = max(cooldown_ms, trigger.cooldown_ms)
        if not matched:
            continue
        detail = {"model": matched[0].model, "rules": sorted({a.rule for a in matched}),
                  "alerts": [a.alert_id for a in matched][:20],
                  "values": {a.rule: a.value for a in matched}}
        run = new_run(store, record.name, None, "alert", detail)
        found, _ = store.enqueue(run, collapse_since_ms=now_ms() - cooldown_ms)
        queued.append(found)
    return queued


def fire_due(store: PipelineStore, now: datetime | None = None) -> list[PipelineRunRecord]:
    """Queue each schedule's latest due time not queued yet (once, however many
    workers call this together); missed earlier times are not run again."""
    when = now or datetime.now(UTC)
    queued = []
    for schedule in store.schedules():
        if schedule.cron is None:
            continue
        due = schedules.latest_due(schedule.cron, schedule.timezone, when)
        due_ms = int(due.timestamp() * 1000)
        if due_ms <= schedule.cursor_ms:
            continue
        detail = {"cron": schedule.cron, "timezone": schedule.timezone,
                  "scheduled_for": due.isoformat()}
        try:
            run = new_run(store, schedule.pipeline, None, "schedule", detail,
                                run_at_ms=due_ms,
                                dedupe_key=f"schedule:{schedule.pipeline}:{due_ms}")
        except NotFoundError:
            continue
        found, created = store.enqueue(run)
        store.advance_schedule(schedule.pipeline, schedule.cursor_ms, due_ms)
        if created:
            queued.append(found)
    return queued

def fire_new_data(store: PipelineStore, features: Callable[[], FeatureService]
                  ) -> list[PipelineRunRecord]:
    """Queue the pipelines whose sources gained enough rows since the last run their
    data trigger started (or since the pipeline was first applied); once per newest
    commit, however many workers call this together."""
    queued = []
    for record in store.list_pipelines():
        for spec in record.spec.get("triggers", []):
            if spec.get("kind") != "data":
                continue
            run = _new_data_run(store, features, record, spec["source"], int(spec["min_rows"]))
            if run is not None:
                found, created = store.enqueue(run)
                if created:
                    queued.append(found)
    return queued

def _new_data_run(store: PipelineStore, features: Callable[[], FeatureService],
                  record: PipelineRecord, source: str, min_rows: int
                  ) -> PipelineRunRecord | None:
    commits = [c for c in features().commits(source)
               if c.operation == "ingest"]
    last = next((r for r in store.runs(record.name, limit=None)
                 if r.trigger == "data" and r.trigger_detail.get("source") == source),
                None)
    if last is not None:
        seen = int(last.trigger_detail["table_version"])
        fresh = [c for c in commits if c.version > seen]
    else:
        since_ms = store.get_pipeline(record.name, 1).created_at_ms
        fresh = [c for c in commits if c.ingested_at.timestamp() * 1000 > since_ms]
    rows = sum(c.rows for c in fresh)
    if not fresh or rows < min_rows:
        return None
    newest = max(fresh, key=lambda c: c.version)
    detail = {"source": source, "rows": rows, "commits": len(fresh),
              "table_version": newest.version, "commit_id": newest.commit_id}
    return new_run(store, record.name, None, "data", detail,
                         dedupe_key=f"data:{record.name}:{source}:{newest.version}")

def triggers(store: PipelineStore, now: datetime | None = None) -> list[TriggerInfo]:
    """Every schedule, alert, new-data and upstream trigger, with its next time
    (schedules) and
    the outcome of the last run it started."""
    when = now or datetime.now(UTC)
    found = []
    scheduled = {s.pipeline: s for s in store.schedules()}
    for record in store.list_pipelines():
        recent = store.runs(record.name, limit=50)

        def last(kind: str) -> tuple[str | None, int | None]:
            run = next((r for r in recent if r.trigger == kind), None)  # noqa: B023
            return (None, None) if run is None else (run.status, run.queued_at_ms)

        schedule = scheduled.get(record.name)
        if schedule is not None and schedule.cron is not None:
            found.append(TriggerInfo(
                record.name, "schedule", f"{schedule.cron} ({schedule.timezone})",
                schedules.next_due(schedule.cron, schedule.timezone, when),
                *last("schedule")))
        for spec in record.spec.get("triggers", []):
            if spec["kind"] == "alert":
                model = spec.get("model") or record.spec["model"]
                rule = spec.get("rule") or "any rule"
                detail = f"alert on {model}: {rule} (cooldown {spec.get('cooldown')})"
            elif spec["kind"] == "data":
                detail = f"{spec['min_rows']}+ new rows in {spec['source']}"
            else:
                detail = f"after {spec['pipeline']} succeeds"
            found.append(TriggerInfo(record.name, spec["kind"], detail, None,
                                     *last(spec["kind"])))
    return found
