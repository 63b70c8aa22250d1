"""Models: the list, one page per model (versions, aliases and their history, gate reports,
lineage, retraining decisions), and the actions a person takes on them: promote (the gate
report shown first), roll back, approve or reject a pending candidate.

Every action is a POST form: the app's ``authorize`` hook is asked first, the service does
the work, and the browser is sent back to the model's page (303) with what happened in the
address; a refusal (failed gates, a conflict, a missing permission) is shown in place on
the page the form was on, with its status.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from modelyard.backends.metadata.registry import GateReportRecord, VersionRecord
from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError
from modelyard.ui.auth import Action
from modelyard.ui.pages import UiState, form, href, page, state_of
from modelyard.ui.views.model_extras import evaluation_plot, extras

MAX_REASON = 500


def models_list(request: Request) -> Response:
    registry = state_of(request).yard.models
    models = [(m, registry.aliases(m.name), registry.versions(m.name))
              for m in registry.list_models()]
    return page(request, "models.html", section="models", models=models)


def _version_param(text: str | None, field: str = "version") -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit() or int(text) < 1:
        raise InvalidInputError(f"{field} must be a version number (1, 2, ...), got {text!r}",
                                field=field)
    return int(text)


def _model_context(request: Request, state: UiState, name: str, version: int | None
                   ) -> dict[str, Any]:
    registry = state.yard.models
    model = registry.get_model(name)
    versions = registry.versions(name)
    aliases = registry.aliases(name)
    held: dict[int, list[str]] = {}
    for alias, number in sorted(aliases.items()):
        held.setdefault(number, []).append(alias)
    focus: VersionRecord | None = None
    if versions:
        wanted = version or aliases.get("production") or versions[-1].version
        focus = next((v for v in versions if v.version == wanted), None)
        if focus is None:
            raise NotFoundError(f"model {name!r} has no version {wanted}", model=name,
                                version=wanted)
    reports = registry.store.gate_reports(name, focus.version) if focus else []
    evaluations = registry.store.evaluations(name, focus.version) if focus else []
    lineage = registry.lineage(name, focus.version) if focus else None
    latest: dict[int, GateReportRecord | None] = {}
    for v in versions:
        stored = registry.store.gate_reports(name, v.version)
        latest[v.version] = stored[-1] if stored else None
    decisions = state.yard.pipelines.decisions(name)
    return {"model": model, "versions": versions, "aliases": aliases, "held": held,
            "history": list(reversed(registry.history(name))), "focus": focus,
            "reports": list(reversed(reports)), "evaluations": evaluations,
            "lineage": lineage, "latest_reports": latest, "decisions": decisions,
            "pending": [d for d in decisions if d.decision == "pending"],
            **extras(request, state, name, lineage)}


def model_page(request: Request) -> Response:
    state = state_of(request)
    name = request.path_params["name"]
    version = _version_param(request.query_params.get("version"))
    return page(request, "model.html", section="models", error=None,
                notice=request.query_params.get("notice", ""),
                **_model_context(request, state, name, version))


def promote_preview(request: Request) -> Response:
    """The gate report a promotion would meet, shown before the person confirms."""
    state = state_of(request)
    name = request.path_params["name"]
    version = _version_param(request.query_params.get("version"))
    if version is None:
        raise InvalidInputError("choose the version to promote (version=N)", field="version")
    alias = request.query_params.get("alias") or "production"
    preview = state.yard.models.preview_promotion(name, version, alias)
    return page(request, "promote.html", section="models", preview=preview, error=None,
                reason=request.query_params.get("reason", ""), stored_report=None)


async def promote(request: Request) -> Response:
    state = state_of(request)
    name = request.path_params["name"]
    fields = await form(request)
    version = _version_param(fields.get("version"))
    alias = fields.get("alias") or "production"
    reason = fields.get("reason", "")[:MAX_REASON]
    if version is None:
        raise InvalidInputError("choose the version to promote", field="version")
    try:
        state.allow(request, "promote")
        done = await run_in_threadpool(state.yard.models.promote, name, version, alias,
                                       reason=reason or "promoted from the UI",
                                       actor=state.identify(request))
    except ModelyardError as exc:  # refused: the gates, a conflict, the hook
        if isinstance(exc, NotFoundError):
            raise  # no such model or version: the 404 page
        preview = await run_in_threadpool(state.yard.models.preview_promotion, name,
                                          version, alias)
        return page(request, "promote.html", section="models", status=exc.http_status,
                    preview=preview, error=exc, reason=reason,
                    stored_report=exc.details.get("report_id"))
    previous = "nothing" if done.previous is None else f"version {done.previous}"
    return _back(request, name, f"Version {version} now holds {alias} (it was on {previous}); "
                                f"all {len(done.report.results)} gate(s) passed.")


async def rollback(request: Request) -> Response:
    state = state_of(request)
    name = request.path_params["name"]
    fields = await form(request)
    alias = fields.get("alias") or "production"
    reason = fields.get("reason", "")[:MAX_REASON]

    def act() -> Any:
        return state.yard.models.rollback(name, alias, reason=reason or "rolled back from "
                                          "the UI", actor=state.identify(request))

    return await _act(request, state, "rollback", name, act,
                      lambda e: f"{alias} rolled back from version {e.from_version} to "
                                f"version {e.to_version}.")


async def decide(request: Request) -> Response:
    state = state_of(request)
    name = request.path_params["name"]
    version = _version_param(request.path_params["version"])
    assert version is not None
    verb = request.path_params["verb"]
    if verb not in ("approve", "reject"):
        raise NotFoundError(f"a decision is approved or rejected, not {verb!r}", verb=verb)
    action: Action = "approve" if verb == "approve" else "reject"
    fields = await form(request)
    reason = fields.get("reason", "")[:MAX_REASON]
    method = (state.yard.pipelines.approve if action == "approve"
              else state.yard.pipelines.reject)

    def act() -> Any:
        return method(name, version, reason=reason, actor=state.identify(request))

    return await _act(request, state, action, name, act,
                      lambda d: f"Version {version}: {d.decision}.")


async def _act(request: Request, state: UiState, action: Action, name: str, act: Any,
               said: Any) -> Response:
    """Ask the hook, do ``act`` in a thread, go back to the model's page; an error is
    shown in place on the model's page with its status."""
    try:
        state.allow(request, action)
        done = await run_in_threadpool(act)
    except ModelyardError as exc:
        context = await run_in_threadpool(_model_context, request, state, name, None)
        return page(request, "model.html", section="models", status=exc.http_status,
                    error=exc, notice="", **context)
    return _back(request, name, said(done))


def _back(request: Request, name: str, notice: str) -> Response:
    return RedirectResponse(href(request, f"/models/{name}", notice=notice), status_code=303)


def routes() -> list[BaseRoute]:
    return [Route("/models", models_list, name="models"),
            Route("/models/{name}", model_page, name="model"),
            Route("/models/{name}/versions/{version}/plots/{dataset}/{file}",
                  evaluation_plot),
            Route("/models/{name}/promote", promote_preview, methods=["GET"]),
            Route("/models/{name}/promote", promote, methods=["POST"]),
            Route("/models/{name}/rollback", rollback, methods=["POST"]),
            Route("/models/{name}/decisions/{version}/{verb:str}", decide,
                  methods=["POST"])]
