"""CLI: ``modelyard monitor``: check served models, alert, report, and look back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from modelyard.cli.project import UriOption, open_yard
from modelyard.cli.render import (
    cell,
    console,
    format_number,
    format_time,
    listing,
    say,
    show,
)

if TYPE_CHECKING:
    from modelyard.monitoring.check import MonitorResult

app = typer.Typer(help="Drift, data quality, performance and health of served models; "
                       "alerts and reports.", no_args_is_help=True)

WindowOption = Annotated[str | None, typer.Option(
    "--window", "-w", metavar="DURATION",
    help="How far back from --end (default now): 90m, 36h, 7d, 2w. "
         "Default: the model's configured window, else 7d.",
    show_default=False)]
StartOption = Annotated[str | None, typer.Option(
    "--start", metavar="TIME",
    help="Window start (ISO 8601 date or date-time with offset), instead of "
         "--window.", show_default=False)]
EndOption = Annotated[str | None, typer.Option(
    "--end", metavar="TIME", help="Window end, exclusive (default: now).", show_default=False)]
AlertOption = Annotated[list[str] | None, typer.Option(
    "--alert", "-a", metavar="RULE", help="An alert rule, e.g. 'dataset_drift', 'psi(*) > 0.25', "
                          "'rmse worse by 10%', 'error_rate > 0.05' (repeatable; added to "
                          "the model's rules).", show_default=False)]
NotifyOption = Annotated[list[str] | None, typer.Option(
    "--notify", "-n", metavar="TARGET",
    help="Where fired alerts go: log, webhook:URL or command:CMD "
         "(repeatable; added to the model's).", show_default=False)]


@app.command("run")
def run(
    models: Annotated[list[str] | None, typer.Argument(
        metavar="MODEL", help="Models to check (default: every model with monitoring rules).",
        show_default=False)] = None,
    window: WindowOption = None,
    start: StartOption = None,
    end: EndOption = None,
    alert: AlertOption = None,
    notify: NotifyOption = None,
    every: Annotated[str | None, typer.Option(
        "--every", metavar="DURATION",
        help="Check again at this interval (e.g. 1h) until interrupted, here in the "
             "foreground (`modelyard monitor schedule` puts the checks on the workers).",
        show_default=False)] = None,
    fail_on_alert: Annotated[bool, typer.Option(
        "--fail-on-alert", help="Exit with code 2 when an alert fired.")] = False,
    uri: UriOption = None,
) -> None:
    """Check models over their window, store the results, and send fired alerts."""
    from modelyard.pipelines.monitoring_jobs import MonitoringLoop

    with open_yard(uri) as yard:
        loop = MonitoringLoop(yard.monitoring, models or (), window, start, end,
                              alert or (), notify or ())
        try:
            results = loop.run(every, on_result=_print_summary)
        except KeyboardInterrupt:
            say("Stopped.")
            results = loop.last
    if results is None:
        say("No model has monitoring rules: name models to check, or add "
            "[models.NAME.monitoring] to modelyard.toml.")
        return
    if fail_on_alert and any(result.fired for result in results):
        raise typer.Exit(2)


@app.command("schedule")
def schedule(
    models: Annotated[list[str] | None, typer.Argument(
        metavar="MODEL", help="Models to check (default: every model with monitoring rules "
                              "when the check runs).", show_default=False)] = None,
    every: Annotated[str | None, typer.Option(
        "--every", metavar="DURATION",
        help="How often: an interval that divides an hour or a day (15m, 1h, 6h, 1d) or "
             "7d.", show_default=False)] = None,
    cron: Annotated[str | None, typer.Option(
        "--cron", metavar="CRON", help="Or five cron fields, like '0 * * * *'.",
        show_default=False)] = None,
    timezone: Annotated[str, typer.Option(
        "--timezone", "--tz", help="The time zone --cron is read in.")] = "UTC",
    window: WindowOption = None,
    alert: AlertOption = None,
    notify: NotifyOption = None,
    off: Annotated[bool, typer.Option(
        "--off", help="Take the checks off the workers' scheduler.")] = False,
    uri: UriOption = None,
) -> None:
    """Put the checks on the workers' scheduler: `modelyard worker` runs them.

    Each due time runs once, on one worker, however many workers there are; the runs are
    recorded as runs of the pipeline modelyard.monitor."""
    from modelyard.errors import InvalidInputError
    from modelyard.pipelines.monitoring_jobs import (
        MONITOR_PIPELINE,
        schedule_monitoring,
        unschedule_monitoring,
    )

    if off and (every or cron):
        raise InvalidInputError("--off takes no --every or --cron", field="off")
    with open_yard(uri) as yard:
        if off:
            unschedule_monitoring(yard.pipelines)
            say("The monitoring checks are off the workers' scheduler.")
            return
        change = schedule_monitoring(yard.pipelines, every=every, cron=cron,
                                     timezone=timezone, models=models or (), window=window,
                                     rules=alert or (), notify=notify or ())
        when = yard.pipelines.get(MONITOR_PIPELINE)
    what = ", ".join(models) if models else "every monitored model"
    say(f"Checks of {escape(what)} run at '{when.schedule}' ({when.timezone}) on "
        f"`modelyard worker` ({MONITOR_PIPELINE} v{change.version}).")


@app.command("report")
def report(
    model: Annotated[str, typer.Argument(metavar="MODEL",
                                         help="The model to report on.", show_default=False)],
    window: WindowOption = None,
    start: StartOption = None,
    end: EndOption = None,
    html: Annotated[Path | None, typer.Option(
        "--html", metavar="PATH",
        help="Write a self-contained HTML report here.", show_default=False)] = None,
    json_path: Annotated[Path | None, typer.Option(
        "--json", metavar="PATH",
        help="Write the same data as JSON here.", show_default=False)] = None,
    store: Annotated[bool, typer.Option(
        "--store/--no-store", help="Keep the check in the model's history.")] = True,
    uri: UriOption = None,
) -> None:
    """Check a model over a window and write its report.

    The report is self-contained HTML and/or JSON, with the trends of earlier checks."""
    with open_yard(uri) as yard:
        result = yard.monitoring.report(model, window=window, start=start, end=end,
                                        html=html, json_path=json_path, store=store)
    _print_summary(result)
    for path in (html, json_path):
        if path is not None:
            say(f"Wrote {escape(str(path))} ({path.stat().st_size / 1024:,.0f} KB).")


@app.command("history")
def history(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model.", show_default=False)],
    limit: Annotated[int, typer.Option("--limit", min=1, metavar="N",
                                       help="Newest checks shown.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
    uri: UriOption = None,
) -> None:
    """The model's stored checks, oldest first: drift, performance, health, alerts."""
    with open_yard(uri) as yard:
        rows = yard.monitoring.history(model, limit=limit)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        say(f"No stored checks of {escape(model)} yet: run `modelyard monitor run "
            f"{escape(model)}`.")
        return
    table = listing(None, ["window", "version", "rows", "drifted", "performance",
                           "errors", "alerts"], wrap=("performance",),
                    right=("version", "rows", "drifted", "errors", "alerts"))
    for row in rows:
        window = row.get("window") or {}
        metrics = ", ".join(f"{k} {format_number(v)}"
                            for k, v in list(row["metrics"].items())[:1])
        if not metrics and row["estimated"]:
            metrics = ", ".join(f"~{k} {format_number(v, digits=3)}"
                                for k, v in list(row["estimated"].items())[:2])
        share = row.get("drifted_share")
        error_rate = row.get("error_rate")
        first, last = str(window.get("start", ""))[:10], str(window.get("end", ""))[:10]
        span = f"{first}..{last[5:] if last[:4] == first[:4] else last}"
        table.add_row(cell(span), cell(row.get("version")), cell(f"{row['rows']:,}"),
                      cell("" if share is None else f"{share:.0%}",
                           "red" if row.get("dataset_drift") else ""),
                      cell(metrics or "-"),
                      cell("" if error_rate is None else f"{error_rate:.1%}"),
                      cell(row["alerts"] or "-", "red" if row["alerts"] else ""))
    show(table)


