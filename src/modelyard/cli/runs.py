"""CLI: ``modelyard runs list|show|compare``."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from modelyard.errors import InvalidInputError

from .project import UriOption, open_yard
from .render import (
    cell,
    console,
    fits,
    format_duration,
    format_number,
    format_size,
    format_time,
    listing,
    say,
    section,
    short_id,
    show,
    status_text,
)

if TYPE_CHECKING:
    from rich.table import Table

    from modelyard.backends.metadata.base import RunRecord
    from modelyard.tracking.frames import RunComparison

app = typer.Typer(help="List, inspect and compare runs.", no_args_is_help=True)

MAX_METRIC_COLUMNS = 6
MAX_PARAM_COLUMNS = 4
_LOWER_IS_BETTER = {"loss", "error", "err", "rmse", "mse", "mae", "mape", "smape", "rmsle",
                    "msle", "wer", "cer", "perplexity", "latency", "time", "duration",
                    "seconds", "cost", "brier", "deviance", "logloss"}


JsonOption = Annotated[bool, typer.Option(
    "--json", help="Print JSON instead of tables: exact values, full ids, times in epoch "
                   "milliseconds.")]


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: such a value is written as null."""
    return value if math.isfinite(value) else None


def _run_json(record: RunRecord, experiment: str | None) -> dict[str, Any]:
    info = record.info
    return {"run_id": info.run_id, "name": info.name, "experiment_id": info.experiment_id,
            "experiment": experiment, "status": info.status, "start_time": info.start_time,
            "end_time": info.end_time, "parent_run_id": info.parent_run_id,
            "user": info.user, "host": info.host, "pid": info.pid,
            "params": dict(record.params),
            "metrics": {k: {"value": _finite(m.value), "step": m.step,
                            "timestamp": m.timestamp} for k, m in record.metrics.items()},
            "tags": dict(record.tags)}


def _echo_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2))


# --- list ---------------------------------------------------------------------------------

Column = tuple[str, str, str]  # entity ("metric" | "param" | "tag"), key, header

_PREFIXES = {"metrics.": "metric", "m.": "metric", "params.": "param", "p.": "param",
             "tags.": "tag", "t.": "tag"}


def _requested_columns(records: Sequence[RunRecord], names: Sequence[str]) -> list[Column]:
    columns: list[Column] = []
    for name in (n.strip() for item in names for n in item.split(",")):
        if not name:
            continue
        prefix = next((p for p in _PREFIXES if name.startswith(p)), None)
        if prefix is not None:
            columns.append((_PREFIXES[prefix], name[len(prefix):], name))
            continue
        for entity, attr in (("metric", "metrics"), ("param", "params"), ("tag", "tags")):
            if any(name in getattr(r, attr) for r in records):
                columns.append((entity, name, name))
                break
        else:
            raise InvalidInputError(
                f"no run listed has a metric, param or tag named {name!r}", field="columns"
            )
    return columns


def _default_columns(records: Sequence[RunRecord]) -> list[Column]:
    """The most common metrics, then the params that vary between runs, in priority order."""
    metric_counts = Counter(k for r in records for k in r.metrics)
    metrics = sorted(metric_counts, key=lambda k: (-metric_counts[k], k))[:MAX_METRIC_COLUMNS]
    param_counts = Counter(k for r in records for k in r.params)

    def varies(key: str) -> bool:
        return len({r.params[key] for r in records if key in r.params}) > 1

    params = sorted(param_counts, key=lambda k: (not varies(k), -param_counts[k], k))
    by_metric: list[Column] = [("metric", k, k) for k in metrics]
    by_param: list[Column] = [("param", k, f"params.{k}" if k in metrics else k)
                              for k in params[:MAX_PARAM_COLUMNS]]
    return by_metric[:2] + by_param[:2] + by_metric[2:] + by_param[2:]


def _value(record: RunRecord, entity: str, key: str) -> str:
    if entity == "metric":
        metric = record.metrics.get(key)
        return format_number(metric.value) if metric else "-"
    source = record.params if entity == "param" else record.tags
    return source.get(key, "-")


