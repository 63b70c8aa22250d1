"""Applying pipelines: read them (objects or files), check them all, and store each one
versioned by the hash of its content, its declared schedule kept beside it.

Used by :meth:`PipelineService.plan` and :meth:`PipelineService.apply`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelyard.backends.metadata.pipelines import PipelineStore, ScheduleRecord
from modelyard.errors import InvalidDefinitionError, InvalidInputError, NotFoundError
from modelyard.pipelines.definitions import OnAlert, OnNewData, OnSuccess, Pipeline
from modelyard.pipelines.queueing import now_ms

if TYPE_CHECKING:
    from modelyard.monitoring.service import MonitoringService
    from modelyard.pipelines.context import PipelineServices

__all__ = ["Action", "PipelineChange", "Target", "apply", "gather", "plan", "validate"]

Action = Literal["create", "update", "unchanged"]
Target = Pipeline | str | os.PathLike[str]


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


def gather(targets: Sequence[Target] | Target | None, project_root: Path | None
           ) -> list[Pipeline]:
    """The pipelines named: objects, files, or the project's ``pipelines.py``."""
    from modelyard.pipelines.discovery import default_paths, load_pipelines

    if targets is None:
        paths = default_paths(project_root or Path.cwd())
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

def validate(pipelines: Sequence[Pipeline], store: PipelineStore, services: PipelineServices,
             monitoring: Callable[[], MonitoringService] | None) -> None:
    """Refuse, naming it, a trigger that names an unknown pipeline, source or rule, or an
    evaluation window reading an unknown labels source."""
    known = {p.name for p in pipelines} | {r.name for r in store.list_pipelines()}
    rules_of: dict[str, set[str]] = {}
    for p in pipelines:
        labels = None if p.evaluation is None else p.evaluation.labels
        if labels is not None:
            try:
                services.features().source(labels)
            except NotFoundError:
                raise InvalidDefinitionError(
                    f"pipeline {p.name!r}: its evaluation window reads labels from source "
                    f"{labels!r}, which is not applied to the feature store",
                    field="evaluation.labels", pipeline=p.name) from None
        for trigger in p.triggers:
            if isinstance(trigger, OnSuccess) and trigger.pipeline not in known:
                raise InvalidDefinitionError(
                    f"pipeline {p.name!r}: on_success names pipeline "
                    f"{trigger.pipeline!r}, which is neither stored nor in this apply",
                    field="triggers", pipeline=p.name)
            if isinstance(trigger, OnNewData):
                try:
                    services.features().source(trigger.source)
                except NotFoundError:
                    raise InvalidDefinitionError(
                        f"pipeline {p.name!r}: on_new_data names source "
                        f"{trigger.source!r}, which is not applied to the feature store",
                        field="triggers", pipeline=p.name) from None
            if isinstance(trigger, OnAlert) and trigger.rule is not None:
                model = str(trigger.model or p.model)  # one of them is set
                if model not in rules_of:
                    rules_of[model] = _rule_names(monitoring, model)
                if trigger.rule not in rules_of[model]:
                    listed = ", ".join(sorted(rules_of[model])) or "none"
                    raise InvalidDefinitionError(
                        f"pipeline {p.name!r}: on_alert names rule {trigger.rule!r}, "
                        f"which is not a monitoring rule of model {model!r} (its rules: "
                        f"{listed})", field="triggers", pipeline=p.name)

def _rule_names(monitoring: Callable[[], MonitoringService] | None, model: str
                ) -> set[str]:
    if monitoring is None:
        return set()
    rules, _ = monitoring().rules(model)
    return {r.label for r in rules} | {r.condition for r in rules} | {
        r.text() for r in rules}


def plan(pipelines: Sequence[Pipeline], store: PipelineStore) -> list[PipelineChange]:
    """What :func:`apply` would store (nothing is written); the pipelines are checked."""
    stored = {s.pipeline: s for s in store.schedules()}
    changes = []
    for p in pipelines:
        digest = p.content_hash()
        schedule = _schedule_change(p, stored.get(p.name))
        try:
            latest = store.get_pipeline(p.name)
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

def apply(pipelines: Sequence[Pipeline], store: PipelineStore) -> list[PipelineChange]:
    """Store the (checked) pipelines; a changed one becomes a new version."""
    stored = {s.pipeline: s for s in store.schedules()}
    applied = []
    for p in pipelines:
        spec = p.spec() | {"path": p.path}
        record, created = store.put_pipeline(p.name, p.content_hash(), spec)
        previous = None if record.version == 1 and created else (
            record.version - 1 if created else record.version)
        action: Action = ("create" if record.version == 1 else "update") if created \
            else "unchanged"
        schedule = _schedule_change(p, stored.get(p.name))
        applied.append(PipelineChange(p.name, action, record.version, previous,
                                      record.content_hash, schedule))
        if schedule is not None:
            declared = {"cron": p.schedule, "timezone": p.timezone}
            store.set_schedule(ScheduleRecord(p.name, p.schedule, p.timezone,
                                                   declared, now_ms(), now_ms()))
    return applied

