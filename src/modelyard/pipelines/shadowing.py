"""The ``shadow`` policy: a candidate tried live next to the champion, then promoted or
dropped.

A candidate that passes the gates offline is put on the trial's alias (``shadow``, or
``canary`` for a canary trial, see :class:`~modelyard.pipelines.declarations.Shadow`), where
a model server following ``MODEL@shadow`` as its shadow (``MODEL@canary`` as its canary)
picks it up; its decision record is ``shadowing``, with the trial's declaration, start and
end kept in ``shadow``. :func:`check` (the worker's tick, ``modelyard pipelines shadows
--check``) concludes each trial whose time is up or whose candidate answered its declared
number of requests: the live comparison (:mod:`.live_comparison`) of candidate and champion
from the prediction log, the model's metric and no-regression gates on the labelled live
rows (data set ``live``), and the trial's own checks (error rate, latency, agreement). The
candidate is then promoted to the pipeline's alias, or dropped; either way the trial's
alias is removed, and the comparison is stored with the decision.

Concluding is claimed first (a compare-and-set on the decision), so two workers checking
together conclude a trial once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.registry import AliasEvent
from modelyard.errors import ConflictError, GateFailedError, ModelyardError, NotFoundError
from modelyard.pipelines.declarations import Shadow

if TYPE_CHECKING:
    from modelyard.backends.metadata.decisions import DecisionRecord, DecisionStore
    from modelyard.backends.metadata.predictions import PredictionStore
    from modelyard.registry.service import ModelRegistry

__all__ = ["LIVE_DATASET", "check", "conclude", "progress", "start"]

LIVE_DATASET = "live"  # the evaluation data set live metrics are stored under
_log = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _set_alias(registry: ModelRegistry, name: str, alias: str, version: int | None, *,
               actor: str, reason: str, only_from: int | None = None) -> bool:
    """Point the trial's alias at ``version`` (None removes it), recorded in the alias
    history; with ``only_from``, only while it still points there."""
    for _ in range(8):
        holder = registry.store.aliases(name).get(alias)
        if holder == version or (only_from is not None and holder != only_from):
            return False
        event = AliasEvent(name, alias, holder, version,
                           "remove" if version is None else "promote", actor, reason,
                           _now_ms())
        if registry.store.move_alias(event):
            return True
    raise ConflictError(f"alias {alias!r} of model {name!r} kept moving; try again",
                        model=name, alias=alias)


def start(record: DecisionRecord, shadow: Shadow, registry: ModelRegistry,
          store: DecisionStore) -> DecisionRecord:
    """Put the candidate on the trial's alias and return its ``shadowing`` record (not
    stored yet). An earlier trial of the same model still running is dropped: the alias
    now holds the newer candidate."""
    now = _now_ms()
    for earlier in store.decisions(record.model, decision="shadowing"):
        if earlier.alias == record.alias:
            dropped = replace(earlier, decision="dropped", decided_by=record.decided_by,
                              decided_at_ms=now, passed=False,
                              reason=f"superseded by the candidate of pipeline run "
                                     f"{record.run_id} (version {record.version})")
            store.resolve_decision(earlier.decision_id, "shadowing", dropped)
    alias = shadow.trial_alias
    _set_alias(registry, record.model, alias, record.version, actor=str(record.decided_by),
               reason=f"{shadow.mode} trial of pipeline run {record.run_id}")
    ends = None if shadow.duration_ms is None else now + shadow.duration_ms
    trial = {"declared": shadow.spec(), "mode": shadow.mode, "alias": alias,
             "started_at_ms": now, "ends_at_ms": ends, "requests": shadow.requests}
    return replace(record, decision="shadowing", decided_by=None, decided_at_ms=None,
                   shadow=trial)


def progress(record: DecisionRecord, predictions: PredictionStore) -> int:
    """How many requests the candidate saw in its trial role so far (answered or
    failed: a candidate that fails every request still ends its trial)."""
    assert record.shadow is not None
    role = "shadow" if record.shadow["mode"] == "shadow" else "canary"
    start_us = int(record.shadow["started_at_ms"]) * 1000
    frame = predictions.read(record.model, version=record.version, role=role,  # type: ignore[arg-type]
                             start_us=start_us)
    failed = predictions.read_failures(record.model, version=record.version,
                                       start_us=start_us)
    failed = failed[failed["role"] == role] if len(failed) else failed
    return len({*frame.get("request_id", []), *failed.get("request_id", [])})


def _due(record: DecisionRecord, predictions: PredictionStore, now_ms: int) -> str | None:
    """Why the trial ends now (None: it goes on)."""
    trial = record.shadow or {}
    ends = trial.get("ends_at_ms")
    if ends is not None and now_ms >= int(ends):
        return f"its {trial['declared']['duration']} are over"
    wanted = trial.get("requests")
    if wanted is not None:
        answered = progress(record, predictions)
        if answered >= int(wanted):
            return f"the candidate answered {answered} requests (of {wanted} declared)"
    return None


def check(store: DecisionStore, registry: ModelRegistry, predictions: PredictionStore,
          *, now_ms: int | None = None) -> list[DecisionRecord]:
    """Conclude every trial that is due; the decisions concluded (promoted or dropped)."""
    when = _now_ms() if now_ms is None else now_ms
    done = []
    for record in store.decisions(decision="shadowing"):
        try:
            why = _due(record, predictions, when)
            if why is None:
                continue
            concluded = conclude(record, store, registry, predictions, ended=why,
                                 now_ms=when)
        except ModelyardError:
            _log.exception("could not conclude the trial of %s:%s", record.model,
                           record.version)
            continue
        if concluded is not None:
            done.append(concluded)
    return done


def _checks(shadow: Shadow, comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """The trial's own checks on the live comparison: each with its verdict."""
    cand, champ = comparison["candidate"], comparison["champion"]
    found = []
    enough = comparison["compared_requests"] >= shadow.min_requests
    found.append({"check": f"at least {shadow.min_requests} compared requests",
                  "passed": enough, "detail": f"{comparison['compared_requests']} compared"})
    limit = champ["error_rate"] + shadow.max_error_rate
    found.append({"check": f"error rate at most the champion's + {shadow.max_error_rate:g}",
                  "passed": cand["error_rate"] <= limit + 1e-12,
                  "detail": f"{cand['error_rate']:.4g} vs champion {champ['error_rate']:.4g}"})
    if shadow.max_latency_ratio is not None:
        mine, theirs = cand["latency_p95_ms"], champ["latency_p95_ms"]
        ok = mine is None or theirs is None or mine <= theirs * shadow.max_latency_ratio
        found.append({"check": f"p95 latency at most {shadow.max_latency_ratio:g} x the "
                               "champion's", "passed": ok,
                      "detail": f"{mine} ms vs champion {theirs} ms"})
    if shadow.min_agreement is not None:
        agreement = comparison["agreement"]
        found.append({"check": f"agreement at least {shadow.min_agreement:g}",
                      "passed": agreement is not None and agreement >= shadow.min_agreement,
                      "detail": f"{agreement}"})
    return found


