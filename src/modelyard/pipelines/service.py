"""``yard.pipelines``: registered training pipelines, their triggers and their runs.

::

    yard.pipelines.apply()                      # the project's pipelines.py, versioned
    run = yard.pipelines.run("claims_retrain", params={"alpha": 0.5})   # here and now
    yard.pipelines.enqueue("claims_retrain")    # for `modelyard worker`

The service sits above the domain services: it receives the ones a run uses (tracking, the
registry, the feature store, monitoring's rules for checking alert triggers), never the
whole Yard. The queue, its leases and the schedules' cursors live in the metadata store
(:mod:`modelyard.backends.metadata.pipelines`).
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelyard.backends.metadata.decisions import DECISIONS, DecisionRecord, DecisionStore
from modelyard.backends.metadata.pipelines import (
    PIPELINE_RUN_STATUSES,
    PipelineRecord,
    PipelineRunRecord,
    PipelineStore,
    ScheduleRecord,
)
from modelyard.errors import (
    InvalidDefinitionError,
    InvalidInputError,
    ModelyardError,
    NotFoundError,
    RunStateError,
)
from modelyard.pipelines import schedules
from modelyard.pipelines.context import PipelineContext, PipelineServices
from modelyard.pipelines.definitions import (
    OnAlert,
    OnNewData,
    OnSuccess,
    Pipeline,
    check_cron,
    check_timezone,
)
from modelyard.pipelines.runner import execute

if TYPE_CHECKING:
    from modelyard.backends.metadata.monitoring import AlertRecord
    from modelyard.monitoring.service import MonitoringService
    from modelyard.pipelines.decisions import Why
    from modelyard.pipelines.reproduce import Reproduction

__all__ = ["PipelineChange", "PipelineService", "TriggerInfo"]

Action = Literal["create", "update", "unchanged"]
Target = Pipeline | str | os.PathLike[str]
DEFAULT_LEASE_MS = 60_000


@dataclass(frozen=True)
class PipelineChange:
    name: str
    action: Action
    version: int  # after apply (the current one when unchanged)
    previous: int | None
    content_hash: str
    schedule: str | None = None  # how the declared schedule changes, if it does

    @property
    def changed(self) -> bool:
        return self.action != "unchanged" or self.schedule is not None

    def __str__(self) -> str:
        if self.action == "create":
            text = f"+ create pipeline {self.name} (v{self.version})"
        elif self.action == "update":
            text = f"~ update pipeline {self.name} (v{self.previous} -> v{self.version})"
        elif self.schedule is not None:
            text = f"~ keep pipeline {self.name} (v{self.version})"
        else:
            text = f"  unchanged pipeline {self.name} (v{self.version})"
        return text if self.schedule is None else f"{text}, schedule {self.schedule}"


def _describe(cron: str | None, timezone: str) -> str:
    return "none" if cron is None else f"'{cron}' ({timezone})"


@dataclass(frozen=True)
class TriggerInfo:
    """One way a pipeline starts, with when it fires next and how its last run went."""

    pipeline: str
    kind: str  # schedule | alert | upstream
    detail: str
    next_at: datetime | None
    last_status: str | None
    last_at_ms: int | None


def _schedule_change(p: Pipeline, stored: ScheduleRecord | None) -> str | None:
    """How applying ``p`` changes its schedule: only when the code declares another
    schedule than it did (a schedule set by hand since is otherwise kept)."""
    def key(declared: Mapping[str, Any]) -> tuple[Any, Any]:  # no cron: no time zone
        cron = declared.get("cron")
        return cron, declared.get("timezone") if cron else None

    if stored is None:
        return None if p.schedule is None else f"{_describe(p.schedule, p.timezone)}"
    if key(stored.declared) == key({"cron": p.schedule, "timezone": p.timezone}):
        return None
    return (f"{_describe(stored.cron, stored.timezone)} -> "
            f"{_describe(p.schedule, p.timezone)}")


def _now_ms() -> int:
    return int(time.time() * 1000)


def worker_name() -> str:
    """This process's name on the queue: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class PipelineService:
    def __init__(self, store: PipelineStore, services: PipelineServices,
                 monitoring: Callable[[], MonitoringService] | None,
                 project_root: Path | None, decisions: DecisionStore | None = None) -> None:
        self.store = store
        self.decision_store = decisions
        self.services = services
        self._monitoring = monitoring
        self.project_root = project_root

    # --- definitions ----------------------------------------------------------------------

    def _gather(self, targets: Sequence[Target] | Target | None) -> list[Pipeline]:
        from modelyard.pipelines.discovery import default_paths, load_pipelines

        if targets is None:
            paths = default_paths(self.project_root or Path.cwd())
            if not paths:
                raise InvalidInputError(
                    "no pipelines to read: give files, or put them in the project's "
                    "pipelines.py", field="path")
            return load_pipelines(paths)
        items = [targets] if isinstance(targets, (Pipeline, str, os.PathLike)) else targets
        found: list[Pipeline] = []
        for item in items:
            if isinstance(item, Pipeline):
                found.append(item)
            elif isinstance(item, (str, os.PathLike)):
                found += load_pipelines([Path(item)])
            else:
                raise InvalidDefinitionError(
                    f"cannot apply {item!r}: expected a pipeline or a file", field="pipelines")
        names = [p.name for p in found]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidDefinitionError(
                f"two pipelines are named {', '.join(map(repr, twice))}", field="name")
        return found

    def _validate(self, pipelines: Sequence[Pipeline]) -> None:
        known = {p.name for p in pipelines} | {r.name for r in self.store.list_pipelines()}
        rules_of: dict[str, set[str]] = {}
        for p in pipelines:
            for trigger in p.triggers:
                if isinstance(trigger, OnSuccess) and trigger.pipeline not in known:
                    raise InvalidDefinitionError(
                        f"pipeline {p.name!r}: on_success names pipeline "
                        f"{trigger.pipeline!r}, which is neither stored nor in this apply",
                        field="triggers", pipeline=p.name)
                if isinstance(trigger, OnNewData):
                    try:
                        self.services.features().source(trigger.source)
                    except NotFoundError:
                        raise InvalidDefinitionError(
                            f"pipeline {p.name!r}: on_new_data names source "
                            f"{trigger.source!r}, which is not applied to the feature store",
                            field="triggers", pipeline=p.name) from None
                if isinstance(trigger, OnAlert) and trigger.rule is not None:
                    model = str(trigger.model or p.model)  # one of them is set
                    if model not in rules_of:
                        rules_of[model] = self._rule_names(model)
                    if trigger.rule not in rules_of[model]:
                        listed = ", ".join(sorted(rules_of[model])) or "none"
                        raise InvalidDefinitionError(
                            f"pipeline {p.name!r}: on_alert names rule {trigger.rule!r}, "
                            f"which is not a monitoring rule of model {model!r} (its rules: "
                            f"{listed})", field="triggers", pipeline=p.name)

    def _rule_names(self, model: str) -> set[str]:
        if self._monitoring is None:
            return set()
        rules, _ = self._monitoring().rules(model)
        return {r.label for r in rules} | {r.condition for r in rules} | {
            r.text() for r in rules}

    def _labels_of(self, model: str, rule: str) -> set[str]:
        """What alerts call the rules of ``model`` that ``rule`` names by name, condition or
        text (apply accepts all three; an alert carries the rule's label)."""
        if self._monitoring is None:
            return {rule}
        rules, _ = self._monitoring().rules(model)
        return {rule} | {r.label for r in rules if rule in (r.label, r.condition, r.text())}

    def plan(self, targets: Sequence[Target] | Target | None = None) -> list[PipelineChange]:
        """What :meth:`apply` would store (nothing is written)."""
        pipelines = self._gather(targets)
        self._validate(pipelines)
        stored = {s.pipeline: s for s in self.store.schedules()}
        changes = []
        for p in pipelines:
            digest = p.content_hash()
            schedule = _schedule_change(p, stored.get(p.name))
            try:
                latest = self.store.get_pipeline(p.name)
            except NotFoundError:
                changes.append(PipelineChange(p.name, "create", 1, None, digest, schedule))
                continue
            if latest.content_hash == digest:
                changes.append(PipelineChange(p.name, "unchanged", latest.version,
                                              latest.version, digest, schedule))
            else:
                changes.append(PipelineChange(p.name, "update", latest.version + 1,
                                              latest.version, digest, schedule))
        return changes

    def apply(self, targets: Sequence[Target] | Target | None = None
              ) -> list[PipelineChange]:
        """Store the pipelines (the project's ``pipelines.py`` by default); a changed one
        becomes a new version. Everything is checked before anything is stored."""
        pipelines = self._gather(targets)
        self._validate(pipelines)
        stored = {s.pipeline: s for s in self.store.schedules()}
        applied = []
        for p in pipelines:
            spec = p.spec() | {"path": p.path}
            record, created = self.store.put_pipeline(p.name, p.content_hash(), spec)
            previous = None if record.version == 1 and created else (
                record.version - 1 if created else record.version)
            action: Action = ("create" if record.version == 1 else "update") if created \
                else "unchanged"
            schedule = _schedule_change(p, stored.get(p.name))
            applied.append(PipelineChange(p.name, action, record.version, previous,
                                          record.content_hash, schedule))
            if schedule is not None:
                declared = {"cron": p.schedule, "timezone": p.timezone}
                self.store.set_schedule(ScheduleRecord(p.name, p.schedule, p.timezone,
                                                       declared, _now_ms(), _now_ms()))
        return applied

    def get(self, name: str, version: int | None = None) -> Pipeline:
        """The stored pipeline (its current schedule attached)."""
        record = self.store.get_pipeline(name, version)
        schedule = self._schedule(name)
        return Pipeline.from_spec(record.spec,
                                  schedule=None if schedule is None else schedule.cron,
                                  timezone="UTC" if schedule is None else schedule.timezone)

    def record(self, name: str, version: int | None = None) -> PipelineRecord:
        return self.store.get_pipeline(name, version)

    def list(self) -> list[PipelineRecord]:
        """The latest version of every stored pipeline."""
        return self.store.list_pipelines()

    def _schedule(self, name: str) -> ScheduleRecord | None:
        return next((s for s in self.store.schedules() if s.pipeline == name), None)

    def set_schedule(self, name: str, cron: str | None, timezone: str = "UTC"
                     ) -> ScheduleRecord:
        """Change (or with ``cron=None`` remove) a pipeline's schedule, keeping its version.
        Due times from now on count; none before."""
        self.store.get_pipeline(name)
        cron = None if cron is None else check_cron(cron, name)
        check_timezone(timezone)
        old = self._schedule(name)
        record = ScheduleRecord(name, cron, timezone, {} if old is None else old.declared,
                                _now_ms(), _now_ms())
        self.store.set_schedule(record)
        return record

    # --- the queue ------------------------------------------------------------------------

    def _params(self, record: PipelineRecord, overrides: Mapping[str, Any] | None
                ) -> dict[str, Any]:
        params = dict(record.spec.get("params", {}))
        unknown = sorted(set(overrides or {}) - set(params))
        if unknown:
            declared = ", ".join(sorted(params)) or "none"
            raise InvalidInputError(
                f"pipeline {record.name!r} has no param {', '.join(map(repr, unknown))} (its "
                f"params: {declared})", field="params")
        params.update(overrides or {})
        try:
            json.dumps(params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"params must be JSON values: {exc}",
                                    field="params") from exc
        return params

    def _new_run(self, name: str, params: Mapping[str, Any] | None, trigger: str,
                 detail: Mapping[str, Any] | None, *, run_at_ms: int | None = None,
                 dedupe_key: str | None = None) -> PipelineRunRecord:
        record = self.store.get_pipeline(name)
        now = _now_ms()
        return PipelineRunRecord(
            uuid.uuid4().hex, name, record.version, "queued", trigger, dict(detail or {}),
            self._params(record, params), now, now if run_at_ms is None else run_at_ms,
            int(record.spec.get("max_attempts", 2)), dedupe_key)

    def enqueue(self, name: str, params: Mapping[str, Any] | None = None, *,
                trigger: str = "manual", detail: Mapping[str, Any] | None = None
                ) -> PipelineRunRecord:
        """Queue a run of the pipeline's latest version for a worker."""
        run, _ = self.store.enqueue(self._new_run(name, params, trigger, detail))
        return run

    def run(self, name: str, params: Mapping[str, Any] | None = None, *,
            on_step: Callable[[builtins.list[dict[str, Any]]], None] | None = None,
            echo: Any = None, lease_ms: int = DEFAULT_LEASE_MS) -> PipelineRunRecord:
        """Run the pipeline here and now (recorded like a worker's run); the finished
        run. ``echo`` receives the run's output as it is written."""
        from dataclasses import replace

        me = worker_name()
        now = _now_ms()
        run = replace(self._new_run(name, params, "manual", {"where": "foreground"}),
                      status="running", worker=me, attempts=1, max_attempts=1,
                      started_at_ms=now, lease_expires_ms=now + lease_ms)
        self.store.enqueue(run)
        return self._execute(run, me, lease_ms, on_step=on_step, echo=echo)

    def work_once(self, worker: str, *, lease_ms: int = DEFAULT_LEASE_MS
                  ) -> PipelineRunRecord | None:
        """Claim the oldest queued run and run it; the finished run, or None if idle."""
        run = self.store.claim(worker, lease_ms, _now_ms())
        if run is None:
            return None
        return self._execute(run, worker, lease_ms)

    def _execute(self, run: PipelineRunRecord, worker: str, lease_ms: int, *,
                 on_step: Callable[[builtins.list[dict[str, Any]]], None] | None = None,
                 echo: Any = None) -> PipelineRunRecord:
        record = self.store.get_pipeline(run.pipeline, run.version)
        pipeline = Pipeline.from_spec(record.spec)
        done = execute(run, pipeline, self.store, self.services, worker=worker,
                       lease_ms=lease_ms, on_step=on_step, echo=echo,
                       decide=None if pipeline.policy is None else self._decider(pipeline))
        if done.status == "succeeded":
            self._after_success(done)
        return done

    def _after_success(self, run: PipelineRunRecord) -> builtins.list[PipelineRunRecord]:
        queued = []
        for record in self.store.list_pipelines():
            for trigger in record.spec.get("triggers", []):
                if trigger.get("kind") == "upstream" and trigger.get("pipeline") == run.pipeline:
                    new = self._new_run(record.name, None, "upstream",
                                        {"pipeline": run.pipeline, "run_id": run.run_id},
                                        dedupe_key=f"upstream:{record.name}:{run.run_id}")
                    queued.append(self.store.enqueue(new)[0])
        return queued

    def on_alerts(self, alerts: Sequence[AlertRecord]) -> builtins.list[PipelineRunRecord]:
        """Queue the pipelines whose alert triggers match fired alerts: one run per
        pipeline, collapsed into a live or recent run within the trigger's cooldown."""
        if not alerts:
            return []
        self._probation(alerts)
        queued = []
        for record in self.store.list_pipelines():
            matched: builtins.list[AlertRecord] = []
            cooldown_ms = 0
            for spec in record.spec.get("triggers", []):
                if spec.get("kind") != "alert":
                    continue
                trigger = OnAlert(spec.get("model"), spec.get("rule"),
                                  spec.get("cooldown", "1h"))
                model = trigger.model or record.spec["model"]
                named = None if trigger.rule is None else self._labels_of(model, trigger.rule)
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
            run = self._new_run(record.name, None, "alert", detail)
            found, _ = self.store.enqueue(run, collapse_since_ms=_now_ms() - cooldown_ms)
            queued.append(found)
        return queued

    def _probation(self, alerts: Sequence[AlertRecord]) -> builtins.list[DecisionRecord]:
        """Roll back versions on probation that critical alerts fired on (see
        :mod:`modelyard.pipelines.probation`); a failure is logged, never stops retraining."""
        from modelyard.pipelines import probation

        if self.decision_store is None:
            return []
        try:
            return probation.on_alerts(alerts, self.decision_store, self.store,
                                       self.services.models())
        except ModelyardError:
            logging.getLogger(__name__).exception("could not apply probation to alerts")
            return []

    def hook_into(self, monitoring: MonitoringService) -> None:
        """Have monitoring hand its fired alerts to :meth:`on_alerts`."""
        monitoring.add_alert_hook(self.on_alerts)

    def fire_due(self, now: datetime | None = None) -> builtins.list[PipelineRunRecord]:
        """Queue each schedule's latest due time not queued yet (once, however many
        workers call this together); missed earlier times are not run again."""
        when = now or datetime.now(UTC)
        queued = []
        for schedule in self.store.schedules():
            if schedule.cron is None:
                continue
            due = schedules.latest_due(schedule.cron, schedule.timezone, when)
            due_ms = int(due.timestamp() * 1000)
            if due_ms <= schedule.cursor_ms:
                continue
            detail = {"cron": schedule.cron, "timezone": schedule.timezone,
                      "scheduled_for": due.isoformat()}
            try:
                run = self._new_run(schedule.pipeline, None, "schedule", detail,
                                    run_at_ms=due_ms,
                                    dedupe_key=f"schedule:{schedule.pipeline}:{due_ms}")
            except NotFoundError:
                continue
            found, created = self.store.enqueue(run)
            self.store.advance_schedule(schedule.pipeline, schedule.cursor_ms, due_ms)
            if created:
                queued.append(found)
        return queued

    def fire_new_data(self) -> builtins.list[PipelineRunRecord]:
        """Queue the pipelines whose sources gained enough rows since the last run their
        data trigger started (or since the pipeline was first applied); once per newest
        commit, however many workers call this together."""
        queued = []
        for record in self.store.list_pipelines():
            for spec in record.spec.get("triggers", []):
                if spec.get("kind") != "data":
                    continue
                run = self._new_data_run(record, spec["source"], int(spec["min_rows"]))
                if run is not None:
                    found, created = self.store.enqueue(run)
                    if created:
                        queued.append(found)
        return queued

    def _new_data_run(self, record: PipelineRecord, source: str, min_rows: int
                      ) -> PipelineRunRecord | None:
        commits = [c for c in self.services.features().commits(source)
                   if c.operation == "ingest"]
        last = next((r for r in self.store.runs(record.name, limit=None)
                     if r.trigger == "data" and r.trigger_detail.get("source") == source),
                    None)
        if last is not None:
            seen = int(last.trigger_detail["table_version"])
            fresh = [c for c in commits if c.version > seen]
        else:
            since_ms = self.store.get_pipeline(record.name, 1).created_at_ms
            fresh = [c for c in commits if c.ingested_at.timestamp() * 1000 > since_ms]
        rows = sum(c.rows for c in fresh)
        if not fresh or rows < min_rows:
            return None
        newest = max(fresh, key=lambda c: c.version)
        detail = {"source": source, "rows": rows, "commits": len(fresh),
                  "table_version": newest.version, "commit_id": newest.commit_id}
        return self._new_run(record.name, None, "data", detail,
                             dedupe_key=f"data:{record.name}:{source}:{newest.version}")

    # --- decisions on candidates -----------------------------------------------------------

    def _decisions(self) -> DecisionStore:
        if self.decision_store is None:
            raise RunStateError("this pipeline service was given no decision store")
        return self.decision_store

    def _decider(self, pipeline: Pipeline
                 ) -> Callable[[PipelineContext, PipelineRunRecord], dict[str, Any]]:
        from modelyard.pipelines.decisions import decide

        store = self._decisions()

        def decider(ctx: PipelineContext, run: PipelineRunRecord) -> dict[str, Any]:
            record = decide(ctx, run, pipeline, store)
            return {} if record is None else {"decision": record.decision}

        return decider

    def decision(self, run_id: str) -> DecisionRecord | None:
        """The decision a run's candidate received (None: no policy, or not run yet)."""
        return self._decisions().decision_of_run(run_id)

    def decisions(self, model: str | None = None, version: int | None = None, *,
                  decision: str | None = None) -> builtins.list[DecisionRecord]:
        """Decision records, newest first (``decision="pending"``: those awaiting
        approval)."""
        if decision is not None and decision not in DECISIONS:
            raise InvalidInputError(f"decision {decision!r} is not one of "
                                    f"{', '.join(DECISIONS)}", field="decision")
        return self._decisions().decisions(model, version, decision=decision)

    def approve(self, name: str, version: int, *, reason: str = "",
                actor: str | None = None) -> DecisionRecord:
        """Approve a pending candidate: its gates run again against the current champion
        and it is promoted if they pass (GateFailedError, and the decision refused, if
        not)."""
        from modelyard.pipelines.decisions import approve
        from modelyard.tracking.environment import current_user

        return approve(self._decisions(), self.services.models(), name, int(version),
                       actor=actor or current_user(), reason=reason)

    def reject(self, name: str, version: int, *, reason: str = "",
               actor: str | None = None) -> DecisionRecord:
        """Reject a pending candidate: it stays registered, unpromoted."""
        from modelyard.pipelines.decisions import reject
        from modelyard.tracking.environment import current_user

        return reject(self._decisions(), name, int(version),
                      actor=actor or current_user(), reason=reason)

    def why(self, ref: str) -> Why:
        """Why a version exists and holds its aliases: ``"name@alias"`` or
        ``"name:version"`` -> pipeline run -> trigger -> data -> gates -> decision."""
        from modelyard.pipelines.decisions import why

        return why(self._decisions(), self.store, self.services.models(), ref)

    def reproduce(self, ref: str, *, rtol: float = 1e-9) -> Reproduction:
        """Run again the pipeline version that produced ``ref`` (its stored code, params
        and run time) without registering anything, and compare the predictions of the
        two models on the original's training set (see :mod:`.reproduce`)."""
        from modelyard.pipelines.reproduce import reproduce

        return reproduce(self, ref, rtol=rtol)

    # --- reading --------------------------------------------------------------------------

    def get_run(self, run_id: str) -> PipelineRunRecord:
        return self.store.get_run(run_id)

    def runs(self, name: str | None = None, *, status: str | None = None,
             limit: int | None = 100) -> builtins.list[PipelineRunRecord]:
        """Runs (of one pipeline, in one state), newest first."""
        if status is not None and status not in PIPELINE_RUN_STATUSES:
            raise InvalidInputError(f"status {status!r} is not one of "
                                    f"{', '.join(PIPELINE_RUN_STATUSES)}", field="status")
        return self.store.runs(name, status=status, limit=limit)

    def triggers(self, now: datetime | None = None) -> builtins.list[TriggerInfo]:
        """Every schedule, alert, new-data and upstream trigger, with its next time
        (schedules) and
        the outcome of the last run it started."""
        when = now or datetime.now(UTC)
        found = []
        scheduled = {s.pipeline: s for s in self.store.schedules()}
        for record in self.store.list_pipelines():
            recent = self.store.runs(record.name, limit=50)

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
