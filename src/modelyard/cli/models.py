"""CLI: ``modelyard models list|show|versions|promote|rollback|history|lineage|evaluate|
approve|reject|why|reproduce``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from modelyard.cli.deployments import WaitOption, wait_for_rollout
from modelyard.cli.project import (
    IdempotencyKeyOption,
    NoIdempotencyOption,
    UriOption,
    choose_key,
    open_yard,
)
from modelyard.cli.render import (
    cell,
    console,
    format_number,
    format_size,
    format_time,
    format_value,
    listing,
    say,
    section,
    short_id,
    show,
)
from modelyard.errors import GateFailedError, InvalidInputError

app = typer.Typer(help="Model registry: versions, aliases, gates, promotion, lineage.",
                  no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _aliases_by_version(aliases: dict[str, int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        found.setdefault(version, []).append(alias)
    return found


def _onnx(spec: dict[str, Any]) -> str:
    twin = spec.get("onnx") or {}
    return str(twin.get("status", "-"))


@app.command("list")
def list_models(as_json: JsonOption = False, uri: UriOption = None) -> None:
    """Every registered model with its newest version and aliases."""
    with open_yard(uri) as yard:
        rows = []
        for model in yard.models.list_models():
            versions = yard.models.store.list_versions(model.name)
            rows.append((model, versions[-1].version if versions else None,
                         yard.models.aliases(model.name)))
    if as_json:
        _echo_json([{"name": m.name, "latest": v, "aliases": a, "description": m.description}
                    for m, v, a in rows])
        return
    if not rows:
        say("No models registered yet.")
        return
    table = listing("Models", ["name", "latest", "aliases", "updated", "description"],
                    wrap=("aliases", "description"), right=("latest",))
    for model, latest, aliases in rows:
        table.add_row(cell(model.name, "bold"), cell(latest),
                      cell(", ".join(f"{a}={v}" for a, v in aliases.items())),
                      cell(format_time(model.updated_at, compact=True)),
                      cell(model.description))
    show(table)


@app.command("versions")
def versions(name: Annotated[str, typer.Argument(help="Model name.")],
             as_json: JsonOption = False, uri: UriOption = None) -> None:
    """The versions of a model, oldest first."""
    with open_yard(uri) as yard:
        found = yard.models.versions(name)
        held = _aliases_by_version(yard.models.aliases(name))
    if as_json:
        _echo_json([{"version": v.version, "flavor": v.flavor, "run_id": v.run_id,
                     "aliases": held.get(v.version, []), "onnx": _onnx(v.spec),
                     "created_at": v.created_at} for v in found])
        return
    table = listing(f"Versions of {name}", ["version", "aliases", "flavor", "onnx", "run",
                                            "size", "created", "by"],
                    wrap=("aliases",), right=("version", "size"))
    for v in found:
        table.add_row(cell(v.version, "bold"), cell(", ".join(held.get(v.version, [])), "green"),
                      cell(v.flavor), cell(_onnx(v.spec)), cell((v.run_id or "")[:8]),
                      cell(format_size(v.artifact_size)),
                      cell(format_time(v.created_at, compact=True)), cell(v.created_by))
    show(table)


@app.command("show")
def show_version(ref: Annotated[str, typer.Argument(help="name, name:3 or name@alias.")],
         as_json: JsonOption = False, uri: UriOption = None) -> None:
    """One version: flavor, signature, libraries, ONNX twin, evaluations, last gate report."""
    with open_yard(uri) as yard:
        v = yard.models.get_version(ref)
        aliases = _aliases_by_version(yard.models.aliases(v.name)).get(v.version, [])
        evaluations = yard.models.store.evaluations(v.name, v.version)
        reports = yard.models.store.gate_reports(v.name, v.version)
    if as_json:
        _echo_json({"name": v.name, "version": v.version, "aliases": aliases,
                    "flavor": v.flavor, "artifact_sha256": v.artifact_sha256,
                    "run_id": v.run_id, "training_set_id": v.training_set_id, **v.spec,
                    "evaluations": {e.dataset: e.evaluation for e in evaluations},
                    "gate_reports": [r.report | {"passed": r.passed, "forced": r.forced}
                                     for r in reports]})
        return
    info = section(f"{v.name}:{v.version}")
    info.add_row("aliases", cell(", ".join(aliases) or "-"))
    info.add_row("flavor", cell(v.flavor))
    info.add_row("artifact", cell(f"sha256 {v.artifact_sha256} ({format_size(v.artifact_size)})"))
    twin = v.spec.get("onnx") or {}
    info.add_row("onnx twin", cell(f"{twin.get('status', '-')} {twin.get('reason', '')}".strip()))
    info.add_row("run", cell(v.run_id or "-"))
    info.add_row("training set", cell(v.training_set_id or "-"))
    info.add_row("requirements", cell(" ".join(v.spec.get("requirements", [])) or "-"))
    info.add_row("registered", cell(f"{format_time(v.created_at)} by {v.created_by}"))
    console.print(info)
    signature = v.spec.get("signature")
    if signature:
        table = listing("Signature", ["", "column", "type", "nullable"])
        for side in ("inputs", "outputs"):
            for c in signature.get(side, []):
                table.add_row(cell(side[:-1]), cell(c["name"]), cell(c["type"]),
                              cell("yes" if c["nullable"] else "no"))
        show(table)
    for e in evaluations:
        table = listing(f"Evaluation on {e.dataset}", ["metric", "value"], right=("value",))
        for metric, value in sorted(e.evaluation.get("metrics", {}).items()):
            table.add_row(cell(metric), cell(format_number(value)))
        for column, values in sorted(e.evaluation.get("fairness", {}).items()):
            for metric, value in sorted(values.items()):
                table.add_row(cell(f"{metric} ({column})"), cell(format_number(value)))
        show(table)
    if reports:
        _print_report(reports[-1].report, reports[-1].passed, reports[-1].forced)


def _print_report(report: dict[str, Any], passed: bool, forced: bool = False) -> None:
    results = report.get("results", [])
    title = "Gate report: " + ("passed" if passed else "FAILED" + (" (forced)" if forced else ""))
    table = listing(title, ["gate", "result", "measured", "bound", "detail"],
                    wrap=("gate", "measured", "bound", "detail"))
    for r in results:
        mark = cell("pass", "green") if r["passed"] else cell("FAIL", "bold red")
        table.add_row(cell(r["gate"]), mark, cell(_measured(r.get("measured", {}))),
                      cell(_bounds(r.get("bounds", {}))), cell(r.get("detail", "")))
    if not results:
        table.add_row(cell("(no gates declared)"), cell("pass", "green"), cell(""), cell(""),
                      cell("declare gates with yard.models.set_gates or in modelyard.toml"))
    show(table)


def _measured(values: dict[str, Any]) -> str:
    """``r2 = 0.7168``; ``not measured`` for a value the gate could not compute."""
    return ", ".join(f"{k} = {format_value(v)}" if v is not None else f"{k} not measured"
                     for k, v in values.items())


_OPERATORS = ("<=", ">=", "<", ">", "==", "!=")


def _bounds(values: dict[str, Any]) -> str:
    """``r2 >= 0.5`` for a comparison, ``problems: none`` for anything else."""
    return ", ".join(f"{k} {v}" if isinstance(v, str) and v.startswith(_OPERATORS)
                     else f"{k}: {format_value(v)}" for k, v in values.items())


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in values.items())


@app.command("promote")
def promote(
    ref: Annotated[str, typer.Argument(metavar="REF", help="The version to promote: name:3.")],
    alias: Annotated[str, typer.Option("--alias", "-a", metavar="ALIAS",
                                       help="The alias to move.")] = "production",
    data: Annotated[list[str] | None, typer.Option(
        "--data", metavar="NAME=PATH",
        help="Evaluate candidate and current holder first on a data set: "
             "NAME=path.parquet or NAME=path.csv (repeatable).",
        show_default=False)] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Move the alias even if gates fail (needs --reason).")] = False,
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT",
                                        help="Why; kept in the history.")] = "",
    idempotency_key: IdempotencyKeyOption = None,
    no_idempotency: NoIdempotencyOption = False,
    wait: WaitOption = None,
    uri: UriOption = None,
) -> None:
    """Run the model's gates and move the alias to the version, or refuse listing each failed
    gate with its measured value and bound (exit code 1).

    Run again after a crash or a timeout, the same command shows the promotion that landed
    instead of promoting twice (the key is derived from the request and the alias history
    it started from), unless --no-idempotency."""
    import hashlib

    from modelyard.registry.promotion import promotion_key
    from modelyard.registry.references import parse_ref

    parsed = parse_ref(ref)
    if parsed.version is None:
        raise InvalidInputError(f"name the version to promote, like {parsed.name}:3",
                                field="version")
    frames = {name: _read_frame(path) for name, path in (_named(d) for d in data or [])}
    shas = {name: hashlib.sha256(path.read_bytes()).hexdigest()
            for name, path in (_named(d) for d in data or [])}
    with open_yard(uri) as yard:
        version = parsed.version
        key = choose_key(idempotency_key, no_idempotency, lambda: promotion_key(
            yard.models, parsed.name, version, alias, force=force, reason=reason, data=shas))
        try:
            done = yard.models.promote(parsed.name, parsed.version, alias, force=force,
                                       reason=reason, data=frames or None,
                                       idempotency_key=key)
        except GateFailedError as exc:
            _print_report(exc.details["report"], False)
            raise
        _print_report(done.report.to_dict(), done.report.passed, done.forced)
        before = "nothing" if done.previous is None else f"version {done.previous}"
        say(f"[green]{escape(alias)}[/] of {escape(parsed.name)} now points at version "
            f"{done.version} (was {before})" + (" [yellow]forced[/]" if done.forced else "")
            + ".")
        if wait is not None:
            wait_for_rollout(yard, parsed.name, alias, done.version, wait)


def _named(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise InvalidInputError(f"--data takes NAME=path, got {text!r}", field="data")
    return name, Path(path)


def _read_frame(path: Path) -> Any:
    import pandas as pd

    if not path.is_file():
        raise InvalidInputError(f"no file at {path}", field="data")
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise InvalidInputError(f"{path} is neither .csv nor .parquet", field="data")


@app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(metavar="MODEL", help="Model name.")],
    alias: Annotated[str, typer.Option("--alias", "-a", metavar="ALIAS",
                                       help="The alias to move back.")
                     ] = "production",
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT",
                                        help="Why; kept in the history.")] = "",
    wait: WaitOption = None,
    uri: UriOption = None,
) -> None:
    """Move the alias back to the version that held it before the current one."""
    with open_yard(uri) as yard:
        event = yard.models.rollback(name, alias, reason=reason)
        say(f"[green]{escape(alias)}[/] of {escape(name)} rolled back from version "
            f"{event.from_version} to version {event.to_version}.")
        if wait is not None and event.to_version is not None:
            wait_for_rollout(yard, name, alias, event.to_version, wait)


@app.command("history")
def history(
    name: Annotated[str, typer.Argument(metavar="MODEL", help="Model name.")],
    alias: Annotated[str | None, typer.Option("--alias", "-a", metavar="ALIAS",
                                              help="Only this alias.",
                                              show_default=False)] = None,
    as_json: JsonOption = False, uri: UriOption = None,
) -> None:
    """Every move of the model's aliases: when, who, from which version to which, why."""
    with open_yard(uri) as yard:
        events = yard.models.history(name, alias)
    if as_json:
        _echo_json([e.__dict__ for e in events])
        return
    table = listing(f"Alias history of {name}", ["when", "alias", "from", "to", "action",
                                                 "by", "reason"],
                    wrap=("reason",), right=("from", "to"))
    styles = {"force": "yellow", "rollback": "cyan", "promote": "green"}
    for e in events:
        table.add_row(cell(format_time(e.at, seconds=True)), cell(e.alias),
                      cell("-" if e.from_version is None else e.from_version),
                      cell("-" if e.to_version is None else e.to_version),
                      cell(e.action, styles.get(e.action, "")), cell(e.actor), cell(e.reason))
    show(table)


