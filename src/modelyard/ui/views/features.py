"""The feature store: entities, sources with their commits, feature groups with their
versions and features (expectations and PII tags), the diff between two versions, the
profile of a group's source with histograms, online freshness, and a training set's
record."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelyard.errors import InvalidInputError, ModelyardError
from modelyard.features.profiles import Profile
from modelyard.ui.charts import histogram_chart
from modelyard.ui.definition_diff import diff_specs
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
    detail = _group_detail(features, chosen, versions, q.get("against"), q.get("commit"))
    training_set = None
    if q.get("training_set"):
        training_set = features.get_training_set(q["training_set"])
    return page(request, "features.html", section="features", by_kind=by_kind,
                commits=commits, freshness=freshness, online_error=online_error,
                group=group, versions=versions, chosen=chosen, training_set=training_set,
                **detail)


def _group_detail(features: Any, chosen: Any, versions: list[Any], against: str | None,
                  commit: str | None) -> dict[str, Any]:
    """The diff of the chosen version against another (``against=N``, default: the one
    before it), and the profile of its source's newest commit (or ``commit=ID``) with a
    histogram per numeric column."""
    if chosen is None:
        return {"diff": None, "base": None, "profile": None, "histograms": {},
                "profile_commit": None}
    base = None
    if against:
        base = next((v for v in versions if str(v.version) == against), None)
        if base is None:
            raise InvalidInputError(f"feature group {chosen.name!r} has no version "
                                    f"{against!r} to compare with", field="against")
    else:
        base = next((v for v in reversed(versions) if v.version < chosen.version), None)
    diff = diff_specs(base.spec, chosen.spec) if base is not None else None
    source = chosen.spec.get("source")
    name = source.get("name") if isinstance(source, dict) else None
    found = [c for c in (features.commits(name) if name else [])
             if c.operation == "ingest"]
    profile = picked = None
    histograms: dict[str, str] = {}
    if found:
        picked = next((c for c in found if c.commit_id == commit), None) if commit \
            else found[-1]
        if picked is None:
            raise InvalidInputError(f"source {name!r} has no commit {commit!r}",
                                    field="commit")
        profile = Profile.from_dict(features.commit_profile(name, picked.commit_id))
        for column, summary in profile.columns.items():
            if summary.histogram is not None:
                histograms[column] = histogram_chart(
                    summary.histogram.edges, summary.histogram.counts,
                    title=f"{column}: values at commit {picked.commit_id[:12]}")
    return {"diff": diff, "base": base, "profile": profile, "histograms": histograms,
            "profile_commit": picked}


def routes() -> list[BaseRoute]:
    return [Route("/features", features_page, name="features")]
