"""The feature store: entities, sources with their commits, feature groups with their
versions and features, online freshness, and a training set's record."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelyard.errors import InvalidInputError, ModelyardError
from modelyard.ui.pages import page, state_of


def features_page(request: Request) -> Response:
    features = state_of(request).yard.features
    q = request.query_params
    definitions = features.list_definitions()
    by_kind: dict[str, list[Any]] = {}
    for d in definitions:
        by_kind.setdefault(d.kind, []).append(d)
    commits = {d.name: features.commits(d.name) for d in by_kind.get("source", [])}
    try:
        freshness = {(f.group, f.version): f for f in features.online.freshness()}
        online_error = ""
    except ModelyardError as exc:  # the online store is not reachable: say so, show the rest
        freshness, online_error = {}, exc.message
    group = q.get("group") or None
    versions: list[Any] = []
    chosen = None
    if group is not None:
        versions = features.history("feature_group", group)
        if not versions:
            versions = features.history("request_group", group)
        if not versions:
            raise InvalidInputError(f"no feature group named {group!r}", field="group")
        wanted = q.get("version")
        chosen = versions[-1]
        if wanted:
            chosen = next((v for v in versions if str(v.version) == wanted), None)
            if chosen is None:
                raise InvalidInputError(f"feature group {group!r} has no version {wanted!r}",
                                        field="version")
    training_set = None
    if q.get("training_set"):
        training_set = features.get_training_set(q["training_set"])
    return page(request, "features.html", section="features", by_kind=by_kind,
                commits=commits, freshness=freshness, online_error=online_error,
                group=group, versions=versions, chosen=chosen, training_set=training_set)


def routes() -> list[BaseRoute]:
    return [Route("/features", features_page, name="features")]
