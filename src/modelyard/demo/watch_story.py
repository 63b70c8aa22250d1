"""The last chapters of the demo's story: production watched month by month, the retraining
an alert starts, and the months after it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from modelyard.demo.state import DemoState, need
from modelyard.demo.telling import say, shown, size_text
from modelyard.text_tables import listing, show

_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 10: "ten"}

if TYPE_CHECKING:
    from modelyard.backends.metadata.decisions import DecisionRecord
    from modelyard.demo.monitoring import MonthCheck, WatchOutcome
    from modelyard.demo.retraining import RetrainOutcome


def _months_table(months: list[MonthCheck], before: int | None = None) -> Table:
    """One row per checked month; with ``before``, that version's rmse on the same claims
    beside (and the share of drifted features without their names, to fit 80 columns)."""
    drift = "drifted features" if before is None else "drifted"
    columns = ["month", "rows", "labels", drift, "rmse", "vs reg."]
    if before is not None:
        columns.append(f"v{before} rmse")
    columns.append("alerts")
    table = listing(None, columns, wrap=(drift,),
                    right=[c for c in columns if c not in ("month", drift)])
    for month in months:
        share = "" if month.drifted_share is None else f"{month.drifted_share:.0%}"
        names = ", ".join(month.drifted[:3]) + (
            f" +{len(month.drifted) - 3}" if len(month.drifted) > 3 else "")
        drifted = (f"{share} {names}" if before is None else share).strip() or "-"
        rmse = month.metrics.get("rmse")
        change = "" if month.change is None else f"{month.change:+.1%}"
        cells: list[str | Text] = [month.month, f"{month.rows:,}", f"{month.labelled:,}",
                                   Text(drifted), "-" if rmse is None else f"{rmse:,.0f}",
                                   change]
        if before is not None:
            earlier = month.before.get("rmse")
            cells.append("-" if earlier is None else f"{earlier:,.0f}")
        cells.append(str(len(month.alerts)) if month.alerts else "-")
        table.add_row(*cells)
    return table


def tell_monitoring(state: DemoState, console: Console) -> None:
    from modelyard.demo.monitoring import RULES

    watch = need(state.watch, "monitoring outcome")
    console.print("[bold green]10. Monitoring[/]")
    if watch.skipped:
        say(console, f"   Skipped: {escape(watch.skipped)}.\n")
        return
    say(console, f"   Month by month, the claims filed after the validation months were scored "
                 f"by version {watch.version}, in production, in one batch per month and "
                 "logged as predictions made when each claim was filed (no client waited for "
                 "them, so they carry no latency: service health counts them but measures "
                 "latency on served requests only); those of every month but the last have "
                 "settled, and their values came back as labels. Alert rules: "
                 f"{escape(', '.join(RULES))}.")
    if state.pipelines_file is not None and watch.pipeline is not None:
        from modelyard.demo.retraining import TRIGGER_RULE, retraining_gates

        gates = "; ".join(g.name for g in retraining_gates())
        say(console, f"   [cyan]{escape(shown(state.pipelines_file))}[/] declares the pipeline "
                     f"[bold]{watch.pipeline}[/], applied as version {watch.pipeline_version} "
                     "(its code stored as source): it retrains claims-model when an alert of "
                     f"the rule '{TRIGGER_RULE}' fires and leaves its candidate for approval. "
                     "The model's gates are now those a retrained candidate meets against "
                     f"production on the claims its run holds out ({escape(gates)}). One "
                     "stored check per month, until that alert:")
    show(_months_table(watch.months), console)
    _tell_alerts(watch, console)
    health = watch.health
    if health.get("requests"):
        latency = health.get("latency_ms") or {}
        say(console, f"   The serving step's live traffic, from the log (its own requests "
                     "only, by the interval it served in): "
                     f"{health['requests']:,} requests, {health['errors']} failed "
                     f"({health['error_rate']:.1%}), p50 {latency.get('p50') or 0:.1f} ms, "
                     f"p99 {latency.get('p99') or 0:.1f} ms.")
    console.print()


def _tell_alerts(watch: WatchOutcome, console: Console) -> None:
    fired = [a for m in watch.months for a in m.alerts]
    filed = (f"; every alert was filed in {escape(shown(Path(watch.inbox)))} by the command "
             "notifier" if watch.inbox else "")
    trigger = watch.trigger
    if trigger is not None:
        values = ", ".join(f"{escape(rule)} = {value:,.1f}%" if "worse by" in rule
                           else f"{escape(rule)} = {value:,.4g}"
                           for rule, value in trigger.values.items())
        say(console, f"   The [bold]{trigger.month}[/] check fired [yellow]{values}[/] against "
                     f"the registered rmse{filed}. The alert queued run "
                     f"[cyan]{trigger.run_id[:8]}[/] of {watch.pipeline} (trigger: alert); the "
                     "months after it wait for the retraining.")
    elif fired:
        say(console, f"   Last alert: [yellow]{escape(fired[-1])}[/]{filed}.")
    if watch.collapsed and trigger is None:
        say(console, f"   No retraining was queued: {escape(watch.collapsed)}.")


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]


def _decision_table(decision: DecisionRecord) -> Table:
    champion = "-" if decision.champion is None else f"version {decision.champion}"
    table = listing(None, ("metric", champion + " (production)",
                           f"version {decision.version} (candidate)"),
                    right=(champion + " (production)", f"version {decision.version} (candidate)"))
    theirs = decision.champion_metrics or {}
    for metric in ("rmse", "mae", "r2"):
        ours, before = decision.candidate_metrics.get(metric), theirs.get(metric)
        style = "{:,.3f}" if metric == "r2" else "{:,.0f}"
        table.add_row(metric, "-" if before is None else style.format(before),
                      "-" if ours is None else style.format(ours))
    return table


def tell_retraining(state: DemoState, console: Console) -> None:
    retrain = need(state.retrain, "retraining outcome")
    console.print("[bold green]11. Retraining[/]")
    if retrain.skipped:
        say(console, f"   Skipped: {escape(retrain.skipped)}.\n")
        return
    run = need(retrain.run, "pipeline run")
    steps = ", ".join(f"{s['name']} {s.get('seconds', 0):.1f} s" for s in run.steps)
    took = ((run.ended_at_ms or 0) - (run.started_at_ms or 0)) / 1000
    say(console, f"   A worker (the code [bold]modelyard worker[/] runs) took run "
                 f"[cyan]{run.run_id[:8]}[/] from the queue and ran {run.pipeline} "
                 f"v{run.version}: {run.status} in {took:.1f} s ({escape(steps)}).")
    if run.status != "succeeded":
        last = (run.error or "").strip().splitlines()[-1:] or ["no error recorded"]
        say(console, f"   [red]The run failed[/]: {escape(last[0])}; its logs: modelyard "
                     f"pipelines logs {run.run_id[:8]}.\n")
        return
    decision = retrain.pending
    if decision is None:
        say(console, "   The run registered no candidate to decide on.\n")
        return
    _tell_data(decision, int(run.params.get("holdout_every", 0)), console)
    show(_decision_table(decision), console)
    results = decision.gate_report.get("results", [])
    passed = sum(1 for r in results if r.get("passed"))
    say(console, f"   Gates against version {decision.champion}: {passed} of {len(results)} "
                 "passed (" + "; ".join(
                     f"{escape(r['gate'])}: {'passed' if r.get('passed') else 'FAILED'}"
                     for r in results) + f"). Policy {decision.policy}: the decision is "
                 f"[bold]{decision.decision}[/].")
    if decision.decision != "pending":
        say(console, f"   Version {decision.version} stays registered, unpromoted"
                     f"{': ' + escape(decision.reason) if decision.reason else ''}.\n")
        return
    _tell_approval(retrain, decision, console)
    console.print()


def _tell_data(decision: DecisionRecord, every: int, console: Console) -> None:
    training = decision.data.get("training") or {}
    evaluation = decision.data.get("evaluation") or {}
    window = training.get("window") or ["?", "?"]
    say(console, f"   It trained version {decision.version} on {training.get('rows', 0):,} "
                 f"claims filed from {str(window[0])[:10]} to {str(window[1])[:10]}, read as "
                 "the feature store held them at the run's time (training set "
                 f"{str(training.get('training_set_id', ''))[:12]}), and kept aside "
                 f"{evaluation.get('rows', 0):,} claims that one customer in "
                 f"{_NUMBERS.get(every, str(every))} filed in "
                 "the alert's month: both versions were scored on those, unseen by either:")


def _tell_approval(retrain: RetrainOutcome, decision: DecisionRecord,
                   console: Console) -> None:
    final = retrain.final
    say(console, f"   The demo approves by command, as a person would, in the project: "
                 f"[bold]$ {escape(retrain.command)}[/]")
    printed = retrain.approval_output.strip().splitlines()
    if printed:
        say(console, f"   [dim]{escape(printed[-1])}[/]")
    if retrain.approval_failed or final is None or final.decision != "approved":
        state = "refused" if final is None else final.decision
        say(console, f"   [red]The approval did not promote version {decision.version}[/] "
                     f"(decision {state}).")
        return
    before, after = retrain.answers.get("before"), retrain.answers.get("after")
    if retrain.server_skipped:
        say(console, f"   No server answered: {escape(retrain.server_skipped)}.")
    elif before is not None and after is not None:
        swap = ("" if retrain.swapped_at_ms is None or final.decided_at_ms is None else
                f" {(retrain.swapped_at_ms - final.decided_at_ms) / 1000:.1f} s after the "
                "promotion")
        say(console, f"   A server following [bold]claims-model@production[/] answered "
                     f"{_by_version(before)} while the run went on; it swapped version "
                     f"{decision.version} in{swap} and answered {_by_version(after)} after "
                     f"the approval; {_failed(retrain.failures)}.")
    _tell_timeline(retrain, console)


def _failed(failures: list[str]) -> str:
    if not failures:
        return "[green]0 failed[/]"
    return f"[red]{len(failures)} failed[/] ({escape(failures[0])})"


def _by_version(counts: dict[int, int]) -> str:
    return ", ".join(f"{n:,} claim{'' if n == 1 else 's'} by version {v}"
                     for v, n in sorted(counts.items())) or "no claims"


def _tell_timeline(retrain: RetrainOutcome, console: Console) -> None:
    times = retrain.timeline
    start = times.get("alert")
    seconds = retrain.alert_to_promotion
    if start is None or seconds is None:
        return
    marks = [f"{name} +{(at - start) / 1000:.1f} s" for name, at in
             sorted(times.items(), key=lambda item: item[1]) if name != "alert"]
    say(console, f"   From the alert ({_clock(start)} UTC) to the promoted version: "
                 f"[bold]{seconds:.1f} s[/] ({escape(', '.join(marks))}), the approval "
                 "included, given at once here.")


def tell_after(state: DemoState, console: Console) -> None:
    after = need(state.after, "after-retraining outcome")
    watch = need(state.watch, "monitoring outcome")
    console.print("[bold green]12. After the retraining[/]")
    if after.months:
        earlier = after.earlier
        say(console, f"   The months after the alert, scored by version {after.version} in "
                     "production and logged the same way" + (
                         f"; version {earlier}'s rmse on the same claims beside it (scored "
                         "here for comparison, not served):" if earlier is not None else ":"))
        show(_months_table(after.months, earlier), console)
        _tell_recovery(after.months, after.version, earlier, console)
    elif watch.trigger is not None:
        say(console, "   The alert came with the last month: no month is left to watch.")
    else:
        say(console, "   No retraining happened: every month was checked above.")
    if after.why:
        say(console, "   [bold]modelyard models why claims-model@production[/]:")
        for line in after.why:
            for part in line.splitlines():
                say(console, f"     {escape(part)}")
    for note in watch.notes:
        say(console, f"   {escape(note[0].upper() + note[1:])}.")
    if watch.report:
        say(console, f"   Report: {escape(shown(Path(watch.report)))} "
                     f"({size_text(Path(watch.report).stat().st_size)}); checks took "
                     f"{watch.seconds:.1f} s.")
    console.print()


def _tell_recovery(months: list[MonthCheck], version: int | None, earlier: int | None,
                   console: Console) -> None:
    """How far the retrained version's error stays from its registered value, and how it
    compares with the version it replaced on the same claims."""
    labelled = [m for m in months if m.metrics.get("rmse") is not None]
    if not labelled or version is None or earlier is None:
        return
    first = labelled[0]
    changes = [m.change for m in labelled if m.change is not None]
    text = f"   Version {version}"
    if first.registered is not None and changes:
        text += (f" was registered with an rmse of {first.registered:,.0f} (its evaluation "
                 f"on the {first.registered_on} data set, the claims its run held out); the "
                 f"months after measure {min(changes):+.1%} to {max(changes):+.1%} against it")
    gains = [1 - m.metrics["rmse"] / m.before["rmse"] for m in labelled
             if m.before.get("rmse")]
    if gains:
        text += (f"{',' if changes else ''} and its rmse is {min(gains):.0%} to "
                 f"{max(gains):.0%} below version {earlier}'s on the same claims")
    say(console, text + ".")