@app.command("lineage")
def lineage(ref: Annotated[str, typer.Argument(help="name:3 or name@alias.")],
            as_json: JsonOption = False, uri: UriOption = None) -> None:
    """Version -> run -> training set -> feature group versions and commits -> sources."""
    with open_yard(uri) as yard:
        found = yard.models.lineage(ref)
    if as_json:
        _echo_json(found.to_dict())
        return
    top = section(f"{found.model}:{found.version}")
    top.add_row("aliases", cell(", ".join(found.aliases) or "-"))
    top.add_row("flavor", cell(found.flavor))
    top.add_row("artifact", cell(found.artifact_sha256))
    run = found.run or {}
    top.add_row("run", cell(run.get("run_id", "-")))
    if run and not run.get("missing"):
        top.add_row("  params", cell(_pairs(run.get("params", {}))))
        top.add_row("  metrics", cell(_pairs(run.get("metrics", {}))))
        dirty = " (dirty)" if run.get("git_dirty") == "true" else ""
        top.add_row("  git", cell(f"{run.get('git_commit') or '-'}{dirty}"))
        env = run.get("environment", {})
        top.add_row("  environment", cell(_pairs(env)))
    ts = found.training_set or {}
    top.add_row("training set", cell(ts.get("training_set_id", "-")))
    if ts:
        top.add_row("  rows, label", cell(f"{ts.get('rows')}, {ts.get('label')}"))
        top.add_row("  spine sha256", cell(ts.get("spine_sha256")))
    console.print(top)
    if found.feature_groups:
        table = listing("Feature groups", ["group", "version", "entity", "source", "features"],
                        wrap=("features",), right=("version",))
        for g in found.feature_groups:
            table.add_row(cell(g["name"]), cell(g["version"]), cell(g.get("entity")),
                          cell(g.get("source")), cell(", ".join(g.get("features", []))))
        show(table)
    if found.sources:
        table = listing("Sources", ["source", "commit", "ingested", "rows", "table version"],
                        right=("rows", "table version"))
        for s in found.sources:
            table.add_row(cell(s["name"]), cell(short_id(s.get("commit"))),
                          cell(_iso_time(s.get("ingested_at"))), cell(s.get("rows")),
                          cell(s.get("table_version")))
        show(table)