def _live_gates(registry: ModelRegistry, record: DecisionRecord,
                comparison: dict[str, Any], shadow: Shadow) -> dict[str, Any] | None:
    """The model's metric and no-regression gates on the live metrics (data set
    ``live``); None when too few compared rows have labels yet."""
    from modelyard.backends.metadata.registry import EvaluationRecord
    from modelyard.registry import gates as g
    from modelyard.registry.promotion import DEFAULT_DATASET, declared_gates, run_gates

    if comparison["labelled_rows"] < shadow.min_labelled or comparison["task"] is None:
        return None
    for side in ("candidate", "champion"):
        measured = comparison[side]
        registry.store.save_evaluation(EvaluationRecord(
            record.model, int(measured["version"]), LIVE_DATASET,
            {"task": comparison["task"], "rows": measured.get("labelled_rows", 0),
             "metrics": measured["metrics"], "slices": {}, "plots": [],
             "skipped": measured.get("skipped", {}), "calibration": None,
             "fairness": {}, "trial": record.decision_id}, {}, _now_ms()))
    live = [replace(gate, data=LIVE_DATASET) for gate in declared_gates(registry, record.model)
            if isinstance(gate, (g.MetricGate, g.RegressionGate))
            and (gate.data or DEFAULT_DATASET) == DEFAULT_DATASET]
    candidate = registry.store.get_version(record.model, record.version)
    return run_gates(registry, candidate, record.champion, record.alias, live).to_dict()


