"""Experiments and runs: the runs table (paged, sorted and filtered by the database), one
run's page, an artifact's bytes, and runs compared side by side."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelyard.backends.metadata.base import MetricPoint, RunRecord
from modelyard.errors import (
    InvalidFilterError,
    InvalidInputError,
    ModelyardError,
    NotFoundError,
)
from modelyard.tracking.filters import parse_order_by
from modelyard.ui.charts import Series, line_chart
from modelyard.ui.pages import page, state_of
from modelyard.ui.parallel import Line, parallel_coordinates
from modelyard.ui.runs_table import Column, default_columns, order_text, parse_columns

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_COMPARED = 20
PREVIEW_BYTES = 200_000
TEXT_SUFFIXES = {".txt", ".json", ".md", ".csv", ".tsv", ".yaml", ".yml", ".log", ".py",
                 ".toml", ".cfg", ".ini", ".sql", ".html", ".xml", ".svg"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"}
ENV_PREFIX = "modelyard."
_ATTRIBUTE_ORDERS = ("name", "status", "start_time", "end_time")


def _whole(text: str | None, name: str, default: int, *, minimum: int = 1) -> int:
    if text is None or text == "":
        return default
    if not re.fullmatch(r"\d{1,9}", text) or int(text) < minimum:
        raise InvalidInputError(f"{name} must be a whole number >= {minimum}, got {text!r}",
                                field=name)
    return int(text)


def runs_list(request: Request) -> Response:
    yard = state_of(request).yard
    q = request.query_params
    experiment = q.get("experiment") or None
    filter_text = (q.get("filter") or "").strip()
    order = (q.get("order") or "").strip()
    per = _whole(q.get("per"), "per", DEFAULT_PAGE_SIZE)
    if per > MAX_PAGE_SIZE:
        raise InvalidInputError(f"per must be at most {MAX_PAGE_SIZE}, got {per}", field="per")
    number = _whole(q.get("page"), "page", 1)
    chosen = parse_columns(q.getlist("col"))
    experiments = yard.list_experiments()
    runs: list[RunRecord] = []
    total = 0
    error: ModelyardError | None = None
    try:
        runs, total = yard.tracking.page_runs(experiment, filter_text or None,
                                              order or None, offset=(number - 1) * per,
                                              limit=per)
    except (InvalidInputError, NotFoundError) as exc:  # shown in place, above the table
        error = exc
    columns = chosen or default_columns(runs)
    wanted = sorted({c.key for c in columns if c.kind == "metric" and c.stat != "last"})
    ranges = yard.tracking.metric_ranges([r.info.run_id for r in runs], wanted) if (
        wanted and runs) else {}
    keys = yard.tracking.run_keys(None if error else experiment)
    names = {e.experiment_id: e.name for e in experiments}
    sorted_by = _sorted_by(order)
    rows = [(r, [c.cell(r, ranges) for c in columns]) for r in runs]
    pages = max((total + per - 1) // per, 1)
    return page(request, "runs.html", section="runs", status=error.http_status if error else 200,
                experiments=experiments, experiment=experiment, filter_text=filter_text,
                order=order, error=error, rows=rows, columns=columns, chosen=chosen,
                keys=keys, names=names, total=total, number=number, per=per, pages=pages,
                page_sizes=PAGE_SIZES, sorted_by=sorted_by, order_text=order_text,
                attribute_orders=_ATTRIBUTE_ORDERS, specs={c.spec for c in columns})


def _sorted_by(order: str) -> tuple[str, bool] | None:
    """The column spec (or attribute) the page is sorted by, and whether descending."""
    if not order:
        return None
    try:
        [first, *_] = parse_order_by(order)
    except (InvalidFilterError, ValueError):
        return None
    if first.entity == "attribute":
        return first.key, first.descending
    prefix = {"metric": "metrics", "param": "params", "tag": "tags"}[first.entity]
    return f"{prefix}.{first.key}", first.descending


def run_page(request: Request) -> Response:
    yard = state_of(request).yard
    details = yard.tracking.describe_run(request.path_params["run_id"])
    record = details.record
    q = request.query_params
    keys = sorted(record.metrics)
    ranges = yard.tracking.metric_ranges([record.info.run_id], keys)
    metric = q.get("metric") or (keys[0] if keys else None)
    if metric is not None and metric not in record.metrics:
        raise InvalidInputError(f"run {record.info.name} logged no metric {metric!r} (it has: "
                                f"{', '.join(keys) or 'none'})", field="metric")
    axis = _axis(q.get("axis"))
    zoom = (_float(q.get("from"), "from"), _float(q.get("to"), "to"))
    chart = ""
    if metric is not None:
        points = yard.tracking.metric_points(record.info.run_id, metric)
        chart = line_chart([_series(metric, points, axis)], x_label=_axis_label(axis),
                           y_label=metric, time_axis=axis == "time", x_range=zoom,
                           title=f"{metric} by {axis}")
    artifact = q.get("artifact")
    preview = _preview(yard, record, artifact, details.artifacts) if artifact else None
    env = {k: v for k, v in sorted(record.tags.items()) if k.startswith(ENV_PREFIX)}
    tags = {k: v for k, v in sorted(record.tags.items()) if not k.startswith(ENV_PREFIX)}
    versions = _versions_of(yard, record)
    return page(request, "run.html", section="runs", details=details, run=record,
                metric_keys=keys, ranges=ranges, metric=metric, axis=axis, zoom=zoom,
                chart=chart, artifact=artifact, preview=preview, env=env, tags=tags,
                versions=versions, text_suffixes=TEXT_SUFFIXES, image_suffixes=IMAGE_SUFFIXES)


def _versions_of(yard: Any, record: RunRecord) -> list[tuple[str, int]]:
    """The model versions registered from this run (its ``modelyard.model`` tag)."""
    tag = record.tags.get("modelyard.model", "")
    name, _, version = tag.rpartition(":")
    return [(name, int(version))] if name and version.isdigit() else []


def _axis(text: str | None) -> str:
    if text in (None, "", "step"):
        return "step"
    if text in ("time", "relative"):
        return text
    raise InvalidInputError(f"axis must be step, time or relative, got {text!r}", field="axis")


def _axis_label(axis: str) -> str:
    return {"step": "step", "time": "time (UTC)", "relative": "seconds since the first point"
            }[axis]


def _float(text: str | None, name: str) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidInputError(f"{name} must be a number, got {text!r}", field=name) from None


def _series(label: str, points: Sequence[MetricPoint], axis: str) -> Series:
    if axis == "step":
        xs = [float(p.step) for p in points]
    else:
        first = points[0].timestamp if points else 0
        xs = [p.timestamp / 1000 if axis == "time" else (p.timestamp - first) / 1000
              for p in points]
    return Series(label, xs, [p.value for p in points])


def _preview(yard: Any, record: RunRecord, name: str,
             entries: Sequence[Any]) -> dict[str, Any]:
    entry = next((e for e in entries if e.path == name), None)
    if entry is None:
        raise InvalidInputError(f"run {record.info.name} has no artifact file {name!r}",
                                field="artifact")
    suffix = "." + name.rpartition(".")[2].lower() if "." in name else ""
    if suffix in IMAGE_SUFFIXES:
        return {"kind": "image", "entry": entry}
    if suffix in TEXT_SUFFIXES or suffix == "" or entry.size <= 4096:
        data = yard.tracking.read_artifact(record.info.run_id, name)[:PREVIEW_BYTES]
        if b"\0" in data[:4096]:
            return {"kind": "binary", "entry": entry}
        return {"kind": "text", "entry": entry, "text": data.decode("utf-8", "replace"),
                "cut": entry.size > PREVIEW_BYTES}
    return {"kind": "binary", "entry": entry}


def artifact_bytes(request: Request) -> Response:
    """One artifact file's bytes (checked against its sha256 on the way out). Served so it
    can never act as a page of this site: HTML as text, everything sandboxed."""
    yard = state_of(request).yard
    run_id = yard.tracking.resolve_run_id(request.path_params["run_id"])
    name = request.path_params["path"]
    data = yard.tracking.read_artifact(run_id, name)
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if kind in ("text/html", "application/xhtml+xml", "application/javascript",
                "text/javascript"):
        kind = "text/plain"
    if kind.startswith("text/") or kind == "application/json":
        kind += "; charset=utf-8"
    return Response(data, media_type=kind, headers={
        "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'inline; filename="{name.rpartition("/")[2]}"'})


def compare(request: Request) -> Response:
    yard = state_of(request).yard
    q = request.query_params
    refs = [r for value in q.getlist("run") for r in value.split(",") if r.strip()]
    if len(refs) < 2:
        raise InvalidInputError("choose at least two runs to compare (tick them in the runs "
                                "table, or add run=ID to the address twice)", field="run")
    if len(refs) > MAX_COMPARED:
        raise InvalidInputError(f"compare at most {MAX_COMPARED} runs at once", field="run")
    ids = list(dict.fromkeys(yard.tracking.resolve_run_id(r) for r in refs))
    comparison = yard.tracking.compare_runs(ids)
    runs = comparison.runs
    differing = list(comparison.params.index)
    same = sorted({k for r in runs for k in r.params} - set(differing))
    metric_keys = list(comparison.metrics.index)
    common = [k for k in metric_keys if all(k in r.metrics for r in runs)]
    metric = q.get("metric") or (common[0] if common else metric_keys[0] if metric_keys
                                 else None)
    if metric is not None and metric not in metric_keys:
        raise InvalidInputError(f"none of these runs logged the metric {metric!r}",
                                field="metric")
    axis = _axis(q.get("axis"))
    chart = ""
    if metric is not None:
        series = [_series(f"{r.info.name} ({r.info.run_id[:8]})",
                          yard.tracking.metric_points(r.info.run_id, metric), axis)
                  for r in runs if metric in r.metrics]
        chart = line_chart(series, x_label=_axis_label(axis), y_label=metric,
                           time_axis=axis == "time", title=f"{metric} by {axis}")
    parallel = parallel_coordinates(
        [*differing, *([metric] if metric else [])],
        [Line(f"{r.info.name} ({r.info.run_id[:8]})",
              {**{k: r.params.get(k) for k in differing},
               **({metric: r.metrics[metric].value}
                  if metric is not None and metric in r.metrics else {})})
         for r in runs], title=f"params that differ and {metric or 'no metric'}")
    return page(request, "compare.html", section="runs", runs=runs, differing=differing,
                same=same, metric_keys=metric_keys, metric=metric, axis=axis, chart=chart,
                parallel=parallel,
                columns=[Column("metric", k) for k in metric_keys])


def routes() -> list[BaseRoute]:
    return [Route("/runs", runs_list, name="runs"),
            Route("/compare", compare, name="compare"),
            Route("/runs/{run_id}", run_page, name="run"),
            Route("/runs/{run_id}/artifacts/{path:path}", artifact_bytes, name="artifact")]
