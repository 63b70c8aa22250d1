"""CLI: ``modelyard pipelines plan|apply|list|show|run|runs|logs|triggers|schedule|
decisions|shadows`` and ``modelyard worker``."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from modelyard.cli.project import UriOption, open_yard
from modelyard.cli.render import (
    cell,
    console,
    format_seconds,
    format_time,
    listing,
    say,
    section,
    short_id,
)
from modelyard.cli.render import (
    show as show_table,
)
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from modelyard.backends.metadata.pipelines import PipelineRunRecord
    from modelyard.pipelines.service import PipelineChange

app = typer.Typer(help="Training pipelines: definitions, runs, triggers, schedules.",
                  no_args_is_help=True)

PathsArgument = Annotated[list[Path] | None, typer.Argument(
    help="Python files or folders holding the pipelines; default: the project's "
         "pipelines.py and pipelines/ folder.", show_default=False)]
NameArgument = Annotated[str, typer.Argument(help="The pipeline's name.", show_default=False)]
STATUS = {"queued": "blue", "running": "cyan", "succeeded": "green", "failed": "red"}


def _status(status: str | None) -> Text:
    return Text(status or "-", style=STATUS.get(status or "", "dim"))


def _print_changes(changes: Sequence[PipelineChange], applied: bool) -> None:
    styles = {"create": "green", "update": "yellow", "unchanged": "dim"}
    for change in changes:
        style = "yellow" if change.action == "unchanged" and change.changed else \
            styles[change.action]
        console.print(Text(str(change), style=style))
    todo = sum(c.changed for c in changes)
    verb = "applied" if applied else "to apply"
    say(f"{todo} change{'s' if todo != 1 else ''} {verb}." if todo else "Nothing to change.")


@app.command("plan")
def plan(paths: PathsArgument = None, uri: UriOption = None) -> None:
    """Show what `apply` would store, storing nothing."""
    with open_yard(uri) as yard:
        _print_changes(yard.pipelines.plan(paths or None), applied=False)


@app.command("apply")
def apply(paths: PathsArgument = None, uri: UriOption = None) -> None:
    """Store the pipelines; a changed one becomes a new version, unchanged ones stay."""
    with open_yard(uri) as yard:
        _print_changes(yard.pipelines.apply(paths or None), applied=True)


@app.command("list")
def list_pipelines(uri: UriOption = None) -> None:
    """List the stored pipelines (latest versions) with their last run."""
    with open_yard(uri) as yard:
        records = yard.pipelines.list()
        if not records:
            say("No pipelines yet: declare them in pipelines.py and run "
                "`modelyard pipelines apply`.")
            return
        table = listing(None, ["pipeline", "version", "model", "last run", "status"])
        for record in records:
            last = next(iter(yard.pipelines.runs(record.name, limit=1)), None)
            table.add_row(cell(record.name), cell(f"v{record.version}"),
                          cell(record.spec.get("model") or "-"),
                          cell(None if last is None else format_time(last.queued_at_ms)),
                          _status(None if last is None else last.status))
        console.print(table)


@app.command("show")
def show(name: NameArgument, version: Annotated[int | None, typer.Option(
        "--version", help="A stored version (default: the latest).")] = None,
         code: Annotated[bool, typer.Option("--code", help="Print the stored code.")] = False,
         uri: UriOption = None) -> None:
    """Show a pipeline: its version, model, params, schedule and triggers."""
    with open_yard(uri) as yard:
        record = yard.pipelines.record(name, version)
        pipeline = yard.pipelines.get(name, version)
    info = section(f"Pipeline {name}")
    info.add_row("version", cell(f"v{record.version}  {record.content_hash[:12]}"))
    info.add_row("model", cell(pipeline.model))
    info.add_row("stored", cell(format_time(record.created_at_ms)))
    info.add_row("from", cell(record.spec.get("path") or "(function source)"))
    info.add_row("params", cell(json.dumps(pipeline.params) if pipeline.params else "none"))
    info.add_row("schedule", cell(f"{pipeline.schedule} ({pipeline.timezone})"
                                  if pipeline.schedule else "none"))
    info.add_row("triggers", cell(", ".join(json.dumps(t.spec()) for t in pipeline.triggers)
                                  or "none"))
    info.add_row("max attempts", cell(pipeline.max_attempts))
    info.add_row("policy", cell("none (registers only)" if pipeline.policy is None
                                else f"{pipeline.policy}, against {pipeline.alias}"))
    if pipeline.shadow is not None:
        trial = pipeline.shadow
        ends = " or ".join(x for x in (trial.duration, trial.requests and
                                       f"{trial.requests} requests") if x)
        share = "" if trial.canary_percent is None else f" ({trial.canary_percent:g}%)"
        info.add_row("trial", cell(f"{trial.mode}{share} on alias {trial.trial_alias}, "
                                   f"for {ends}"))
    if pipeline.evaluation is not None:
        window = pipeline.evaluation
        parts = [f"labels {window.labels}"] if window.labels else []
        if window.from_prediction_log:
            parts.append("prediction log")
        info.add_row("evaluation", cell(f"last {window.window}: {' + '.join(parts)}, "
                                        f"label {window.label}"))
    if pipeline.probation is not None:
        info.add_row("probation", cell(f"{pipeline.probation} after a promotion"))
    if pipeline.description:
        info.add_row("description", cell(pipeline.description))
    console.print(info)
    if code:
        from rich.syntax import Syntax

        console.print(Syntax(pipeline.code, "python", line_numbers=True))


def _parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--param takes key=value, not {item!r}", field="param")
        try:
            params[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            params[key.strip()] = text
    return params


def _print_run(run: PipelineRunRecord) -> None:
    info = section(f"Pipeline run {run.run_id}")
    info.add_row("pipeline", cell(f"{run.pipeline} v{run.version}"))
    info.add_row("status", _status(run.status))
    info.add_row("trigger", cell(f"{run.trigger} {json.dumps(run.trigger_detail)}"
                                 if run.trigger_detail else run.trigger))
    info.add_row("params", cell(json.dumps(run.params)))
    info.add_row("queued", cell(format_time(run.queued_at_ms, seconds=True)))
    if run.started_at_ms is not None and run.ended_at_ms is not None:
        info.add_row("duration", cell(format_seconds((run.ended_at_ms - run.started_at_ms)
                                                     / 1000)))
    info.add_row("attempts", cell(f"{run.attempts} of {run.max_attempts}"))
    if run.result.get("version") is not None:
        info.add_row("registered", cell(f"{run.result['model']}:{run.result['version']}"))
    if run.result.get("tracking_run"):
        info.add_row("tracking run", cell(run.result["tracking_run"]))
    for step in run.steps:
        info.add_row("step", cell(f"{step['name']}: {step['status']} "
                                  f"({format_seconds(step.get('seconds', 0))})"))
    console.print(info)
    if run.error:
        console.print(Text(run.error.rstrip(), style="red"))


class _Echo:
    """The run's output, line by line, above the status line."""

    def __init__(self, screen: Console) -> None:
        self.screen = screen
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.screen.print(Text(line, style="dim"), soft_wrap=True)
        return len(text)


