"""Evaluating versions and promoting them through the model's gates.

Gates come from three places, all applied: those declared in code (``yard.models.set_gates``,
stored with the model), those under ``[models.<name>.gates]`` in ``modelyard.toml``, and those
passed to one ``promote`` call. Metric, regression and fairness gates read the evaluations
stored with the versions (``evaluate``, or ``promote(data={...})`` which evaluates the
candidate and the current holder first).

The alias moves with a compare-and-set against the holder the gates were run against; if
another writer moved it meanwhile, the gates run again against the new holder. So the alias
never points at a version that failed its gates against the version it replaced, and every
move is in the history.
"""

from __future__ import annotations

import time
import tomllib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.registry import (
    AliasAuthority,
    AliasEvent,
    EvaluationRecord,
    GateReportRecord,
    VersionRecord,
)
from modelyard.errors import ConflictError, GateFailedError, InvalidInputError
from modelyard.idempotency import guard
from modelyard.registry.nulls import model_input
from modelyard.registry.references import check_alias, check_name
from modelyard.tracking.environment import current_user

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.registry.evaluation import Evaluation
    from modelyard.registry.gates import Gate, GateReport, GateResult
    from modelyard.registry.service import ModelRegistry

DEFAULT_DATASET = "default"
_ATTEMPTS = 8


@dataclass(frozen=True)
class Promotion:
    """A promotion that moved the alias (``forced``: past failed gates, with a reason)."""

    name: str
    version: int
    alias: str
    previous: int | None
    report: GateReport
    report_id: str
    forced: bool
    event: AliasEvent


# --- evaluation ---------------------------------------------------------------------------

def evaluate_version(registry: ModelRegistry, record: VersionRecord, data: Any, *,
                     label: str | None, dataset: str, slice_by: str | Sequence[str] | None,
                     sensitive: str | Sequence[str] | None) -> Evaluation:
    """Evaluate a version on ``data`` and store the result under ``dataset`` (with fairness
    measurements for each ``sensitive`` column, and the plots as artifacts)."""
    from modelyard.features.training import to_arrow
    from modelyard.registry.evaluation import evaluate
    from modelyard.registry.fairness import fairness_metrics

    frame = to_arrow(data, "data").to_pandas()
    label = label or record.spec.get("label")
    if not label:
        raise InvalidInputError("name the label column (label=...): the version was not "
                                "registered with a training set that has one", field="label")
    if label not in frame.columns:
        raise InvalidInputError(f"the evaluation data has no label column {label!r}",
                                field="label")
    features = _input_columns(record, frame, label, slice_by, sensitive)
    model = registry.load(record.name, record.version)
    result = evaluate(model, frame, label, features=features, slice_by=slice_by,
                      name=f"{record.name}:{record.version}")
    fairness: dict[str, dict[str, float]] = {}
    columns = [sensitive] if isinstance(sensitive, str) else list(sensitive or [])
    if columns:
        predictions = model.predict(model_input(model, frame[features]))
        for column in columns:
            if column not in frame.columns:
                raise InvalidInputError(
                    f"the sensitive attribute {column!r} is not a column of the evaluation "
                    f"data (columns: {', '.join(map(str, frame.columns))})", field="sensitive")
            fairness[column] = fairness_metrics(frame[label], predictions, frame[column],
                                                result.task)
    plots = {name: registry.artifacts.put_bytes(png)[0] for name, png in result.plots.items()}
    body = result.to_dict()
    body["fairness"] = fairness
    registry.store.save_evaluation(EvaluationRecord(record.name, record.version,
                                                    check_dataset(dataset), body, plots))
    return result