def _measure(record: DecisionRecord, shadow: Shadow, registry: ModelRegistry,
             predictions: PredictionStore, now_ms: int) -> dict[str, Any]:
    from modelyard.pipelines.live_comparison import compare

    assert record.shadow is not None and record.champion is not None
    start_us = int(record.shadow["started_at_ms"]) * 1000
    end_us = now_ms * 1000 + 1
    frame = predictions.read(record.model, start_us=start_us, end_us=end_us)
    failures = predictions.read_failures(record.model, start_us=start_us, end_us=end_us)
    label = registry.store.get_version(record.model, record.version).spec.get("label")
    comparison = compare(frame, failures, mode=shadow.mode, candidate=record.version,
                         champion=record.champion, label=label,
                         rtol=shadow.agreement_rtol).to_dict()
    comparison["checks"] = _checks(shadow, comparison)
    comparison["gates"] = _live_gates(registry, record, comparison, shadow)
    return comparison


def conclude(record: DecisionRecord, store: DecisionStore, registry: ModelRegistry,
             predictions: PredictionStore, *, ended: str, now_ms: int | None = None
             ) -> DecisionRecord | None:
    """Compare, then promote or drop the candidate of a ``shadowing`` decision; None when
    another process concluded it first."""
    when = _now_ms() if now_ms is None else now_ms
    assert record.shadow is not None
    shadow = Shadow.from_spec(record.shadow["declared"])
    comparison = _measure(record, shadow, registry, predictions, when)
    failed = [c["check"] for c in comparison["checks"] if not c["passed"]]
    gates = comparison["gates"]
    if gates is not None:
        failed += [r["gate"] + " (live)" for r in gates.get("results", []) if not r["passed"]]
    holder = registry.store.aliases(record.model).get(record.alias)
    if holder != record.champion:
        failed.append(f"the champion changed during the trial ({record.alias} is now "
                      f"{holder}, was {record.champion})")
    trial = {**record.shadow, "ended_at_ms": when, "ended": ended, "comparison": comparison}
    actor = f"pipeline:{record.pipeline}"
    outcome = "dropped" if failed else "promoted"
    reason = (f"{shadow.mode} trial ended ({ended}); " + (
        "failed: " + "; ".join(failed) if failed else "passed every live check"))
    claimed = replace(record, decision=outcome, passed=not failed, decided_by=actor,
                      decided_at_ms=when, reason=reason, shadow=trial)
    if not store.resolve_decision(record.decision_id, "shadowing", claimed):
        return None
    done = claimed
    if not failed:
        try:
            promotion = registry.promote(record.model, record.version, record.alias,
                                         actor=actor, reason=f"policy shadow, pipeline run "
                                                             f"{record.run_id}: {reason}")
        except (GateFailedError, ConflictError, NotFoundError) as exc:
            done = replace(claimed, decision="dropped", passed=False,
                           reason=f"{reason}; the promotion was refused: {exc.message}")
        else:
            done = replace(claimed, decided_at_ms=promotion.event.at,
                           gate_report=promotion.report.to_dict())
        if done is not claimed:
            store.resolve_decision(record.decision_id, "promoted", done)
    _set_alias(registry, record.model, str(trial["alias"]), None, actor=actor,
               reason=f"{shadow.mode} trial of pipeline run {record.run_id} ended: "
                      f"{done.decision}", only_from=record.version)
    _log.info("%s trial of %s:%s: %s", shadow.mode, record.model, record.version,
              done.reason)
    return done