@app.command("run")
def run(name: NameArgument, param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Override a param: key=value (the value read as JSON when it "
        "parses, else as text). Repeat for several.", show_default=False)] = None,
        queue: Annotated[bool, typer.Option(
            "--queue", help="Queue the run for `modelyard worker` instead of running it "
            "here.")] = False,
        uri: UriOption = None) -> None:
    """Run a pipeline now, here, showing its steps (or queue it with --queue)."""
    params = _parse_params(param)
    with open_yard(uri) as yard:
        if queue:
            queued = yard.pipelines.enqueue(name, params)
            say(f"Queued run {queued.run_id} of {name} v{queued.version}.")
            return
        # bound to the real stdout: the run's own output is captured while it runs
        screen = Console(file=sys.stdout, width=console.width)
        with screen.status(f"Running {name}...") as status:
            def on_step(steps: list[dict[str, Any]]) -> None:
                current = steps[-1]
                status.update(f"Running {name}: {current['name']} ({len(steps)} step"
                              f"{'s' if len(steps) != 1 else ''})")

            done = yard.pipelines.run(name, params, on_step=on_step, echo=_Echo(screen))
    _print_run(done)
    if done.status != "succeeded":
        raise typer.Exit(1)


@app.command("runs")
def runs(name: Annotated[str | None, typer.Argument(help="Only this pipeline's runs.",
                                                     show_default=False)] = None,
         status: Annotated[str | None, typer.Option(
             "--status", help="Only runs in this state: queued, running, succeeded, "
             "failed.", show_default=False)] = None,
         limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 20,
         uri: UriOption = None) -> None:
    """List pipeline runs, newest first."""
    with open_yard(uri) as yard:
        found = yard.pipelines.runs(name, status=status, limit=limit)
    if not found:
        say("No pipeline runs.")
        return
    table = listing(None, ["run", "pipeline", "trigger", "queued", "status", "duration",
                           "registered"])
    for r in found:
        took = ("" if r.started_at_ms is None or r.ended_at_ms is None
                else format_seconds((r.ended_at_ms - r.started_at_ms) / 1000))
        registered = (f"{r.result['model']}:{r.result['version']}"
                      if r.result.get("version") is not None else "")
        table.add_row(cell(short_id(r.run_id)), cell(f"{r.pipeline} v{r.version}"),
                      cell(r.trigger), cell(format_time(r.queued_at_ms, compact=True)),
                      _status(r.status), cell(took), cell(registered))
    console.print(table)