def _iso_time(text: str | None) -> str:
    """An ISO time stored as text, to the second: ``2025-01-31 12:00:00``."""
    from datetime import datetime

    if not text:
        return "-"
    try:
        return format_value(datetime.fromisoformat(text))
    except ValueError:
        return text


@app.command("evaluate")
def evaluate(
    ref: Annotated[str, typer.Argument(metavar="REF", help="name:3 or name@alias.")],
    path: Annotated[Path, typer.Argument(metavar="PATH",
                                         help="Evaluation data (.parquet or .csv).")],
    label: Annotated[str | None, typer.Option("--label", metavar="COLUMN",
                                              help="Label column (default: the "
                                              "training set's).", show_default=False)] = None,
    dataset: Annotated[str, typer.Option("--dataset", metavar="NAME",
                                         help="Name the results are kept "
                                         "under (gates name it).")] = "default",
    slice_by: Annotated[str | None, typer.Option("--slice-by", metavar="COLUMN",
                                                 help="Also per value of "
                                                 "this column.", show_default=False)] = None,
    sensitive: Annotated[list[str] | None, typer.Option(
        "--sensitive", metavar="COLUMN", help="Measure fairness across this column (repeatable).",
        show_default=False)] = None,
    uri: UriOption = None,
) -> None:
    """Compute the task's standard metrics (and per-slice, fairness), store them with the
    version and its plots as artifacts."""
    frame = _read_frame(path)
    with open_yard(uri) as yard:
        version = yard.models.get_version(ref)
        result = yard.models.evaluate(f"{version.name}:{version.version}", frame, label=label,
                                      dataset=dataset, slice_by=slice_by, sensitive=sensitive)
        stored = {e.dataset: e for e in yard.models.store.evaluations(version.name,
                                                                       version.version)}
    table = listing(f"{version.name}:{version.version} on {dataset} ({result.rows:,} rows, "
                    f"{result.task})", ["metric", "value"], right=("value",))
    for metric, value in sorted(result.metrics.items()):
        table.add_row(cell(metric), cell(format_number(value)))
    for column, values in sorted(stored[dataset].evaluation.get("fairness", {}).items()):
        for metric, value in sorted(values.items()):
            table.add_row(cell(f"{metric} ({column})"), cell(format_number(value)))
    show(table)
    for column, slices in result.slices.items():
        names = sorted({m for metrics in slices.values() for m in metrics})
        per = listing(f"By {column}", ["value", *names], right=names)
        for part, metrics in sorted(slices.items()):
            per.add_row(cell(part), *(cell(format_number(metrics.get(m))) for m in names))
        show(per)
    if result.plots:
        say(f"Plots kept with the version: {', '.join(sorted(result.plots))}.")


