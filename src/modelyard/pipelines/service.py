"""``yard.pipelines``: registered training pipelines, their triggers and their runs.

::

    yard.pipelines.apply()                      # the project's pipelines.py, versioned
    run = yard.pipelines.run("claims_retrain", params={"alpha": 0.5})   # here and now
    yard.pipelines.enqueue("claims_retrain")    # for `modelyard worker`

The service sits above the domain services: it receives the ones a run uses (tracking, the
registry, the feature store, monitoring's rules for checking alert triggers, the prediction
log for shadow trials), never the whole Yard. The queue, its leases and the schedules'
cursors live in the metadata store (:mod:`modelyard.backends.metadata.pipelines`). Each
concern has its module, which the service delegates to: ``applying`` (plan, apply),
``queueing`` (new runs), ``runner`` (one run), ``triggering`` (alerts, schedules, new data,
upstream runs), ``decisions`` (champion against challenger, approvals), ``shadowing``
(shadow trials), ``probation``, ``why`` and ``reproduce``.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.decisions import DECISIONS, DecisionRecord, DecisionStore
from modelyard.backends.metadata.pipelines import (
    PIPELINE_RUN_STATUSES,
    PipelineRecord,
    PipelineRunRecord,
    PipelineStore,
    ScheduleRecord,
)
from modelyard.errors import InvalidInputError, ModelyardError, RunStateError
from modelyard.pipelines import applying, triggering
from modelyard.pipelines.applying import PipelineChange, Target
from modelyard.pipelines.context import PipelineContext, PipelineServices
from modelyard.pipelines.definitions import Pipeline, check_cron, check_timezone
from modelyard.pipelines.queueing import DEFAULT_LEASE_MS, new_run, now_ms, worker_name
from modelyard.pipelines.runner import execute
from modelyard.pipelines.triggering import TriggerInfo

if TYPE_CHECKING:
    from modelyard.backends.metadata.monitoring import AlertRecord
    from modelyard.monitoring.service import MonitoringService
    from modelyard.pipelines.reproduce import Reproduction
    from modelyard.pipelines.why import Why

__all__ = ["DEFAULT_LEASE_MS", "PipelineChange", "PipelineService", "TriggerInfo",
           "worker_name"]

_log = logging.getLogger(__name__)


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

    def _checked(self, targets: Sequence[Target] | Target | None) -> list[Pipeline]:
        pipelines = applying.gather(targets, self.project_root)
        applying.validate(pipelines, self.store, self.services, self._monitoring)
        return pipelines

    def _labels_of(self, model: str, rule: str) -> set[str]:
        """What alerts call the rules of ``model`` that ``rule`` names by name, condition or
        text (apply accepts all three; an alert carries the rule's label)."""
        if self._monitoring is None:
            return {rule}
        rules, _ = self._monitoring().rules(model)
        return {rule} | {r.label for r in rules if rule in (r.label, r.condition, r.text())}

    def plan(self, targets: Sequence[Target] | Target | None = None) -> list[PipelineChange]:
        """What :meth:`apply` would store (nothing is written)."""
        return applying.plan(self._checked(targets), self.store)

    def apply(self, targets: Sequence[Target] | Target | None = None
              ) -> list[PipelineChange]:
        """Store the pipelines (the project's ``pipelines.py`` by default); a changed one
        becomes a new version. Everything is checked before anything is stored."""
        return applying.apply(self._checked(targets), self.store)

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
                                now_ms(), now_ms())
        self.store.set_schedule(record)
        return record

    # --- the queue ------------------------------------------------------------------------

    def enqueue(self, name: str, params: Mapping[str, Any] | None = None, *,
                trigger: str = "manual", detail: Mapping[str, Any] | None = None
                ) -> PipelineRunRecord:
        """Queue a run of the pipeline's latest version for a worker."""
        run, _ = self.store.enqueue(new_run(self.store, name, params, trigger, detail))
        return run

    def run(self, name: str, params: Mapping[str, Any] | None = None, *,
            on_step: Callable[[builtins.list[dict[str, Any]]], None] | None = None,
            echo: Any = None, lease_ms: int = DEFAULT_LEASE_MS) -> PipelineRunRecord:
        """Run the pipeline here and now (recorded like a worker's run); the finished
        run. ``echo`` receives the run's output as it is written."""
        from dataclasses import replace

        me = worker_name()
        now = now_ms()
        run = replace(new_run(self.store, name, params, "manual", {"where": "foreground"}),
                      status="running", worker=me, attempts=1, max_attempts=1,
                      started_at_ms=now, lease_expires_ms=now + lease_ms)
        self.store.enqueue(run)
        return self._execute(run, me, lease_ms, on_step=on_step, echo=echo)

    def work_once(self, worker: str, *, lease_ms: int = DEFAULT_LEASE_MS
                  ) -> PipelineRunRecord | None:
        """Claim the oldest queued run and run it; the finished run, or None if idle."""
        run = self.store.claim(worker, lease_ms, now_ms())
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
            triggering.after_success(self.store, done)
        return done

    # --- triggers -------------------------------------------------------------------------

    def on_alerts(self, alerts: Sequence[AlertRecord]) -> builtins.list[PipelineRunRecord]:
        """Apply probation to fired alerts, then queue the pipelines whose alert triggers
        match them: one run per pipeline, collapsed into a live or recent run within the
        trigger's cooldown."""
        if not alerts:
            return []
        self._probation(alerts)
        return triggering.on_alerts(self.store, alerts, self._labels_of)

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
            _log.exception("could not apply probation to alerts")
            return []

    def hook_into(self, monitoring: MonitoringService) -> None:
        """Have monitoring hand its fired alerts to :meth:`on_alerts`."""
        monitoring.add_alert_hook(self.on_alerts)

    def fire_due(self, now: datetime | None = None) -> builtins.list[PipelineRunRecord]:
        """Queue each schedule's latest due time not queued yet (once, however many
        workers call this together); missed earlier times are not run again."""
        return triggering.fire_due(self.store, now)

    def fire_new_data(self) -> builtins.list[PipelineRunRecord]:
        """Queue the pipelines whose sources gained enough rows since the last run their
        data trigger started (or since the pipeline was first applied); once per newest
        commit, however many workers call this together."""
        return triggering.fire_new_data(self.store, self.services.features)

    def triggers(self, now: datetime | None = None) -> builtins.list[TriggerInfo]:
        """Every schedule, alert, new-data and upstream trigger, with its next time
        (schedules) and the outcome of the last run it started."""
        return triggering.triggers(self.store, now)

    # --- decisions on candidates -----------------------------------------------------------

    def _decisions(self) -> DecisionStore:
        if self.decision_store is None:
            raise RunStateError("this pipeline service was given no decision store")
        return self.decision_store

    def _decider(self, pipeline: Pipeline
                 ) -> Callable[[PipelineContext, PipelineRunRecord], dict[str, Any]]:
        from modelyard.pipelines.decisions import decide

        store = self._decisions()
        predictions = self.services.predictions

        def decider(ctx: PipelineContext, run: PipelineRunRecord) -> dict[str, Any]:
            record = decide(ctx, run, pipeline, store,
                            None if predictions is None else predictions())
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
        ``"name:version"`` -> pipeline run -> trigger -> data -> gates -> trial ->
        decision."""
        from modelyard.pipelines.why import why

        return why(self._decisions(), self.store, self.services.models(), ref)

    # --- shadow trials --------------------------------------------------------------------

    def _predictions(self) -> Any:
        if self.services.predictions is None:
            raise RunStateError("this pipeline service was given no prediction log")
        return self.services.predictions()

    def shadows(self, model: str | None = None) -> builtins.list[tuple[DecisionRecord, int]]:
        """The shadow trials going on (decision ``shadowing``), newest first, each with the
        number of requests its candidate answered so far."""
        from modelyard.pipelines.shadowing import progress

        predictions = self._predictions()
        return [(d, progress(d, predictions))
                for d in self._decisions().decisions(model, decision="shadowing")]

    def check_shadows(self, now: datetime | None = None) -> builtins.list[DecisionRecord]:
        """Conclude every shadow trial whose time is up or whose candidate answered its
        requests: compare it live with the champion, then promote or drop it (the worker
        does this on its tick; ``modelyard pipelines shadows --check`` by hand)."""
        from modelyard.pipelines.shadowing import check

        if self.decision_store is None:
            return []
        return check(self.decision_store, self.services.models(), self._predictions(),
                     now_ms=None if now is None else int(now.timestamp() * 1000))

    def canary_share(self, name: str, version: int) -> float | None:
        """The percent of requests that ``name:version`` answers as a canary under the
        shadow trial going on for it (None: no canary trial), for a server whose canary
        was declared without a share."""
        if self.decision_store is None:
            return None
        for record in self.decision_store.decisions(name, int(version), decision="shadowing"):
            share = (record.shadow or {}).get("declared", {}).get("canary_percent")
            if share is not None:
                return float(share)
        return None

    def end_shadow(self, name: str, version: int) -> DecisionRecord:
        """Conclude the shadow trial of ``name:version`` now, whatever it declared."""
        from modelyard.errors import ConflictError, NotFoundError
        from modelyard.pipelines.shadowing import conclude

        found = self._decisions().decisions(name, int(version), decision="shadowing")
        if not found:
            raise NotFoundError(f"version {version} of model {name!r} is on no shadow trial",
                                model=name, version=version)
        done = conclude(found[0], self._decisions(), self.services.models(),
                        self._predictions(), ended="ended by hand")
        if done is None:
            raise ConflictError(f"the trial of {name}:{version} was concluded by someone "
                                "else meanwhile", model=name, version=version)
        return done

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
