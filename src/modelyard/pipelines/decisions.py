"""Champion against challenger: what becomes of the version a pipeline run registers.

After a run of a pipeline with a ``policy`` registers its candidate, the candidate and the
champion (the version holding the pipeline's alias) are evaluated on the same frozen data
(the run's ``ctx.register(..., evaluation=...)``), the model's declared gates run against
the champion, and the policy decides: ``auto`` promotes a candidate that passes,
``approval`` leaves it pending for :func:`approve` or :func:`reject`; a candidate that fails
a gate is refused, never promoted; ``shadow`` tries a candidate that passes live first
(:mod:`.shadowing`). The evaluation data is what the run handed to ``ctx.register``, else
the snapshot of the pipeline's declared :class:`EvaluationWindow` (:mod:`.snapshot`). Each
run keeps one :class:`DecisionRecord`; :mod:`.why` walks from a version back to what caused
it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.decisions import DecisionRecord, DecisionStore
from modelyard.errors import ConflictError, GateFailedError, NotFoundError

if TYPE_CHECKING:
    from modelyard.backends.metadata.pipelines import PipelineRunRecord
    from modelyard.backends.metadata.predictions import PredictionStore
    from modelyard.backends.metadata.registry import VersionRecord
    from modelyard.pipelines.context import PipelineContext
    from modelyard.pipelines.definitions import Pipeline
    from modelyard.registry.service import ModelRegistry

__all__ = ["approve", "decide", "reject"]


def _now_ms() -> int:
    return int(time.time() * 1000)


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


def _evaluation(ctx: PipelineContext, pipeline: Pipeline, model: str,
                predictions: PredictionStore | None) -> tuple[Any, str | None,
                                                              dict[str, Any] | None]:
    """The data candidate and champion are scored on, its label column and where it came
    from: what the run handed to ``ctx.register``, else the pipeline's declared window."""
    if ctx.evaluation is not None:
        return _table(ctx.evaluation), ctx.evaluation_label, _describe_data(ctx.evaluation)
    if pipeline.evaluation is None:
        return None, None, None
    from modelyard.pipelines.snapshot import build

    snapshot = build(pipeline.evaluation, ctx, model, predictions)
    return snapshot.frame, snapshot.label, snapshot.described


def decide(ctx: PipelineContext, run: PipelineRunRecord, pipeline: Pipeline,
           store: DecisionStore, predictions: PredictionStore | None = None
           ) -> DecisionRecord | None:
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
    data, label, described = _evaluation(ctx, pipeline, name, predictions)
    slices = None if pipeline.evaluation is None or ctx.evaluation is not None else (
        list(pipeline.evaluation.slices) or None)
    if data is not None:  # both on the same frozen data
        sensitive = sorted({g.sensitive for g in gates if isinstance(g, FairnessGate)
                            and (g.data or DEFAULT_DATASET) == DEFAULT_DATASET})
        held = [] if champion is None else [registry.store.get_version(name, champion)]
        scored = {}
        for version in [candidate, *held]:
            result = evaluate_version(registry, version, data, label=label,
                                      dataset=DEFAULT_DATASET, slice_by=slices,
                                      sensitive=sensitive)
            scored[version.version] = result.rows
            if slices and described is not None:
                described.setdefault("slices", {})[str(version.version)] = {
                    col: {str(v): dict(m) for v, m in groups.items()}
                    for col, groups in result.slices.items()}
        if described is not None:
            described["scored_rows"] = {str(k): v for k, v in scored.items()}
    report = run_gates(registry, candidate, champion, alias, gates)
    actor = f"pipeline:{run.pipeline}"
    record = DecisionRecord(
        uuid.uuid4().hex, run.run_id, run.pipeline, run.version, name, candidate.version,
        alias, champion, pipeline.policy, "refused", run.trigger, dict(run.trigger_detail),
        {"training": _describe_data(ctx.training), "evaluation": described},
        _metrics(registry, name, candidate.version) or {},
        _metrics(registry, name, champion), report.to_dict(), report.passed,
        actor, _now_ms(), "" if report.passed else report.summary(),
        _now_ms())
    if report.passed and pipeline.policy == "approval":
        record = replace(record, decision="pending", decided_by=None, decided_at_ms=None)
    elif report.passed and pipeline.policy == "shadow" and champion is not None:
        from modelyard.pipelines.shadowing import start

        assert pipeline.shadow is not None
        record = start(record, pipeline.shadow, registry, store)
    elif report.passed:
        reason = f"policy {pipeline.policy}, pipeline run {run.run_id}" + (
            "" if pipeline.policy == "auto" else ": no champion to try it against")
        try:
            promotion = registry.promote(name, candidate.version, alias, actor=actor,
                                         reason=reason)
        except GateFailedError as exc:  # the champion changed meanwhile
            record = replace(record, passed=False, gate_report=exc.details["report"],
                             reason=str(exc))
        else:
            record = replace(record, decision="promoted", decided_at_ms=promotion.event.at,
                             champion=promotion.previous,
                             reason="" if pipeline.policy == "auto" else reason)
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


