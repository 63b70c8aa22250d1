"""The overview: experiments with their run counts, models with their aliases, what is
monitored and the feature groups, each linking to its section."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelyard.ui.pages import page, state_of


def overview(request: Request) -> Response:
    yard = state_of(request).yard
    counts = yard.tracking.count_runs()
    experiments = [(e, counts.get(e.experiment_id, 0)) for e in yard.list_experiments()]
    models = [(m, yard.models.aliases(m.name), len(yard.models.versions(m.name)))
              for m in yard.models.list_models()]
    groups = [d for d in yard.features.list_definitions() if d.kind == "feature_group"]
    return page(request, "home.html", experiments=experiments, models=models,
                monitored=yard.monitoring.monitored_models(),
                alerts=yard.monitoring.alerts(limit=5), groups=groups)


def routes() -> list[BaseRoute]:
    return [Route("/", overview, name="overview")]