def _width(header: str, values: Sequence[str], cap: int | None = None) -> int:
    """Characters a column takes: its widest cell (up to ``cap``, for a column that may
    wrap) plus padding and rule."""
    widest = max(len(header), *(len(v) for v in values))
    return (widest if cap is None else min(widest, cap)) + 3


def _base_columns(records: Sequence[RunRecord], experiments: dict[int, str]
                  ) -> dict[str, list[str]]:
    """What every run row shows; the experiment only when the runs span several."""
    several = len({r.info.experiment_id for r in records}) > 1
    return {
        "id": [short_id(r.info.run_id) for r in records],
        "name": [r.info.name for r in records],
        **({"experiment": [experiments.get(r.info.experiment_id, str(r.info.experiment_id))
                           for r in records]} if several else {}),
        "status": [r.info.status for r in records],
        "start": [format_time(r.info.start_time, compact=True) for r in records],
        "duration": [format_duration(r.info.start_time, r.info.end_time) for r in records],
    }


def _fit(base: dict[str, list[str]], wanted: list[Column], values: dict[Column, list[str]],
         width: int) -> tuple[dict[str, list[str]], list[Column]]:
    """The base columns and the wanted ones that fit beside them, taken in priority order and
    shown metrics first. When not even one wanted column fits, the start time and then the
    duration give way: a run list without its metrics says little."""
    for drop in ((), ("start",), ("start", "duration")):
        kept = {h: v for h, v in base.items() if h not in drop}
        room = width + 3 - sum(_width(h, v) for h, v in kept.items())
        shown = []
        for col in wanted:
            need = _width(col[2], values[col], None if col[0] == "metric" else 30)
            if need <= room:
                room -= need
                shown.append(col)
        if shown or not wanted:
            break
    return kept, sorted(shown, key=lambda c: (c[0] != "metric", wanted.index(c)))


@app.command("list")
def list_runs(
    experiment: Annotated[list[str] | None, typer.Option(
        "--experiment", "-e", metavar="NAME",
        help="Only runs of this experiment (repeat for several).",
    )] = None,
    filter: Annotated[str | None, typer.Option(
        "--filter", "-f", metavar="TEXT",
        help="Search filter, e.g. \"metrics.r2 > 0.9 and params.max_depth = '5'\".",
    )] = None,
    order_by: Annotated[list[str] | None, typer.Option(
        "--order-by", "-o", metavar="TEXT",
        help="Ordering such as \"metrics.r2 desc\" (repeat for ties); default: newest first.",
    )] = None,
    limit: Annotated[int, typer.Option(
        "--limit", "-n", min=1, metavar="N", help="Show at most this many runs.",
    )] = 20,
    columns: Annotated[list[str] | None, typer.Option(
        "--columns", "-c", metavar="NAMES",
        help="Metrics, params or tags to show (comma-separated or repeated), e.g. "
             "r2,max_depth; default: the most common metrics and the params that vary, "
             "as many as fit the terminal.",
    )] = None,
    as_json: JsonOption = False,
    uri: UriOption = None,
) -> None:
    """List runs with their status, duration, key metrics and params."""
    with open_yard(uri) as yard:
        records = yard.tracking.find_runs(experiment or None, filter, order_by or None, limit)
        experiments = {e.experiment_id: e.name for e in yard.list_experiments()}
    if as_json:
        _echo_json([_run_json(r, experiments.get(r.info.experiment_id)) for r in records])
        return
    if not records:
        say("No runs match." if filter or experiment else
            "No runs yet: start one with [bold]yard.start_run(...)[/] in Python.")
        return
    base = _base_columns(records, experiments)
    wanted = _requested_columns(records, columns) if columns else _default_columns(records)
    values = {col: [_value(r, col[0], col[1]) for r in records] for col in wanted}
    if columns:
        shown = wanted
    else:
        base, shown = _fit(base, wanted, values, console.width)

    table = listing(None, base)
    for entity, _, header in shown:
        table.add_column(header, justify="right" if entity == "metric" else "left",
                         no_wrap=entity == "metric", overflow="fold")
    for i, r in enumerate(records):
        row = [cell(v[i], "bold" if h == "name" else "") for h, v in base.items()]
        row[list(base).index("status")] = status_text(r.info.status)
        table.add_row(*row, *(cell(values[col][i]) for col in shown))
    show(table)
    hidden = [c[2] for c in wanted if c not in shown]
    if hidden:
        say(f"[dim]Not shown for lack of width: {escape(', '.join(hidden))} "
            "(pick with --columns).[/]")
    if len(records) == limit:
        say(f"[dim]Showing the first {limit} runs; --limit/-n shows more.[/]")