@app.command("alerts")
def alerts(
    model: Annotated[str | None, typer.Argument(metavar="MODEL", help="Only this model's alerts.",
                                                show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, metavar="N",
                                       help="Newest alerts shown.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, with evidence.")] = False,
    uri: UriOption = None,
) -> None:
    """Alerts fired, newest first, with where they were sent."""
    with open_yard(uri) as yard:
        found = yard.monitoring.alerts(model, limit=limit)
    if as_json:
        console.print_json(json.dumps([a.__dict__ for a in found]))
        return
    if not found:
        say("No alerts fired.")
        return
    columns = ["fired", *([] if model else ["model"]), "version", "rule", "message", "sent"]
    table = listing(None, columns, wrap=("rule", "message", "sent"))
    for a in found:
        sent = ", ".join(f"{str(d.get('target', '')).split(':', 1)[0]} "
                         f"{'ok' if d.get('ok') else 'FAILED'}" for d in a.deliveries)
        rule = cell(a.rule + (" [critical]" if a.severity == "critical" else ""),
                    "red" if a.severity == "critical" else "yellow")
        table.add_row(cell(format_time(a.fired_at_ms, compact=True)),
                      *([] if model else [cell(a.model)]), cell(a.version), rule,
                      cell(a.message), cell(sent or "not sent"))
    show(table)