def _version_ref(ref: str, what: str) -> tuple[str, int]:
    from modelyard.registry.references import parse_ref

    parsed = parse_ref(ref)
    if parsed.version is None:
        raise InvalidInputError(f"name the version to {what}, like {parsed.name}:3",
                                field="version")
    return parsed.name, parsed.version


ReasonOption = Annotated[str, typer.Option("--reason", metavar="TEXT",
                                           help="Why; kept with the decision.")]


@app.command("approve")
def approve(
    ref: Annotated[str, typer.Argument(metavar="REF",
                                       help="The pending candidate: name:3.")],
    reason: ReasonOption = "",
    uri: UriOption = None,
) -> None:
    """Approve a candidate a pipeline left pending: its gates run again against the
    current champion, and it is promoted only if they pass (exit code 1 if not)."""
    name, version = _version_ref(ref, "approve")
    with open_yard(uri) as yard:
        try:
            done = yard.pipelines.approve(name, version, reason=reason)
        except GateFailedError as exc:
            _print_report(exc.details["report"], False)
            raise
    _print_report(done.gate_report, done.passed)
    before = "nothing" if done.champion is None else f"version {done.champion}"
    say(f"Approved: [green]{escape(done.alias)}[/] of {escape(name)} now points at "
        f"version {version} (was {before}).")


