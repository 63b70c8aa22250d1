"""Champion against challenger: what becomes of the version a pipeline run registers.

After a run of a pipeline with a ``policy`` registers its candidate, the candidate and the
champion (the version holding the pipeline's alias) are evaluated on the same frozen data
(the run's ``ctx.register(..., evaluation=...)``), the model's declared gates run against
the champion, and the policy decides: ``auto`` promotes a candidate that passes,
``approval`` leaves it pending for :func:`approve` or :func:`reject`; a candidate that fails
a gate is refused, never promoted. Each run keeps one :class:`DecisionRecord`, and
:func:`why` walks from a version back to what caused it.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.decisions import DecisionRecord, DecisionStore
from modelyard.errors import ConflictError, GateFailedError, NotFoundError

if TYPE_CHECKING:
    from modelyard.backends.metadata.pipelines import PipelineRunRecord, PipelineStore
    from modelyard.backends.metadata.registry import AliasEvent, VersionRecord
    from modelyard.pipelines.context import PipelineContext
    from modelyard.pipelines.definitions import Pipeline
    from modelyard.registry.service import ModelRegistry

__all__ = ["Why", "approve", "decide", "reject", "why"]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(data: Any) -> Any:
    """The evaluation data as a table: a training set's, or the frame itself."""
    return getattr(data, "table", data)


def _describe_data(data: Any) -> dict[str, Any] | None:
    """Where a training set's rows come from: as of, table commits, rows and the window
    of its timestamps."""
    if data is None:
        return None
    lineage = getattr(data, "lineage", None)
    if lineage is None:
        return {"rows": len(data)}
    found = lineage()
    described = {k: found.get(k) for k in ("training_set_id", "as_of", "commits", "rows")}
    column = found.get("timestamp")
    table = data.table
    if column and column in table.column_names and table.num_rows:
        import pyarrow.compute as pc

        bounds = pc.min_max(table.column(column)).as_py()
        described["window"] = [str(bounds["min"]), str(bounds["max"])]
    return described


def _metrics(registry: ModelRegistry, name: str, version: int | None) -> dict[str, Any] | None:
    from modelyard.registry.promotion import DEFAULT_DATASET

    if version is None:
        return None
    for found in registry.store.evaluations(name, version):
        if found.dataset == DEFAULT_DATASET:
            return dict(found.evaluation.get("metrics", {}))
    return {}


def decide(ctx: PipelineContext, run: PipelineRunRecord, pipeline: Pipeline,
           store: DecisionStore) -> DecisionRecord | None:
    """Evaluate the run's candidate against the champion, run the gates, apply the
    pipeline's policy and store the decision (None: no policy, or nothing registered)."""
    from modelyard.registry.gates import FairnessGate
    from modelyard.registry.promotion import (
        DEFAULT_DATASET,
        declared_gates,
        evaluate_version,
        run_gates,
    )

    if pipeline.policy is None or not ctx.registered:
        return None
    registry = ctx.models
    candidate: VersionRecord = ctx.registered[-1]
    name, alias = candidate.name, pipeline.alias
    gates = declared_gates(registry, name)
    champion = registry.store.aliases(name).get(alias)
    if ctx.evaluation is not None:  # both on the same frozen data
        sensitive = sorted({g.sensitive for g in gates if isinstance(g, FairnessGate)
                            and (g.data or DEFAULT_DATASET) == DEFAULT_DATASET})
        held = [] if champion is None else [registry.store.get_version(name, champion)]
        for version in [candidate, *held]:
            evaluate_version(registry, version, _table(ctx.evaluation),
                             label=ctx.evaluation_label, dataset=DEFAULT_DATASET,
                             slice_by=None, sensitive=sensitive)
    report = run_gates(registry, candidate, champion, alias, gates)
    record = DecisionRecord(
        uuid.uuid4().hex, run.run_id, run.pipeline, run.version, name, candidate.version,
        alias, champion, pipeline.policy, "refused", run.trigger, dict(run.trigger_detail),
        {"training": _describe_data(ctx.training), "evaluation": _describe_data(
            ctx.evaluation)},
        _metrics(registry, name, candidate.version) or {},
        _metrics(registry, name, champion), report.to_dict(), report.passed,
        f"pipeline:{run.pipeline}", _now_ms(), "" if report.passed else report.summary(),
        _now_ms())
    if report.passed and pipeline.policy == "approval":
        record = replace(record, decision="pending", decided_by=None, decided_at_ms=None)
    elif report.passed:
        actor = f"pipeline:{run.pipeline}"
        try:
            promotion = registry.promote(name, candidate.version, alias, actor=actor,
                                         reason=f"policy auto, pipeline run {run.run_id}")
        except GateFailedError as exc:  # the champion changed meanwhile
            record = replace(record, passed=False, gate_report=exc.details["report"],
                             reason=str(exc))
        else:
            record = replace(record, decision="promoted", decided_at_ms=promotion.event.at,
                             champion=promotion.previous)
    store.save_decision(record)
    if record.decision == "pending" and pipeline.notify:
        _announce(ctx, record, pipeline.notify)
    ctx.log.info("decision on %s:%s (%s policy): %s", name, candidate.version,
                 pipeline.policy, record.decision)
    return record


