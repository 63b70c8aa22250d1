"""``modelyard models why``: the chain from a model version back to what caused it.

Version -> pipeline run -> trigger (alert and values, schedule, new data, upstream, by
hand) -> data -> champion and metrics -> gates -> the shadow trial and its live comparison
(policy ``shadow``) -> decision -> who approved, then each move of an alias to the version
and whether a pipeline's policy, an approval or a person made it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelyard.errors import NotFoundError

if TYPE_CHECKING:
    from modelyard.backends.metadata.decisions import DecisionRecord, DecisionStore
    from modelyard.backends.metadata.pipelines import PipelineRunRecord, PipelineStore
    from modelyard.backends.metadata.registry import AliasEvent, VersionRecord
    from modelyard.registry.service import ModelRegistry

__all__ = ["Why", "why"]


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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
            if d.shadow is not None:
                out += _trial(d.shadow)
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


def _trial(trial: dict[str, Any]) -> list[str]:
    """The shadow policy's trial: where and how long, then the live comparison."""
    ends = [f"until {_when(trial['ends_at_ms'])}"] if trial.get("ends_at_ms") else []
    if trial.get("requests"):
        ends.append(f"{trial['requests']} requests")
    share = trial["declared"].get("canary_percent")
    out = [f"{trial['mode']} trial: on alias {trial['alias']}"
           + (f" ({share:g}% of requests)" if share else "")
           + f" from {_when(trial['started_at_ms'])} " + " or ".join(ends)
           + (f"; ended: {trial['ended']}" if trial.get("ended") else "")]
    found = trial.get("comparison")
    if found is None:
        return out
    cand, champ = found["candidate"], found["champion"]
    same = "on the same requests" if found["mode"] == "shadow" else "each on its own requests"
    out.append(f"live comparison ({same}): {found['compared_requests']} requests, "
               f"{found['compared_rows']} rows, {found['labelled_rows']} labelled")
    if found.get("agreement") is not None:
        diff = found.get("max_abs_diff")
        out.append(f"  agreement: {found['agreement']:.4g}"
                   + ("" if diff is None else f" (largest difference {diff:.4g})"))
    for who, side in (("candidate", cand), ("champion", champ)):
        latency = side.get("latency_p95_ms")
        out.append(f"  {who} v{side['version']} ({side['role']}): metrics "
                   f"{_numbers(side.get('metrics') or {})}; error rate "
                   f"{side['error_rate']:.4g} ({side['failures']} failed of "
                   f"{side['requests'] + side['failures']}); p95 latency "
                   + ("-" if latency is None else f"{latency:.4g} ms"))
    checks = list(found.get("checks", []))
    gates = found.get("gates")
    if gates is None:
        out.append("  live gates: not run (too few labelled rows)")
    else:
        checks += [{"check": f"{r['gate']} (live)", "passed": r.get("passed"),
                    "detail": r.get("detail", "")} for r in gates.get("results", [])]
    for c in checks:
        out.append(f"  - {c['check']}: {'passed' if c['passed'] else 'FAILED'}"
                   + ("" if c["passed"] else f" ({c.get('detail', '')})"))
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