def check_dataset(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > 128:
        raise InvalidInputError(f"a data set name is a non-empty string of at most 128 "
                                f"characters, got {name!r}", field="dataset")
    return name


def _input_columns(record: VersionRecord, frame: pd.DataFrame, label: str,
                   slice_by: str | Sequence[str] | None,
                   sensitive: str | Sequence[str] | None) -> list[str]:
    signature = record.spec.get("signature")
    if signature:
        wanted = [c["name"] for c in signature["inputs"]]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise InvalidInputError(
                f"the evaluation data lacks the model's input column(s) "
                f"{', '.join(missing)} (its signature)", field="data", missing=missing)
        return wanted
    skip = {label}
    for extra in (slice_by, sensitive):
        skip.update([extra] if isinstance(extra, str) else list(extra or []))
    return [c for c in frame.columns if c not in skip]


# --- gates --------------------------------------------------------------------------------

def gates_to_store(gates: Sequence[Gate]) -> list[dict[str, Any]]:
    from modelyard.registry.gates import BehaviourGate

    for gate in gates:
        if isinstance(gate, BehaviourGate) and not isinstance(gate.test, str):
            raise InvalidInputError(
                "a behaviour test kept with the model is named by its dotted path "
                "('package.module:function'); pass a function to promote(gates=[...]) "
                "instead", field="gates")
    return [gate.to_dict() for gate in gates]


def declared_gates(registry: ModelRegistry, name: str) -> list[Gate]:
    """The model's gates from code and from ``modelyard.toml``."""
    from modelyard.registry.gates import gate_from_dict, gates_from_config

    found = [gate_from_dict(d) for d in registry.store.get_model(name).gates]
    if registry.project_root is not None:
        path = registry.project_root / "modelyard.toml"
        if path.is_file():
            with path.open("rb") as fh:
                config = tomllib.load(fh)
            section = config.get("models", {}).get(name, {}).get("gates")
            if section is not None:
                found += gates_from_config(section)
    return found


@dataclass(frozen=True)
class GatePreview:
    """What promoting ``version`` to ``alias`` would meet now: the alias's holder and every
    declared gate's verdict against it, on the evaluations already stored."""

    name: str
    version: int
    alias: str
    holder: int | None
    report: GateReport


def preview(registry: ModelRegistry, name: str, version: int, alias: str) -> GatePreview:
    """Run the model's declared gates for ``version`` against the alias's holder, on the
    stored evaluations, without storing a report or moving anything."""
    check_name(name)
    check_alias(alias)
    record = registry.store.get_version(name, version)
    holder = registry.store.aliases(name).get(alias)
    return GatePreview(name, version, alias, holder,
                       run_gates(registry, record, holder, alias,
                                 declared_gates(registry, name)))


def promote(registry: ModelRegistry, name: str, version: int, alias: str, *, force: bool,
            reason: str, actor: str | None, data: Mapping[str, Any] | None,
            extra_gates: Sequence[Gate], idempotency_key: str | None = None) -> Promotion:
    check_name(name)
    check_alias(alias)
    if force and not reason.strip():
        raise InvalidInputError("a forced promotion needs a reason (reason=...), which the "
                                "alias history keeps", field="reason")
    write = guard(registry.writes, "promote", idempotency_key, name=name, version=version,
                  alias=alias, force=force)
    done = write.replay()
    if done is not None:
        return _replayed(registry, done)
    record = registry.store.get_version(name, version)
    gates = [*declared_gates(registry, name), *extra_gates]
    evaluated: set[int] = set()
    for _ in range(_ATTEMPTS):
        holder = registry.store.aliases(name).get(alias)
        if holder == version:
            raise ConflictError(f"version {version} of model {name!r} already holds alias "
                                f"{alias!r}", model=name, version=version, alias=alias)
        for number in {version, holder} - evaluated - {None}:
            assert number is not None
            _evaluate_on(registry, registry.store.get_version(name, number), data, gates)
            evaluated.add(number)
        report = run_gates(registry, record, holder, alias, gates)
        report_id = uuid.uuid4().hex
        forced = force and not report.passed
        registry.store.save_gate_report(GateReportRecord(
            report_id, name, version, alias, report.passed, forced, report.to_dict(),
            _now_ms()))
        if not report.passed and not force:
            raise GateFailedError(
                f"version {version} of model {name!r} was not promoted to {alias!r}:\n"
                f"{report.summary()}", model=name, version=version, alias=alias,
                report=report.to_dict(), failed=[r.gate for r in report.failures],
                report_id=report_id)
        event = AliasEvent(name, alias, holder, version, "force" if forced else "promote",
                           actor or current_user(), reason, _now_ms(), report_id)
        # the key lands in the move's transaction: a retry finds the move, or nothing
        if registry.store.move_alias(event, done=write.completion(
                name=name, version=version, alias=alias, report_id=report_id)):
            return Promotion(name, version, alias, holder, report, report_id, forced, event)
    raise ConflictError(f"alias {alias!r} of model {name!r} kept moving during the "
                        "promotion; try again", model=name, alias=alias)


def promote_remotely(registry: ModelRegistry, authority: AliasAuthority, name: str,
                     version: int, alias: str, *, force: bool, reason: str,
                     data: Mapping[str, Any] | None, extra_gates: Sequence[Gate],
                     idempotency_key: str | None, actor: str | None) -> Promotion:
    """The same promotion, decided by the server behind ``authority`` (its gates, its
    stored evaluations). With ``data``, the candidate and the current holder are evaluated
    here first and their evaluations stored, as a local promotion does."""
    from modelyard.backends.metadata.wire import decode
    from modelyard.registry.gates import BehaviourGate, GateReport

    check_name(name)
    check_alias(alias)
    if any(isinstance(g, BehaviourGate) and not isinstance(g.test, str) for g in extra_gates):
        raise InvalidInputError(
            "the server runs the gates, so a behaviour test must be named by a dotted path "
            "the server can import ('package.module:function'), not given as a function",
            field="gates")
    if data:
        gates = [*declared_gates(registry, name), *extra_gates]
        holder = registry.store.aliases(name).get(alias)
        for number in sorted(n for n in {version, holder} if n is not None):
            _evaluate_on(registry, registry.store.get_version(name, number), data, gates)
    found = authority.promote(name, version, alias, force=force, reason=reason,
                              gates=gates_to_store(extra_gates),
                              idempotency_key=idempotency_key, actor=actor)
    event = decode(AliasEvent, found["event"], "event")
    return Promotion(name, version, alias, found["previous"],
                     GateReport.from_dict(found["report"]), str(found["report_id"]),
                     bool(found["forced"]), event)


def promotion_wire(promotion: Promotion) -> dict[str, Any]:
    """A promotion as the server answers it (:func:`promote_remotely` reads it back)."""
    from modelyard.backends.metadata.wire import encode

    return {"previous": promotion.previous, "report": promotion.report.to_dict(),
            "report_id": promotion.report_id, "forced": promotion.forced,
            "event": encode(promotion.event)}


def _replayed(registry: ModelRegistry, done: Mapping[str, Any]) -> Promotion:
    """The promotion an idempotency key recorded, read back from the alias history and
    the gate reports."""
    from modelyard.registry.gates import GateReport

    name, version, alias = str(done["name"]), int(done["version"]), str(done["alias"])
    event = next(e for e in registry.store.alias_history(name, alias)
                 if e.id == int(done["event_id"]))
    stored = next(r for r in registry.store.gate_reports(name, version)
                  if r.report_id == done["report_id"])
    return Promotion(name, version, alias, event.from_version,
                     GateReport.from_dict(stored.report), stored.report_id, stored.forced,
                     event)


def promotion_key(registry: ModelRegistry, name: str, version: int, alias: str,
                  **inputs: Any) -> str:
    """An idempotency key for promoting ``version`` to ``alias`` (what the CLI derives):
    the request's content and the alias history the promotion starts from, so a retry after
    the move lands finds it, while a later promotion of the same version (after a rollback,
    say) is a new write."""
    from modelyard.idempotency import fingerprint

    history = registry.store.alias_history(check_name(name), check_alias(alias))
    if history and history[-1].to_version == version:
        history = history[:-1]  # the move a retry is looking for
    base = history[-1].id if history else 0
    return "promote-" + fingerprint("promote", name=name, version=version, alias=alias,
                                    since=base, **inputs)


def _evaluate_on(registry: ModelRegistry, record: VersionRecord,
                 data: Mapping[str, Any] | None, gates: Sequence[Gate]) -> None:
    from modelyard.registry.gates import FairnessGate

    for dataset, frame in (data or {}).items():
        sensitive = sorted({g.sensitive for g in gates if isinstance(g, FairnessGate)
                            and (g.data or DEFAULT_DATASET) == dataset})
        evaluate_version(registry, record, frame, label=None, dataset=dataset,
                         slice_by=None, sensitive=sensitive)


def run_gates(registry: ModelRegistry, record: VersionRecord, holder: int | None, alias: str,
              gates: Sequence[Gate]) -> GateReport:
    from modelyard.registry import gates as g

    name = record.name
    mine = {e.dataset: e.evaluation for e in registry.store.evaluations(name, record.version)}
    theirs = ({} if holder is None else
              {e.dataset: e.evaluation for e in registry.store.evaluations(name, holder)})
    model: list[Any] = []  # loaded on first use
    results: list[GateResult] = []
    for gate in gates:
        dataset = getattr(gate, "data", None) or DEFAULT_DATASET
        if isinstance(gate, g.MetricGate):
            found = mine.get(dataset)
            results.append(_missing(gate, "metric", name, record.version, dataset)
                           if found is None else g.check_metric(gate, found["metrics"]))
        elif isinstance(gate, g.RegressionGate):
            found = mine.get(dataset)
            if found is None:
                results.append(_missing(gate, "regression", name, record.version, dataset))
                continue
            other = theirs.get(dataset)
            if holder is not None and other is None:
                results.append(_missing(gate, "regression", name, holder, dataset))
                continue
            results.append(g.check_regression(
                gate, found["task"], found["metrics"],
                None if other is None else other["metrics"], f"{alias} (version {holder})"))
        elif isinstance(gate, g.FairnessGate):
            found = mine.get(dataset)
            measured = None if found is None else found.get("fairness", {}).get(gate.sensitive)
            results.append(
                _missing(gate, "fairness", name, record.version, dataset,
                         f" with sensitive={gate.sensitive!r}")
                if measured is None else g.check_fairness(gate, measured))
        elif isinstance(gate, g.BehaviourGate):
            if not model:
                model.append(registry.load(name, record.version))
            results.append(g.run_behaviour(gate, model[0]))
        elif isinstance(gate, g.SignatureGate):
            results.append(g.check_signature(_signature_problems(registry, record, holder)))
    return g.GateReport(tuple(results))


def _signature_problems(registry: ModelRegistry, record: VersionRecord,
                        holder: int | None) -> list[str]:
    from modelyard.registry.signature import Signature

    if holder is None:
        return []
    held = registry.store.get_version(record.name, holder).spec.get("signature")
    mine = record.spec.get("signature")
    if held is None:
        return []
    if mine is None:
        return [f"version {record.version} has no signature; version {holder} has one"]
    return Signature.from_dict(mine).compatible_with(Signature.from_dict(held))


def _missing(gate: Gate, kind: str, name: str, version: int, dataset: str,
             extra: str = "") -> GateResult:
    from modelyard.registry.gates import GateResult

    return GateResult(
        gate.name, kind, False, {}, {},
        f"version {version} has no evaluation on data set {dataset!r}{extra}: run "
        f"yard.models.evaluate('{name}:{version}', data, dataset={dataset!r}"
        f"{extra and ', sensitive=...'}) or pass promote(data={{{dataset!r}: ...}})")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
