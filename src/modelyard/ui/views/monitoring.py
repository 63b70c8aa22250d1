"""Monitoring: the monitored models with their latest check and the recent alerts; one
model's checks over time (drift per feature as a grid and as a chart, data quality,
performance as measured and as estimated before labels, alerts and their deliveries); and
each stored check's HTML report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.ui.charts import Series, line_chart
from modelyard.ui.pages import page, state_of

WINDOWS = 24  # the checks a model's page reads in full (the newest)


def overview(request: Request) -> Response:
    monitoring = state_of(request).yard.monitoring
    models = []
    for name in monitoring.monitored_models():
        history = monitoring.history(name, limit=1)
        models.append((name, history[-1] if history else None))
    return page(request, "monitoring.html", section="monitoring", models=models,
                alerts=monitoring.alerts(limit=50))


def _window_end(summary: dict[str, Any]) -> str:
    window = summary.get("window") or {}
    return str(window.get("end") or summary.get("checked_at") or "")


def _epoch(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return float("nan")


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else float("nan")


def model_monitoring(request: Request) -> Response:
    yard = state_of(request).yard
    name = request.path_params["name"]
    yard.models.get_model(name)  # NotFoundError for an unknown model
    monitoring = yard.monitoring
    history = monitoring.history(name, limit=WINDOWS)
    drift: dict[str, dict[str, dict[str, Any]]] = {}  # column -> result id -> its drift row
    quality: dict[str, dict[str, Any] | None] = {}  # result id -> its quality section
    for summary in history:
        result = monitoring.get_result(summary["result_id"])
        for row in (result.get("drift") or {}).get("columns", []):
            drift.setdefault(row["column"], {})[summary["result_id"]] = row
        quality[summary["result_id"]] = result.get("quality")
    latest = history[-1]["result_id"] if history else None
    features = sorted(drift, key=lambda c: (
        -float((drift[c].get(latest or "") or {}).get("statistic") or 0)
        / float((drift[c].get(latest or "") or {}).get("threshold") or 1), c))
    feature = request.query_params.get("feature") or (features[0] if features else None)
    if feature is not None and feature not in drift:
        raise InvalidInputError(f"no check of {name} measured drift of {feature!r} (it has: "
                                f"{', '.join(sorted(drift)) or 'none'})", field="feature")
    chart = share_chart = ""
    if feature is not None:
        rows = [(s, drift[feature].get(s["result_id"])) for s in history]
        xs = [_epoch(_window_end(s)) for s, r in rows if r and r.get("statistic") is not None]
        stats = [float(r["statistic"]) for _, r in rows if r and r.get("statistic") is not None]
        bounds = [float(r["threshold"]) if r.get("threshold") is not None else float("nan")
                  for _, r in rows if r and r.get("statistic") is not None]
        test = next((r.get("test") for _, r in rows if r), "statistic")
        chart = line_chart([Series(f"{feature}: {test}", xs, stats),
                            Series("threshold", xs, bounds)], x_label="window end (UTC)",
                           y_label=str(test), time_axis=True,
                           title=f"drift of {feature} per window")
    if history:
        share_chart = line_chart(
            [Series("share of drifted columns", [_epoch(_window_end(s)) for s in history],
                    [_number(s.get("drifted_share")) for s in history])],
            x_label="window end (UTC)", y_label="drifted share", time_axis=True,
            title="share of drifted columns per window")
    metric_names = sorted({k for s in history for k in (s.get("metrics") or {})})
    performance = performance_chart(history, request.query_params.get("metric") or None)
    return page(request, "monitoring_model.html", section="monitoring", name=name,
                quality=quality, quality_chart=quality_chart(history, quality),
                **performance,
                history=list(reversed(history)), windows=history, drift=drift,
                features=features, feature=feature, chart=chart, share_chart=share_chart,
                metric_names=metric_names, alerts=monitoring.alerts(name, limit=50),
                window_end=_window_end)


def performance_chart(history: list[dict[str, Any]], metric: str | None) -> dict[str, Any]:
    """One metric over the windows: as measured where labels arrived, and as estimated
    from the model's confidence (before they do); ``metric`` None: the first there is."""
    measured = sorted({k for s in history for k in (s.get("metrics") or {})})
    estimated = sorted({k for s in history for k in (s.get("estimated") or {})})
    choices = sorted(set(measured) | set(estimated))
    if metric is not None and metric not in choices:
        raise InvalidInputError(f"no check measured or estimated {metric!r} (there are: "
                                f"{', '.join(choices) or 'none'})", field="metric")
    chosen = metric or next(iter(measured or estimated), None)
    chart = ""
    if chosen is not None:
        xs = [_epoch(_window_end(s)) for s in history]
        chart = line_chart(
            [Series(f"{chosen} (measured)", xs,
                    [_number((s.get("metrics") or {}).get(chosen)) for s in history]),
             Series(f"{chosen} (estimated)", xs,
                    [_number((s.get("estimated") or {}).get(chosen)) for s in history])],
            x_label="window end (UTC)", y_label=chosen, time_axis=True,
            title=f"{chosen} per window")
    return {"metric_choices": choices, "metric": chosen, "performance_chart": chart,
            "estimated_names": estimated}


def quality_chart(history: list[dict[str, Any]],
                  quality: dict[str, dict[str, Any] | None]) -> str:
    """The worst column's missing share and out-of-range share per window."""
    def worst(summary: dict[str, Any], key: str) -> float:
        section = quality.get(summary["result_id"])
        if not section:
            return float("nan")
        values = [float(c[key]) for c in section.get("columns", [])
                  if isinstance(c.get(key), (int, float))]
        return max(values, default=0.0)

    if not any(quality.values()):
        return ""
    xs = [_epoch(_window_end(s)) for s in history]
    return line_chart([Series("missing share (worst column)", xs,
                              [worst(s, "missing_share") for s in history]),
                       Series("out-of-range share (worst column)", xs,
                              [worst(s, "out_of_range_share") for s in history])],
                      x_label="window end (UTC)", y_label="share of rows", time_axis=True,
                      title="data quality per window")


def report(request: Request) -> Response:
    """A stored check's self-contained HTML report, with the trends of the checks
    before it, as ``modelyard monitor report`` writes it."""
    from modelyard.monitoring.html import render_html

    monitoring = state_of(request).yard.monitoring
    name = request.path_params["name"]
    result = monitoring.get_result(request.path_params["result_id"])
    if result.get("model") != name:
        raise NotFoundError(f"model {name!r} has no stored check "
                            f"{request.path_params['result_id']!r}", model=name)
    history = [h for h in monitoring.history(name)
               if str(h.get("checked_at") or "") <= str(result.get("checked_at") or "")]
    return HTMLResponse(render_html(result, history), headers={
        "Content-Security-Policy": "default-src 'none'; img-src data:; "
                                   "style-src 'unsafe-inline'"})


def routes() -> list[BaseRoute]:
    return [Route("/monitoring", overview, name="monitoring"),
            Route("/monitoring/{name}", model_monitoring, name="model_monitoring"),
            Route("/monitoring/{name}/reports/{result_id}", report, name="report")]
