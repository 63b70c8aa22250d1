"""The decision record of a pipeline run: what became of the candidate model version it
registered (champion against challenger, the gates, the policy, who approved and when).

One record per pipeline run. Its ``decision`` moves ``pending -> approved | rejected |
refused``, or under the ``shadow`` policy ``shadowing -> promoted | dropped`` (the trial and
its live comparison kept in ``shadow``); ``promoted`` and ``refused`` are final when
written, except that a ``promoted`` or ``approved`` version on probation becomes
``rolled_back`` (decided by ``probation``) when a critical alert fires on it
(:mod:`modelyard.pipelines.probation`). The implementation is
:mod:`modelyard.backends.metadata.sql.decision_store`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

__all__ = ["DECISIONS", "DecisionRecord", "DecisionStore"]

DECISIONS = ("promoted", "pending", "approved", "rejected", "refused", "rolled_back",
             "shadowing", "dropped")


@dataclass(frozen=True)
class DecisionRecord:
    decision_id: str
    run_id: str
    pipeline: str
    pipeline_version: int
    model: str
    version: int  # the candidate
    alias: str
    champion: int | None  # the alias's holder the candidate was compared with
    policy: str  # auto | approval | shadow
    decision: str  # one of DECISIONS
    trigger: str
    trigger_detail: dict[str, Any]
    data: dict[str, Any]  # training and evaluation windows, table commits
    candidate_metrics: dict[str, Any]
    champion_metrics: dict[str, Any] | None
    gate_report: dict[str, Any]
    passed: bool
    decided_by: str | None
    decided_at_ms: int | None
    reason: str
    created_at_ms: int
    # the shadow policy's trial: how it was declared, when it started and ends, and (once
    # concluded) the live comparison of candidate and champion on the same requests
    shadow: dict[str, Any] | None = None


class DecisionStore(ABC):
    @abstractmethod
    def save_decision(self, record: DecisionRecord) -> None:
        """Store a new decision (one per pipeline run)."""

    @abstractmethod
    def resolve_decision(self, decision_id: str, expected: str, record: DecisionRecord
                         ) -> bool:
        """Replace the decision's outcome fields with ``record``'s if its decision is still
        ``expected``; False when another writer resolved it first."""

    @abstractmethod
    def decisions(self, model: str | None = None, version: int | None = None, *,
                  decision: str | None = None) -> list[DecisionRecord]:
        """Decisions, newest first."""

    @abstractmethod
    def decision_of_run(self, run_id: str) -> DecisionRecord | None: ...