def _announce(ctx: PipelineContext, record: DecisionRecord, notify: tuple[str, ...]) -> None:
    """Tell the pipeline's notifiers that a candidate awaits approval (as an alert of
    severity ``info``, rule ``decision pending``)."""
    from modelyard.monitoring.notify import Alert, deliver, notifier_from_text

    ref = f"{record.model}:{record.version}"
    alert = Alert(record.model, record.version, "decision pending", "info",
                  f"version {record.version} of {record.model} awaits approval to become "
                  f"{record.alias} (pipeline run {record.run_id}): modelyard models approve "
                  f"{ref} or modelyard models reject {ref}", None, {},
                  datetime.now(UTC).isoformat(timespec="seconds"),
                  {"decision_id": record.decision_id, "pipeline": record.pipeline,
                   "champion": record.champion,
                   "candidate_metrics": record.candidate_metrics},
                  record.decision_id[:16])
    for delivery in deliver([alert], [notifier_from_text(t) for t in notify]):
        if not delivery.ok:
            ctx.log.warning("could not announce the pending decision to %s: %s",
                            delivery.target, delivery.detail)


def _pending(store: DecisionStore, name: str, version: int) -> DecisionRecord:
    found = store.decisions(name, version)
    pending = [d for d in found if d.decision == "pending"]
    if pending:
        return pending[0]
    if not found:
        raise NotFoundError(f"version {version} of model {name!r} has no decision waiting "
                            "for approval (no pipeline run with a policy registered it)",
                            model=name, version=version)
    raise ConflictError(f"version {version} of model {name!r} is not waiting for approval: "
                        f"it was {found[0].decision}", model=name, version=version,
                        decision=found[0].decision)


def approve(store: DecisionStore, registry: ModelRegistry, name: str, version: int, *,
            actor: str, reason: str = "") -> DecisionRecord:
    """Approve a pending candidate: the gates run again against the alias's current
    holder, and the version is promoted only if they pass (else the decision becomes
    ``refused`` and GateFailedError is raised).

    The decision is claimed first (``pending`` to ``approved``, a compare-and-set), so a
    rejection or a second approval racing this one is refused rather than overtaken by a
    promotion; a promotion that then fails for another reason puts it back to pending."""
    pending = _pending(store, name, version)
    claimed = replace(pending, decision="approved", decided_by=actor,
                      decided_at_ms=_now_ms(), reason=reason)
    if not store.resolve_decision(pending.decision_id, "pending", claimed):
        raise ConflictError(f"the decision on {name}:{version} was resolved by someone else "
                            "meanwhile", model=name, version=version)
    try:
        promotion = registry.promote(name, version, pending.alias, actor=actor,
                                     reason=reason or "approved")
    except GateFailedError as exc:
        refused = replace(pending, decision="refused", passed=False,
                          gate_report=exc.details["report"], decided_by=actor,
                          decided_at_ms=_now_ms(), reason=str(exc))
        store.resolve_decision(pending.decision_id, "approved", refused)
        raise
    except BaseException:
        store.resolve_decision(pending.decision_id, "approved", pending)
        raise
    approved = replace(claimed, passed=True, gate_report=promotion.report.to_dict(),
                       champion=promotion.previous, decided_at_ms=promotion.event.at)
    store.resolve_decision(pending.decision_id, "approved", approved)
    return approved


def reject(store: DecisionStore, name: str, version: int, *, actor: str,
           reason: str = "") -> DecisionRecord:
    """Reject a pending candidate: it stays registered and is not promoted."""
    pending = _pending(store, name, version)
    rejected = replace(pending, decision="rejected", decided_by=actor,
                       decided_at_ms=_now_ms(), reason=reason)
    if not store.resolve_decision(pending.decision_id, "pending", rejected):
        raise ConflictError(f"the decision on {name}:{version} was resolved by someone else "
                            "meanwhile", model=name, version=version)
    return rejected