# --- show ---------------------------------------------------------------------------------


@app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(
        metavar="RUN_ID", help="The run's id, or a unique prefix of it (at least 6 characters).",
    )],
    as_json: JsonOption = False,
    uri: UriOption = None,
) -> None:
    """Show one run: info, params, metrics, tags, environment, note and artifacts."""
    from modelyard.tracking.environment import TAG_PREFIX
    from modelyard.tracking.run import ERROR_TAG, NOTE_TAG

    with open_yard(uri) as yard:
        details = yard.tracking.describe_run(run_id)
    record, experiment, artifacts = details.record, details.experiment, details.artifacts
    parent, children = details.parent, details.children
    if as_json:
        _echo_json({**_run_json(record, experiment.name),
                    "parent_name": None if parent is None else parent.info.name,
                    "children": [c.info.run_id for c in children],
                    "artifacts": [{"path": a.path, "size": a.size, "sha256": a.sha256}
                                  for a in artifacts]})
        return
    info = record.info

    head = section(f"Run {info.name}")
    head.add_row("id", cell(info.run_id))
    head.add_row("experiment", cell(f"{experiment.name} (id {experiment.experiment_id})"))
    head.add_row("status", status_text(info.status))
    if ERROR_TAG in record.tags:
        head.add_row("error", cell(record.tags[ERROR_TAG], "red"))
    head.add_row("started", cell(format_time(info.start_time, seconds=True)))
    head.add_row("ended", cell(format_time(info.end_time, seconds=True) or "-"))
    head.add_row("duration", cell(format_duration(info.start_time, info.end_time)))
    head.add_row("by", cell(f"{info.user}@{info.host} (pid {info.pid})"))
    if parent is not None:
        head.add_row("parent", cell(f"{parent.info.run_id} ({parent.info.name})"))
    console.print(head)

    if NOTE_TAG in record.tags:
        from rich.markdown import Markdown  # markdown-it loads only when a note is shown

        console.print()
        console.print(Text("Note", style="bold"))
        console.print(Markdown(record.tags[NOTE_TAG]))
    _print_pairs("Params", ["param", "value"], sorted(record.params.items()))
    _print_pairs("Metrics (latest values)", ["metric", "value", "step", "logged"], [
        (k, format_number(m.value, digits=6), str(m.step),
         format_time(m.timestamp, seconds=True))
        for k, m in sorted(record.metrics.items())
    ])
    _print_pairs("Tags", ["tag", "value"], sorted(
        (k, v) for k, v in record.tags.items() if not k.startswith(TAG_PREFIX)))
    _print_pairs("Environment", ["what", "value"], sorted(
        (k[len(TAG_PREFIX):], v) for k, v in record.tags.items()
        if k.startswith(TAG_PREFIX) and k not in (NOTE_TAG, ERROR_TAG)))
    _print_pairs("Artifacts", ["path", "size", "sha256"], [
        (a.path, format_size(a.size), a.sha256[:12]) for a in artifacts
    ])
    _print_pairs("Child runs", ["id", "name", "status", "duration"], [
        (short_id(c.info.run_id), c.info.name, status_text(c.info.status),
         format_duration(c.info.start_time, c.info.end_time)) for c in children
    ])


def _print_pairs(title: str, headers: list[str], rows: Sequence[Sequence[str | Text]]) -> None:
    if not rows:
        return
    table = listing(title, headers, wrap=("value", "path", "name"),
                    right=("value", "size") if headers[0] == "metric" else ("size",))
    for row in rows:
        table.add_row(*(v if isinstance(v, Text) else cell(v) for v in row))
    console.print()
    show(table)


# --- compare ------------------------------------------------------------------------------


