"""The story the demo tells on the terminal, one chapter per step."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from modelyard.demo.clock import DemoClock
from modelyard.demo.feature_store import groups, profile_warnings
from modelyard.demo.state import DemoConfig, DemoState, need
from modelyard.demo.telling import say as _say
from modelyard.demo.telling import shown as _shown
from modelyard.demo.telling import size_text as _size
from modelyard.demo.training import ROW_TIME
from modelyard.features.definitions import Source
from modelyard.features.request import RequestFeatureGroup
from modelyard.text_tables import listing, show

if TYPE_CHECKING:
    from modelyard.demo.serving import LiveOutcome


def tell_intro(config: DemoConfig, root: Path, clock: DemoClock, cleared: list[str],
               outside: list[str], console: Console) -> None:
    where = ("stores configured outside it" if outside
             else "embedded: SQLite and local files")
    source = "set for the demo" if clock.pinned else "the system's date"
    console.print(Panel.fit(
        "[bold]modelyard demo[/]: predicting the value of motor-insurance claims.\n"
        f"Project [cyan]{escape(_shown(root))}[/] ({where}), "
        f"seed {config.seed}, {config.customers:,} customers.\n"
        f"Today is [bold]{clock.today:%Y-%m-%d}[/] ({source}): the claims history ends at "
        f"the start of this month, {clock.history_end:%Y-%m-%d}, and the online lookups, "
        "the server and the monitoring windows all use this date.",
        border_style="blue",
    ))
    if cleared:
        _say(console, "   A clean project: an earlier demo's "
                      f"{escape(', '.join(cleared))} in this folder were cleared first.")
    if outside:
        _say(console, f"   Not cleared, as they live outside the folder: "
                      f"{escape('; '.join(outside))}. Their earlier records stay; the figures "
                      "below count only this run's model versions and traffic.")
    if cleared or outside:
        console.print()


def tell_data(state: DemoState, console: Console) -> None:
    data = need(state.data, "data")
    claims, cfg = data.claims, state.config
    console.print("[bold green]1. Data[/]")
    frames = {"policyholders": data.policyholders, "claims": claims}
    table = listing(None, ("file", "rows", "columns", "size", "sha256"),
                    right=("rows", "columns", "size"))
    for f in state.files:
        table.add_row(Text(f.path.name), f"{f.rows:,}", str(len(frames[f.name].columns)),
                      _size(f.size), f.sha256[:12])
    show(table, console)
    folder = state.files[0].path.parent if state.files else state.root
    _say(
        console,
        f"   Written to [cyan]{escape(_shown(folder))}[/]; claims from {data.start:%Y-%m-%d} to "
        f"{data.end:%Y-%m-%d} (UTC, {cfg.months} months); "
        f"data version [cyan]{state.data_version[:12]}[/]."
    )
    before = claims[claims["event_time"] < data.shift_start]
    after = claims[claims["event_time"] >= data.shift_start]
    if len(before) and len(after) and cfg.shift_months:
        _say(
            console,
            f"   The last {cfg.shift_months} months drift: repair costs inflate, weather and "
            "theft claims grow, the south and centre claim more. Mean claim value "
            f"{before['claim_value'].mean():,.0f} -> {after['claim_value'].mean():,.0f}; "
            f"claims a month {len(before) / (cfg.months - cfg.shift_months):,.0f} -> "
            f"{len(after) / cfg.shift_months:,.0f}."
        )
    console.print()


_CHANGE_STYLES = {"create": "green", "update": "yellow", "unchanged": "dim"}
EXAMPLE_CLAIMS = 4  # the customer shown claim by claim has about this many claims


def _source_text(source: Source) -> str:
    kind = {"parquet": "Parquet", "csv": "CSV", "sql": "SQL"}.get(source.kind_of_source,
                                                                    source.kind_of_source)
    return f"{source.name} ({kind}, timestamp {source.timestamp})"


def tell_features(state: DemoState, console: Console) -> None:
    path = need(state.definitions_file, "definitions file")
    console.print("[bold green]2. Features[/]")
    found = groups(state.definitions)
    entities = sorted({f"{g.entity.name} (key {', '.join(g.entity.keys)})" for g in found})
    _say(console, f"   [cyan]{escape(_shown(path))}[/] defines the entity "
                  f"{escape(', '.join(entities))} and {len(found)} feature groups:")
    for group in found:
        windows = sorted({f.window for f in group.features if f.window},
                         key=lambda w: int(w[:-1]))
        detail = f"{len(group.features)} features from {_source_text(group.source)}"
        if windows:
            detail += f", windows {', '.join(windows)}"
        _say(console, f"     [bold]{group.name}[/]: {escape(detail)}")
    for request in (d for d in state.definitions if isinstance(d, RequestFeatureGroup)):
        names = ", ".join(f.name for f in request.features)
        asked = ", ".join(column for column, _ in request.request)
        _say(console, f"     [bold]{request.name}[/] (request time): {escape(names)} from "
                      f"the request's {escape(asked)} and {escape(', '.join(request.inputs))}")
    for change in state.changes:
        console.print(f"   [{_CHANGE_STYLES[change.action]}]{escape(str(change))}[/]")
    todo = sum(c.action != "unchanged" for c in state.changes)
    _say(console, f"   Applied {todo} change{'s' if todo != 1 else ''}: each definition is "
                  "versioned by its content." if todo else
                  "   Nothing to apply: every definition is stored as it is.")
    if state.definitions_backup is not None:
        _say(console, f"   The features.py that was there is kept as "
                      f"[cyan]{escape(_shown(state.definitions_backup))}[/].")
    console.print()


def tell_ingestion(state: DemoState, console: Console) -> None:
    console.print("[bold green]3. Ingestion[/]")
    table = listing(None, ("source", "rows", "commit", "note"), wrap=("note",),
                    right=("rows",))
    for done in state.ingestions:
        note = "new commit"
        if done.reused:
            note = "reused: same file as before"
        elif done.replaced:
            note = f"replaced {done.replaced:,} older rows"
        table.add_row(Text(done.source), f"{done.commit.rows:,}", done.commit.commit_id[:12],
                      note)
    show(table, console)
    if any(done.reused for done in state.ingestions):
        _say(console, "   An earlier run ingested these very files: their commits are reused, "
                      "as a second copy would count every claim twice in the windows.")
    if any(done.replaced for done in state.ingestions):
        _say(console, "   The tables held other rows (another seed or size, or extra "
                      "batches): they were emptied first.")
    _say(console, "   Each commit is atomic and stored with a profile of its rows. "
                  "What the profiles flag:")
    for done in state.ingestions:
        found = profile_warnings(done.report)
        _say(console, f"     {done.source}: "
                      f"{escape('; '.join(found)) if found else 'nothing flagged'}")
    console.print()


def _example(frame: pd.DataFrame) -> pd.DataFrame:
    """The claims of one customer with about :data:`EXAMPLE_CLAIMS` of them, in order."""
    counts = frame["customer_id"].value_counts()
    chosen = (counts - EXAMPLE_CLAIMS).abs().sort_values(kind="stable").index[0]
    return frame[frame["customer_id"] == chosen].sort_values("event_time")


def _example_table(rows: pd.DataFrame) -> Table:
    numbers = ("claims 90d", "sum 90d", "claims 365d", "days since last", "value")
    table = listing(None, ("claim filed", *numbers), right=numbers)
    for row in rows.to_dict("records"):
        since, total = row["days_since_last_claim"], row["amount_90d_sum"]
        table.add_row(f"{row['event_time']:%Y-%m-%d %H:%M}", str(row["claims_90d"]),
                      "-" if pd.isna(total) else f"{total:,.0f}", str(row["claims_365d"]),
                      "-" if pd.isna(since) else f"{since:,.1f}", f"{row['claim_value']:,.0f}")
    return table


def tell_training_set(state: DemoState, console: Console) -> None:
    ts, frame = need(state.training_set, "training set"), need(state.frame, "training set")
    console.print("[bold green]4. Training set[/]")
    versions = sorted({f.split(":")[0].replace("@", " ") for f in ts.features})
    _say(
        console,
        f"   Training set [cyan]{ts.training_set_id[:12]}[/]: {len(ts):,} rows, one per claim "
        f"from {frame['event_time'].min():%Y-%m} to {frame['event_time'].max():%Y-%m}, with "
        f"{len(ts.features)} features of {' and '.join(versions)}; label {ts.label}. The "
        "store recorded its lineage: feature versions, commits and a hash of the rows asked "
        "for."
    )
    _say(
        console,
        f"   Each row's features are read at its [bold]{ROW_TIME}[/], 1 microsecond before "
        "the claim: the store uses only rows stamped at or before that instant, so the "
        "windows hold only the customer's earlier claims. Read at the claim's own time, they would "
        "count the claim itself, and its value is the label."
    )
    rows = _example(frame)
    _say(console, f"   Customer {rows['customer_id'].iloc[0]}, claim by claim:")
    show(_example_table(rows), console)
    console.print()


def _runs_table(frame: pd.DataFrame) -> Table:
    """Candidates, best first (``frame`` comes ordered by r2)."""
    table = listing(None, ("model", "r2", "rmse", "mae", "mape", "fit s", "run"),
                    right=("r2", "rmse", "mae", "mape", "fit s"))
    for i, row in enumerate(frame.to_dict("records")):
        table.add_row(
            Text(str(row["name"])), f"{row['metrics.r2']:.3f}", f"{row['metrics.rmse']:,.0f}",
            f"{row['metrics.mae']:,.0f}", f"{row['metrics.mape']:.2f}",
            f"{row['metrics.train_seconds']:.1f}", str(row["run_id"])[:8],
            style="bold green" if i == 0 else None,
        )
    return table


def tell_training(state: DemoState, console: Console) -> None:
    split = need(state.split, "training split")
    console.print("[bold green]5. Candidates[/]")
    _say(
        console,
        f"   Trained on {len(split.train):,} claims from {split.train_start:%Y-%m} to "
        f"{split.valid_start - pd.Timedelta(days=1):%Y-%m}, validated on {len(split.valid):,} "
        f"claims from {split.valid_start:%Y-%m} to "
        f"{split.valid_end - pd.Timedelta(days=1):%Y-%m}; the months after are kept for "
        "monitoring."
    )
    frame = state.yard.search_runs(state.experiment,
                                   filter=f"parent_run_id = '{state.parent.run_id}'",
                                   order_by=["metrics.r2 desc"])
    show(_runs_table(frame), console)
    _say(
        console,
        f"   Each run of experiment [cyan]{state.experiment}[/] holds its params, metrics, the "
        "training set it used (tag modelyard.training_set, lineage in "
        "modelyard/training_set.json), the data fingerprint, the environment and the fitted "
        "pipeline.\n"
    )


def tell_best(state: DemoState, console: Console) -> None:
    best = need(state.best, "best run")
    m = best.metrics
    console.print("[bold green]6. Best candidate[/]")
    _say(
        console,
        f"   [bold]{best.info.name}[/] (run [cyan]{best.info.run_id}[/]): r2 "
        f"{m['r2'].value:.3f}, rmse {m['rmse'].value:,.0f}, mae {m['mae'].value:,.0f}.\n"
    )


def tell_online(state: DemoState, console: Console) -> None:
    result, skew = need(state.lookup, "lookup"), need(state.skew, "skew check")
    console.print("[bold green]7. Online features[/]")
    for r in state.materializations:
        chunks = f"{r.chunks_total} chunk{'s' if r.chunks_total != 1 else ''}"
        _say(console, f"   Materialized [bold]{r.group}[/] v{r.version}: {r.entities:,} "
                      f"customers as of {_day(r.at_us)}, {chunks}.")
    read_at = "" if state.lookup_at is None else f" as of {state.lookup_at:%Y-%m-%d %H:%M} UTC"
    _say(console, "   The latest values per customer, computed by the same definitions and "
                  "engine as the training set (windows as of that instant). A lookup of "
                  f"{len(result)} customers{read_at}, one read of the online store "
                  f"({_ttl_note(state)}):")
    columns = result.to_dict()
    table = listing(None, columns)
    for row in result.to_records():
        table.add_row(*(Text(_cell(row[n])) for n in columns),
                      style="yellow" if row["status"] != "found" else None)
    show(table, console)
    verdict = ("[green]no skew[/]" if skew.ok
               else f"[red]{skew.mismatches} mismatching values[/]")
    _say(console, f"   Skew check of {skew.group}: {skew.sampled} customers' online values "
                  f"against an offline recomputation of the same rows: {verdict}.\n")


def _ttl_note(state: DemoState) -> str:
    ttls = [f"{g.name} keeps values {g.ttl}" for g in groups(state.definitions) if g.ttl]
    return "; ".join(ttls) + " after the latest claim" if ttls else "no TTL"


def tell_registry(state: DemoState, console: Console) -> None:
    from modelyard.demo import registry as reg

    outcome = need(state.registry, "registry outcome")
    console.print("[bold green]8. Model registry[/]")
    _say(console, f"   Gates of [bold]{reg.MODEL}[/], checked before {reg.ALIAS!r} may move: "
                  f"r2 >= {reg.MIN_R2} on the {reg.DATASET} months; no r2 drop of more than "
                  f"{reg.MAX_R2_DROP} against the current holder; a gap of at most "
                  f"{reg.MAX_ERROR_GAP:,.0f} in mean absolute error between age bands "
                  f"({', '.join(name for _, _, name in reg.AGE_BANDS)}); a signature callers "
                  "of the holder can still use.")
    table = listing(None, ("version", "candidate", "r2", "MAE gap", "outcome"),
                    wrap=("outcome",), right=("version", "r2", "MAE gap"))
    table.show_lines = True  # a row is two lines: the candidate, and its part in the story
    for a in outcome.attempts:
        gap = a.fairness.get("error_gap_mae")
        verdict = (Text("promoted", style="green") if a.promoted else Text.assemble(
            ("refused", "red"), ": " + ", ".join(k for k, _, _ in a.failed)))
        table.add_row(str(a.version), Text.assemble(a.candidate, "\n", (a.role, "dim")),
                      f"{a.metrics.get('r2', float('nan')):.3f}",
                      "-" if gap is None else f"{gap:,.0f}", verdict)
    show(table, console)
    for a in outcome.attempts:
        for _, gate, detail in a.failed:
            _say(console, f"   [red]v{a.version}[/] {escape(gate)}: {escape(detail)}")
    if outcome.rollback is not None:
        came_from, went_to = outcome.rollback
        moved = (f"Rolled {reg.ALIAS!r} back from version {came_from} to version {went_to} "
                 "in one command; every move is in the alias history.")
    else:
        moved = (f"No release to undo: {reg.ALIAS!r} is held by "
                 f"{'nothing' if outcome.production is None else outcome.production}.")
    _say(console, f"   {moved} "
                  f"Version {outcome.attempts[0].version}'s lineage reaches its run, the "
                  f"training set, the feature versions and the commits of "
                  f"{', '.join(outcome.lineage_sources) or 'its sources'}.\n")


def tell_serving(state: DemoState, console: Console) -> None:
    from modelyard.demo.serving import PATH

    live = need(state.live, "serving outcome")
    console.print("[bold green]9. Serving[/]")
    if live.skipped:
        _say(console, f"   Skipped: {escape(live.skipped)}.\n")
        return
    came_from, went_to = live.promoted or (None, None)
    forced = " (forced: its gates were not met at this data size)" if live.forced else ""
    at = "" if live.features_at is None else f" {live.features_at:%Y-%m-%d %H:%M} UTC"
    _say(console, f"   A server on 127.0.0.1 followed [bold]claims-model@production[/] and "
                  f"answered {live.requests:,} requests to [cyan]POST {PATH}[/] from "
                  f"several clients, each a claim filed now ({at.strip() or 'today'}) naming "
                  "only the customer and the claim: it looked the customer's features up "
                  "online and computed the days since their last claim itself. Version "
                  f"{went_to} was promoted over version {came_from} while requests "
                  f"flowed{forced}; the server swapped it in between requests.")
    _say(console, f"   {_freshness(live)}")
    versions = ", ".join(f"version {v}: {n:,}" for v, n in sorted(live.versions.items()))
    failed = (f"[green]{len(live.failures)} failed[/]" if not live.failures
              else f"[red]{len(live.failures)} failed[/] ({escape(live.failures[0])})")
    _say(console, f"   Answers by {versions}; {failed}; latency p50 "
                  f"{live.percentile(50):.1f} ms, p99 {live.percentile(99):.1f} ms.")
    if live.example:
        request, answer = live.example["request"], live.example["answer"]
        _say(console, f"   For example {escape(json.dumps(request))} got "
                      f"{answer['predictions'][0]:,.0f} from version {answer['version']}.")
    console.print()


def _freshness(live: LiveOutcome) -> str:
    """What the lookups found, and whether the log shows the feature really computed."""
    from modelyard.demo.serving import DAYS_SINCE

    found = live.statuses.get("found", 0)
    others = ", ".join(f"{n:,} {s}" for s, n in sorted(live.statuses.items()) if s != "found")
    day = "" if live.features_at is None else f" on {live.features_at:%Y-%m-%d}"
    text = (f"Every lookup found the customer's features fresh (inside their TTL{day})"
            if not others else f"[yellow]Lookups: {found:,} found, {escape(others)}[/]")
    if live.logged:
        text += (f"; the prediction log holds {live.logged:,} of these answers, "
                 f"{live.computed:,} with {DAYS_SINCE} computed")
        missing = live.logged - live.computed
        if missing:
            text += f" and [yellow]{missing:,} without it[/] (no claim history within its TTL)"
    return text + "."


def _day(at_us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at_us / 1e6, UTC).strftime("%Y-%m-%d %H:%M")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d"))
    return str(value)


def tell_outro(state: DemoState, seconds: float, console: Console) -> None:
    best_id = state.best.info.run_id if state.best is not None else "RUN_ID"
    project = _shown(state.root)
    cd = "" if project == "." else f"  cd {escape(shlex.quote(project))}\n"
    console.print(Panel(
        f"Explore the runs and the features:\n{cd}"
        f"  [bold]modelyard runs list -e {state.experiment}[/]\n"
        f"  [bold]modelyard runs show {best_id}[/]\n"
        "  [bold]modelyard features list[/]\n"
        "  [bold]modelyard features show claim_history[/]\n"
        "  [bold]modelyard features profile claims[/]\n"
        "  [bold]modelyard features lookup claim_history:* -k customer_id=1,2[/]\n"
        "  [bold]modelyard features freshness[/]\n"
        "  [bold]modelyard models versions claims-model[/]\n"
        "  [bold]modelyard models history claims-model[/]\n"
        "  [bold]modelyard models lineage claims-model@production[/]\n"
        "  [bold]modelyard serve claims-model@production[/]\n"
        "  [bold]modelyard monitor history claims-model[/]\n"
        "  [bold]modelyard monitor alerts claims-model[/]\n"
        "  [bold]modelyard pipelines runs[/]\n"
        "  [bold]modelyard models why claims-model@production[/]\n"
        "  [bold]modelyard models reproduce claims-model@production[/]\n"
        "Edit features.py, then [bold]modelyard features plan[/] shows what "
        "[bold]modelyard features apply[/] would change.\n"
        "In Python:\n"
        f"  yard = modelyard.connect(project={escape(repr(project))})\n"
        f"  yard.search_runs({state.experiment!r}, order_by=['metrics.r2 desc'])\n"
        f"  best = yard.best_run({state.experiment!r}, 'r2')\n"
        "  yard.features.get_training_set(best.tags['modelyard.training_set']).spec",
        title=f"done in {seconds:.1f} s", border_style="green",
    ))
