"""Pipelines: the list (version, triggers, schedule and its next time, last outcome) and
one pipeline's runs (steps, logs, duration, trigger, outcome, and the decision its
candidate received, linked to the model version). The run shown in full is in the address
(``?run=ID``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.ui.pages import page, state_of

MAX_RUNS = 200


def pipelines_list(request: Request) -> Response:
    service = state_of(request).yard.pipelines
    records = service.list()
    triggers: dict[str, list[Any]] = {}
    for info in service.triggers():
        triggers.setdefault(info.pipeline, []).append(info)
    last = {r.name: next(iter(service.runs(r.name, limit=1)), None) for r in records}
    return page(request, "pipelines.html", section="pipelines", records=records,
                triggers=triggers, last=last)


def _limit(text: str | None) -> int:
    if not text:
        return 50
    if not text.isdigit() or not 1 <= int(text) <= MAX_RUNS:
        raise InvalidInputError(f"limit must be a number of runs from 1 to {MAX_RUNS}, "
                                f"got {text!r}", field="limit")
    return int(text)


def pipeline_page(request: Request) -> Response:
    service = state_of(request).yard.pipelines
    name = request.path_params["name"]
    record = service.record(name)  # NotFoundError: the 404 page
    q = request.query_params
    status = q.get("status") or None
    runs = service.runs(name, status=status, limit=_limit(q.get("limit")))
    decisions = {d.run_id: d for d in service.decisions(record.spec.get("model"))}
    chosen = None
    if q.get("run"):
        chosen = service.get_run(q["run"])
        if chosen.pipeline != name:
            raise NotFoundError(f"run {q['run']!r} is a run of pipeline {chosen.pipeline!r}, "
                                f"not of {name!r}", run=q["run"])
    triggers = [t for t in service.triggers() if t.pipeline == name]
    return page(request, "pipeline.html", section="pipelines", record=record, runs=runs,
                decisions=decisions, chosen=chosen, triggers=triggers, outcome=status or "")


def routes() -> list[BaseRoute]:
    return [Route("/pipelines", pipelines_list, name="pipelines"),
            Route("/pipelines/{name}", pipeline_page, name="pipeline")]
