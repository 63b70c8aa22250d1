"""Probation: a version a pipeline promoted is watched for a while, and rolled back on a
critical alert.

A pipeline declared with ``probation="7d"`` (and a policy) keeps each version its policy
promoted, or an approver promoted, on probation for that long after the promotion. A
monitoring alert of severity ``critical`` fired on that version within the window, while the
version still holds the pipeline's alias, moves the alias back to the version that held it
before (:meth:`ModelRegistry.rollback`, actor ``probation``), and the run's decision record
becomes ``rolled_back``, decided by ``probation``, its reason naming the alert's rule and
value. Warnings, alerts on other versions, alerts after the window and versions promoted by
hand are left alone. Called from :meth:`PipelineService.on_alerts`, the hook monitoring
hands its fired alerts to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from modelyard.errors import NotFoundError
from modelyard.pipelines.declarations import duration_ms

if TYPE_CHECKING:
    from modelyard.backends.metadata.decisions import DecisionRecord, DecisionStore
    from modelyard.backends.metadata.monitoring import AlertRecord
    from modelyard.backends.metadata.pipelines import PipelineStore
    from modelyard.registry.service import ModelRegistry

__all__ = ["ACTOR", "on_alerts"]

ACTOR = "probation"
_WATCHED = ("promoted", "approved")
_log = logging.getLogger(__name__)


def _probation(runs: PipelineStore, record: DecisionRecord) -> str | None:
    """The probation the pipeline version that made the decision declared, if any."""
    try:
        spec = runs.get_pipeline(record.pipeline, record.pipeline_version).spec
    except NotFoundError:
        return None
    found = spec.get("probation")
    return None if found is None else str(found)


def _on_probation(alert: AlertRecord, record: DecisionRecord, runs: PipelineStore,
                  registry: ModelRegistry) -> str | None:
    """The probation ``record``'s version is on when ``alert`` fired (None: not on one,
    or no longer holding the alias)."""
    if record.decision not in _WATCHED or record.decided_at_ms is None:
        return None
    probation = _probation(runs, record)
    if probation is None:
        return None
    start = record.decided_at_ms
    if not start <= alert.fired_at_ms <= start + duration_ms(probation, "probation"):
        return None
    if registry.store.aliases(record.model).get(record.alias) != record.version:
        return None  # moved on since: nothing of this version's to roll back
    return probation


def _roll_back(alert: AlertRecord, record: DecisionRecord, probation: str,
               store: DecisionStore, registry: ModelRegistry) -> DecisionRecord | None:
    value = "" if alert.value is None else f" = {alert.value:.6g}"
    cause = (f"critical alert {alert.rule!r}{value} on version {record.version} "
             f"(alert {alert.alert_id}) within its probation of {probation} after it was "
             f"{record.decision} by {record.decided_by}")
    claimed = replace(record, decision="rolled_back", decided_by=ACTOR, reason=cause)
    if not store.resolve_decision(record.decision_id, record.decision, claimed):
        return None  # another alert rolled it back first
    try:
        event = registry.rollback(record.model, record.alias, actor=ACTOR, reason=cause)
    except NotFoundError as exc:  # no earlier holder: keep the version, say so
        _log.warning("probation of %s:%s: %s", record.model, record.version, exc)
        store.resolve_decision(record.decision_id, "rolled_back", record)
        return None
    done = replace(claimed, decided_at_ms=event.at,
                   reason=f"{cause}; alias {record.alias} rolled back to version "
                          f"{event.to_version}")
    store.resolve_decision(record.decision_id, "rolled_back", done)
    _log.warning("rolled %s@%s back from version %s to %s: %s", record.model, record.alias,
                 record.version, event.to_version, cause)
    return done


def on_alerts(alerts: Sequence[AlertRecord], store: DecisionStore, runs: PipelineStore,
              registry: ModelRegistry) -> list[DecisionRecord]:
    """Roll back the versions on probation that a critical alert among ``alerts`` fired
    on; the decisions now ``rolled_back``."""
    rolled = []
    for alert in alerts:
        if alert.severity != "critical" or alert.version is None:
            continue
        for record in store.decisions(alert.model, alert.version):
            probation = _on_probation(alert, record, runs, registry)
            if probation is None:
                continue
            done = _roll_back(alert, record, probation, store, registry)
            if done is not None:
                rolled.append(done)
    return rolled