@dataclass(frozen=True)
class Why:
    """How a version came to be where it is: its pipeline run, trigger, data, gates and
    decision, and the alias moves that name it."""

    model: str
    version: int
    decision: DecisionRecord | None
    run: PipelineRunRecord | None
    moves: list[AliasEvent]

    def lines(self) -> list[str]:
        out = [f"version: {self.model}:{self.version}"]
        d = self.decision
        if d is None and self.run is not None:
            out.append(f"pipeline run: {self.run.run_id} (pipeline {self.run.pipeline} "
                       f"v{self.run.version}, which has no policy: no decision)")
            out.append(f"trigger: {_trigger(self.run.trigger, self.run.trigger_detail)}")
        elif d is None:
            out.append("pipeline run: none (registered by hand, not by a pipeline)")
        else:
            out.append(f"pipeline run: {d.run_id} (pipeline {d.pipeline} "
                       f"v{d.pipeline_version})")
            out.append(f"trigger: {_trigger(d.trigger, d.trigger_detail)}")
            for kind in ("training", "evaluation"):
                data = d.data.get(kind)
                if data:
                    out.append(f"{kind} data: {_data(data)}")
            champion = "none" if d.champion is None else f"version {d.champion}"
            out.append(f"champion: {d.alias} = {champion}; candidate metrics "
                       f"{_numbers(d.candidate_metrics)}; champion metrics "
                       f"{_numbers(d.champion_metrics or {})}")
            results = d.gate_report.get("results", [])
            passed = sum(1 for r in results if r.get("passed"))
            out.append(f"gates: {passed} of {len(results)} passed" + "".join(
                f"\n  - {r['gate']}: {'passed' if r.get('passed') else 'FAILED'}"
                f"{'' if r.get('passed') else ' (' + str(r.get('detail', '')) + ')'}"
                for r in results))
            out.append(f"decision: {d.decision} (policy {d.policy})")
            if d.decided_by is not None:
                note = f"; reason: {d.reason}" if d.reason and d.decision != "refused" else ""
                out.append(f"decided by: {d.decided_by} at {_when(d.decided_at_ms)}{note}")
        for event in self.moves:
            if event.actor.startswith("pipeline:"):
                how = "by pipeline policy"
            elif d is not None and _approved_by(d, event.actor):
                how = "on approval"
            else:
                how = "by hand"
            out.append(f"alias {event.alias}: {event.action} to version {event.to_version} "
                       f"{how} ({event.actor}, {_when(event.at)})"
                       + (f": {event.reason}" if event.reason else ""))
        return out


def _approved_by(d: DecisionRecord, actor: str) -> bool:
    """Whether ``actor`` approved the decision's candidate (also when probation rolled it
    back since: its reason keeps who approved it)."""
    if d.decision == "approved":
        return actor == d.decided_by
    return d.decision == "rolled_back" and re.search(
        rf"\bapproved by {re.escape(actor)}\b", d.reason) is not None


def _trigger(kind: str, detail: dict[str, Any]) -> str:
    if kind == "alert":
        values = ", ".join(f"{rule} = {value}" for rule, value in
                           detail.get("values", {}).items())
        rules = ", ".join(detail.get("rules", []))
        return (f"alert on {detail.get('model')}: {rules}" + (f" ({values})" if values else "")
                + f" [alerts {', '.join(detail.get('alerts', []))}]")
    if kind == "schedule":
        return f"schedule {detail.get('cron')} ({detail.get('timezone')}), due " \
               f"{detail.get('scheduled_for')}"
    if kind == "data":
        return f"new data: {detail.get('rows')} rows in {detail.get('source')}"
    if kind == "upstream":
        return f"after pipeline {detail.get('pipeline')} (run {detail.get('run_id')})"
    return "manual" + (f" ({detail['where']})" if detail.get("where") else "")


def _data(data: dict[str, Any]) -> str:
    parts = [f"{data['rows']} rows"] if data.get("rows") is not None else []
    if data.get("window"):
        parts.append(f"window {data['window'][0]} .. {data['window'][1]}")
    if data.get("as_of"):
        parts.append(f"as of {data['as_of']}")
    if data.get("commits"):
        parts.append("commits " + ", ".join(f"{k}@{v}" for k, v in
                                            sorted(data["commits"].items())))
    return "; ".join(parts)


def _numbers(metrics: dict[str, Any]) -> str:
    if not metrics:
        return "-"
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in sorted(metrics.items()))


def _pipeline_run_of(registry: ModelRegistry, record: VersionRecord) -> str | None:
    """The pipeline run whose tracking run registered the version, if one did."""
    if record.run_id is None:
        return None
    try:
        tags = registry.tracking.get_run(record.run_id).tags
    except NotFoundError:
        return None
    found = tags.get("modelyard.pipeline_run")
    return None if found is None else str(found)


def why(store: DecisionStore, runs: PipelineStore, registry: ModelRegistry,
        ref: str) -> Why:
    """The chain behind a version (``name@alias`` or ``name:version``)."""
    record = registry.get_version(ref)
    found = store.decisions(record.name, record.version)
    decision = found[0] if found else None
    run_id = decision.run_id if decision is not None else _pipeline_run_of(registry, record)
    run = None
    if run_id is not None:
        try:
            run = runs.get_run(run_id)
        except NotFoundError:
            run = None
    moves = [e for e in registry.history(record.name) if e.to_version == record.version]
    return Why(record.name, record.version, decision, run, moves)