@app.command("decisions")
def decisions(model: Annotated[str | None, typer.Argument(
                  help="Only this model's candidates.", show_default=False)] = None,
              pending: Annotated[bool, typer.Option(
                  "--pending", help="Only those awaiting approval.")] = False,
              uri: UriOption = None) -> None:
    """List what became of pipelines' candidates, newest first (``modelyard models why``
    tells one in full)."""
    with open_yard(uri) as yard:
        found = yard.pipelines.decisions(model, decision="pending" if pending else None)
    if not found:
        say("No decisions." if not pending else "No candidate awaits approval.")
        return
    table = listing(None, ["candidate", "champion", "trigger", "decision", "by", "when"])
    for d in found:
        table.add_row(cell(f"{d.model}:{d.version}"),
                      cell("-" if d.champion is None else d.champion), cell(d.trigger),
                      cell(d.decision, "green" if d.passed else "red"),
                      cell(d.decided_by or "-"),
                      cell(format_time(d.decided_at_ms or d.created_at_ms, compact=True)))
    show_table(table)


@app.command("shadows")
def shadows(model: Annotated[str | None, typer.Argument(
                help="Only this model's trials.", show_default=False)] = None,
            check: Annotated[bool, typer.Option(
                "--check", help="Conclude the trials that are due (a worker does it on its "
                "own): compare live, then promote or drop.")] = False,
            end: Annotated[str | None, typer.Option(
                "--end", help="MODEL:VERSION: conclude this trial now, whatever it "
                "declared.", show_default=False)] = None,
            uri: UriOption = None) -> None:
    """List the shadow and canary trials going on, or conclude them (``--check``,
    ``--end``); ``modelyard models why`` shows a trial's live comparison."""
    from modelyard.registry.references import parse_ref

    with open_yard(uri) as yard:
        concluded = []
        if end is not None:
            ref = parse_ref(end)
            if ref.version is None:
                raise InvalidInputError(f"name the trial's version, like {ref.name}:3",
                                        field="end")
            concluded.append(yard.pipelines.end_shadow(ref.name, ref.version))
        if check:
            concluded += yard.pipelines.check_shadows()
        going = yard.pipelines.shadows(model)
    for d in concluded:
        say(f"{d.model}:{d.version}: {d.decision} ({d.reason})")
    if not going:
        if not concluded:
            say("No shadow trial is going on.")
        return
    table = listing(None, ["candidate", "champion", "mode", "alias", "answered", "ends"])
    for d, answered in going:
        trial = d.shadow or {}
        wanted = trial.get("requests")
        ends = format_time(trial["ends_at_ms"], compact=True) if trial.get(
            "ends_at_ms") else "-"
        table.add_row(cell(f"{d.model}:{d.version}"), cell(d.champion),
                      cell(trial.get("mode")), cell(trial.get("alias")),
                      cell(f"{answered}" + ("" if wanted is None else f" of {wanted}")),
                      cell(ends))
    show_table(table)