def lower_is_better(metric: str) -> bool:
    """Guess a metric's direction from its name: losses, errors and times go down."""
    words = [w for w in re.split(r"[^a-z0-9]+", metric.lower()) if w]
    if words and words[0] == "neg":  # scikit-learn's neg_mean_squared_error and friends
        return False
    return any(w in _LOWER_IS_BETTER or w.endswith(("loss", "error")) for w in words)


@app.command("compare")
def compare(
    run_ids: Annotated[list[str], typer.Argument(
        metavar="RUN_ID", help="Two or more run ids (or unique prefixes of at least 6 characters).",
    )],
    minimize: Annotated[list[str] | None, typer.Option(
        "--min", metavar="METRIC", help="Treat METRIC as lower-is-better (repeatable).",
    )] = None,
    maximize: Annotated[list[str] | None, typer.Option(
        "--max", metavar="METRIC", help="Treat METRIC as higher-is-better (repeatable).",
    )] = None,
    uri: UriOption = None,
) -> None:
    """Compare runs side by side: the params that differ, and every metric with the best
    value marked."""
    lower, higher = set(minimize or ()), set(maximize or ())
    if lower & higher:
        raise InvalidInputError(
            f"metric {sorted(lower & higher)[0]!r} cannot be both --min and --max",
            field="metric",
        )
    with open_yard(uri) as yard:
        comparison = yard.compare_runs([yard.tracking.resolve_run_id(r) for r in run_ids])
    tables = _comparison_tables(comparison, lower, higher, by_name=True)
    if not all(fits(t) for t in tables if t is not None):
        # Too narrow for a column per run named in full: the runs are listed first, and
        # the other tables name them by id.
        tables = _comparison_tables(comparison, lower, higher, by_name=False)
    overview, params, metrics = tables
    show(overview)
    console.print()
    if params is None:
        say("[dim]The runs' params are all the same.[/]")
    else:
        show(params)
    console.print()
    if metrics is None:
        say("[dim]None of the runs has logged a metric.[/]")
        return
    show(metrics)
    say("[dim]* best value of the metric; --min/--max override the direction.[/]")


def _comparison_tables(comparison: RunComparison, lower: set[str], higher: set[str], *,
                       by_name: bool) -> tuple[Table, Table | None, Table | None]:
    """The runs, the params that differ and the metrics; a column per run, headed by the
    run's name and id (``by_name``) or by its id alone, the runs then listed one a row."""
    runs = comparison.runs
    if by_name:
        headers = [f"{r.info.name}\n{short_id(r.info.run_id)}" for r in runs]
        overview = listing("Runs", ["", *headers])
        overview.add_row(cell("status"), *(status_text(r.info.status) for r in runs))
        overview.add_row(cell("started"), *(
            cell(format_time(r.info.start_time, compact=True)) for r in runs))
        overview.add_row(cell("duration"), *(
            cell(format_duration(r.info.start_time, r.info.end_time)) for r in runs))
    else:
        headers = [short_id(r.info.run_id) for r in runs]
        overview = listing("Runs", ["id", "name", "status", "started", "duration"],
                           wrap=("started",))
        for r in runs:
            overview.add_row(cell(short_id(r.info.run_id)), cell(r.info.name, "bold"),
                             status_text(r.info.status),
                             cell(format_time(r.info.start_time, compact=True)),
                             cell(format_duration(r.info.start_time, r.info.end_time)))
    params = None
    if not comparison.params.empty:
        params = listing("Params that differ", ["param", *headers], wrap=headers)
        for key, values in comparison.params.iterrows():
            params.add_row(cell(key), *(cell("-" if _missing(v) else v) for v in values))
    metrics = None
    if not comparison.metrics.empty:
        metrics = listing("Metrics", ["metric", "best", *headers], right=headers)
        for key, row in comparison.metrics.iterrows():
            name = str(key)
            down = name in lower or (name not in higher and lower_is_better(name))
            metrics.add_row(cell(name), cell("min" if down else "max"),
                            *_marked(list(row), down))
    return overview, params, metrics


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _marked(values: list[float], lower: bool) -> list[Text]:
    present = [v for v in values if not math.isnan(v)]
    best = (min(present) if lower else max(present)) if len(present) > 1 else None
    return [cell(format_number(v, digits=6) + " *", "bold green") if v == best else
            cell(format_number(v, digits=6)) for v in values]