@app.command("reject")
def reject(
    ref: Annotated[str, typer.Argument(metavar="REF",
                                       help="The pending candidate: name:3.")],
    reason: ReasonOption = "",
    uri: UriOption = None,
) -> None:
    """Reject a candidate a pipeline left pending: it stays registered, unpromoted."""
    name, version = _version_ref(ref, "reject")
    with open_yard(uri) as yard:
        done = yard.pipelines.reject(name, version, reason=reason)
    say(f"Rejected version {version} of {escape(name)}; {escape(done.alias)} is unchanged.")


@app.command("why")
def why(ref: Annotated[str, typer.Argument(metavar="REF", help="name:3 or name@alias.")],
        as_json: JsonOption = False, uri: UriOption = None) -> None:
    """Why a version is there: the pipeline run that registered it, its trigger (the
    alert and its values, the schedule, by hand), its data, the gates, the decision and
    who approved it; or that it was registered and promoted by hand."""
    with open_yard(uri) as yard:
        found = yard.pipelines.why(ref)
    if as_json:
        _echo_json({"model": found.model, "version": found.version,
                    "decision": None if found.decision is None else found.decision.__dict__,
                    "moves": [e.__dict__ for e in found.moves]})
        return
    for line in found.lines():
        typer.echo(line)


@app.command("reproduce")
def reproduce(ref: Annotated[str, typer.Argument(metavar="REF", help="name:3 or name@alias.")],
              rtol: Annotated[float, typer.Option("--rtol", help="Relative tolerance of the "
                                                  "comparison.")] = 1e-9,
              as_json: JsonOption = False, uri: UriOption = None) -> None:
    """Run again the pipeline version that produced a model version (its stored code,
    params and run time; nothing is registered) and compare both models' predictions on
    the original training set; exit code 1 if they differ beyond --rtol."""
    with open_yard(uri) as yard:
        found = yard.pipelines.reproduce(ref, rtol=rtol)
    if as_json:
        _echo_json(found.to_dict())
    else:
        for line in found.lines():
            typer.echo(line)
    if not found.matches:
        raise typer.Exit(1)