@app.command("logs")
def logs(run_id: Annotated[str, typer.Argument(help="The run's id or a unique prefix.")],
         uri: UriOption = None) -> None:
    """Show a run: its trigger, steps, outcome and captured output."""
    with open_yard(uri) as yard:
        found = yard.pipelines.get_run(run_id)
    _print_run(found)
    if found.logs:
        console.print(Text("\n" + found.logs.rstrip()))


@app.command("triggers")
def triggers(uri: UriOption = None) -> None:
    """List schedules, alert and upstream triggers, with next time and last outcome."""
    with open_yard(uri) as yard:
        found = yard.pipelines.triggers()
    if not found:
        say("No triggers: pipelines run only when asked (`modelyard pipelines run`).")
        return
    table = listing(None, ["pipeline", "trigger", "when", "next", "last run"])
    for t in found:
        last = Text("-", style="dim") if t.last_status is None else Text.assemble(
            _status(t.last_status), f" {format_time(t.last_at_ms, compact=True)}")
        table.add_row(cell(t.pipeline), cell(t.kind), cell(t.detail),
                      cell(None if t.next_at is None
                           else format_time(int(t.next_at.timestamp() * 1000))), last)
    console.print(table)


@app.command("schedule")
def schedule(name: NameArgument, cron: Annotated[str | None, typer.Argument(
        help="Five cron fields, like '0 3 * * 1'; leave out with --off.",
        show_default=False)] = None,
             timezone: Annotated[str, typer.Option(
                 "--timezone", "--tz", help="The time zone the cron is read in.")] = "UTC",
             off: Annotated[bool, typer.Option("--off", help="Remove the schedule.")] = False,
             uri: UriOption = None) -> None:
    """Change a pipeline's schedule without a new version of the pipeline."""
    if (cron is None) != off:
        raise InvalidInputError("give a cron expression, or --off", field="cron")
    with open_yard(uri) as yard:
        yard.pipelines.set_schedule(name, None if off else cron, timezone)
    say(f"{name}: schedule removed." if off else f"{name}: runs at '{cron}' ({timezone}).")


def worker(lease: Annotated[float, typer.Option(
        "--lease", help="Seconds a run stays leased without a heartbeat; a worker that "
        "dies loses its run after this long.")] = 60.0,
           poll: Annotated[float, typer.Option(
               "--poll", help="Seconds between looks at an empty queue.")] = 1.0,
           max_runs: Annotated[int | None, typer.Option(
               "--max-runs", help="Stop after this many runs.", show_default=False)] = None,
           until_idle: Annotated[bool, typer.Option(
               "--until-idle", help="Stop when the queue is empty.")] = False,
           uri: UriOption = None) -> None:
    """Run queued pipeline runs, fire due schedules and new-data triggers, and conclude
    due shadow trials, until stopped."""
    from modelyard.pipelines.worker import Worker

    if lease < 1 or poll <= 0:
        raise InvalidInputError("--lease must be at least 1 second and --poll positive",
                                field="lease")

    def report(run: PipelineRunRecord) -> None:
        registered = (f" -> {run.result['model']}:{run.result['version']}"
                      if run.result.get("version") is not None else "")
        console.print(Text.assemble(f"{short_id(run.run_id)} {run.pipeline} ({run.trigger}) ",
                                    _status(run.status), registered))

    with open_yard(uri) as yard:
        w = Worker(yard.pipelines, lease_ms=int(lease * 1000), poll_seconds=poll)
        say(f"Worker {w.name} waiting for pipeline runs (Ctrl-C stops it; SIGTERM lets the "
            "current run finish first).")
        previous = signal.signal(signal.SIGTERM, lambda *_: w.stop.set())
        try:
            done = w.run(max_runs=max_runs, until_idle=until_idle, on_run=report)
        except KeyboardInterrupt:
            say("Stopped.")
            return
        finally:
            signal.signal(signal.SIGTERM, previous)
    say(f"{done} run{'s' if done != 1 else ''} done.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="pipelines")
    root.command("worker")(worker)