@app.command("rules")
def rules(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model.", show_default=False)],
    alert: AlertOption = None,
    notify: NotifyOption = None,
    uri: UriOption = None,
) -> None:
    """Show the model's alert rules, or store new ones.

    With --alert/--notify, these replace the stored rules; rules in modelyard.toml still
    apply."""
    with open_yard(uri) as yard:
        if alert is not None or notify is not None:
            yard.monitoring.set_rules(model, alert or [], notify or [])
        found, targets = yard.monitoring.rules(model)
    if not found:
        say(f"{escape(model)} has no alert rules.")
    for rule in found:
        say(f"  {escape(rule.text())}")
    say(f"Alerts go to: {escape(', '.join(targets) or 'log')}")


@app.command("reference")
def reference(
    model: Annotated[str, typer.Argument(metavar="MODEL",
                                         help="The version: NAME:VERSION, NAME@ALIAS.",
                                         show_default=False)],
    data: Annotated[Path, typer.Option("--data", metavar="PATH",
                                       help="Parquet file of the model's input "
                                            "columns to profile.",
                                       show_default=False)],
    uri: UriOption = None,
) -> None:
    """Set a version's reference profile from a Parquet file.

    It replaces the profile kept at registration."""
    import pyarrow.parquet as pq

    from modelyard.errors import InvalidInputError

    if not data.is_file():
        raise InvalidInputError(f"no file {str(data)!r}", field="data")
    with open_yard(uri) as yard:
        profile = yard.monitoring.set_reference(model, pq.read_table(data))
    say(f"Reference of {escape(model)}: {profile.rows:,} rows, {len(profile.columns)} "
        f"columns, {len(profile.predictions)} prediction column(s).")


def _latency_text(health: dict[str, Any]) -> str:
    """The p99 latency of the served requests, and how many had none (scored in batch)."""
    p99 = (health.get("latency_ms") or {}).get("p99")
    requests, unmeasured = health["requests"], health.get("unmeasured") or 0
    batch = f"{unmeasured:,} scored in batch, not served"
    if p99 is None:
        return f"latency not measured ({batch})" if unmeasured else "latency not measured"
    if not unmeasured:
        return f"p99 {p99:.1f} ms"
    return (f"p99 {p99:.1f} ms over the {requests - unmeasured:,} served "
            f"({batch}: latency not measured)")


def _print_summary(result: MonitorResult) -> None:
    data: dict[str, Any] = result.to_dict()
    head = f"[bold]{escape(result.model)}[/]" + (
        f":{result.version}" if result.version is not None else "")
    window = data.get("window")
    span = f" {window['start'][:16]} to {window['end'][:16]}" if window else ""
    say(f"{head}{escape(span)}: {result.rows:,} predictions")
    drift = data.get("drift")
    if drift is not None:
        drifted = ", ".join(drift["drifted_columns"]) or "none"
        verdict = "[red]DRIFT[/]" if drift["dataset_drift"] else "no dataset drift"
        say(f"  drift: {verdict} ({drift['drifted_share']:.0%} of features; drifted: "
            f"{escape(drifted)})")
    quality = data.get("quality")
    if quality is not None:
        say(f"  quality: {'ok' if quality['ok'] else escape('; '.join(quality['issues'][:3]))}")
    performance = data.get("performance")
    if performance is not None:
        parts = [f"{c['metric']} {format_number(c['value'])}" + (
            f" ({c['relative_change']:+.1%} vs registered)"
            if c.get("relative_change") is not None else "")
            for c in performance.get("changes", [])[:3]]
        say(f"  performance on {performance['labelled_rows']:,} labelled rows: "
            f"{escape(', '.join(parts))}")
    estimate = data.get("estimate")
    if estimate is not None:
        parts = [f"{k} ~{format_number(v, digits=3)}" for k, v in estimate["metrics"].items()]
        say(f"  estimated (no labels needed): {escape(', '.join(parts))}")
    health = data.get("health")
    if health is not None and health.get("requests"):
        say(f"  health: {health['requests']:,} requests, error rate "
            f"{health['error_rate']:.2%}, {_latency_text(health)}")
    for note in data.get("notes", []):
        say(f"  note: {escape(note)}")
    for outcome in result.fired:
        colour = "red" if outcome.rule.severity == "critical" else "yellow"
        say(f"  [{colour}]ALERT[/] {escape(outcome.message)}")
