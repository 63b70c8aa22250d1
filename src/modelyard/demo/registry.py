"""The demo's registry step: the claims model's versions, its gates, promotions, a rollback.

The best candidate becomes version 1 of ``claims-model`` and the first holder of
``production``. Then three challengers meet the model's gates, declared once in code:

- the weakest candidate (the linear model) is refused for its regression against production;
- the best recipe trained again on the legacy book of business, which held no drivers under
  25, is refused by the fairness gate: its error for young drivers is far above the others';
- the runner-up passes every gate and takes ``production``.

Last, one command rolls ``production`` back to version 1, as an operator would after a bad
release. Every version is registered with its run and the training set's lineage, and
evaluated on the validation months (with an age band as the sensitive attribute) before any
promotion is asked for, so the gates read stored evaluations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from modelyard.demo.candidates import FEATURES, default_candidates
from modelyard.demo.state import DemoState, need
from modelyard.demo.training import CandidateResult, train_candidate
from modelyard.errors import GateFailedError, InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.client import Yard
    from modelyard.registry.gates import Gate

MODEL = "claims-model"
ALIAS = "production"
DATASET = "validation"
SENSITIVE = "age_band"
AGE_BANDS = ((0, 25, "under 25"), (25, 200, "25 and over"))
LEGACY_MIN_AGE = 25  # the legacy book insured no one younger
MIN_R2 = 0.5
MAX_R2_DROP = 0.025
MAX_ERROR_GAP = 450.0  # mean absolute error, between the best- and worst-served age band
EXAMPLE_ROWS = 200


@dataclass(frozen=True)
class Attempt:
    """One promotion asked for: which version, why it was a candidate, what the gates said."""

    version: int
    candidate: str
    role: str  # the part it plays in the story
    promoted: bool
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # kind, gate, detail
    metrics: dict[str, float] = field(default_factory=dict)
    fairness: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RegistryOutcome:
    attempts: list[Attempt]
    rollback: tuple[int, int | None] | None  # from version, to version; None: not needed
    production: int | None
    lineage_sources: list[str]


def gates() -> list[Gate]:
    """The gates every promotion of the claims model must pass."""
    from modelyard.registry.gates import FairnessGate, MetricGate, RegressionGate, SignatureGate

    return [
        MetricGate("r2", ">=", MIN_R2, data=DATASET),
        RegressionGate(("r2",), max_drop=MAX_R2_DROP, data=DATASET),
        FairnessGate(SENSITIVE, max_error_gap=MAX_ERROR_GAP, data=DATASET),
        SignatureGate(),
    ]


def with_age_band(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` plus the sensitive column the fairness gate groups by."""
    import numpy as np

    ages = frame["age"].to_numpy()
    bands = np.select([(ages >= low) & (ages < high) for low, high, _ in AGE_BANDS],
                      [name for _, _, name in AGE_BANDS], default="unknown")
    return frame.assign(**{SENSITIVE: bands})


def manage_models(state: DemoState, progress: Callable[[str], None]) -> None:
    """Register, evaluate and promote the claims model's versions, then roll back once."""
    yard, split = state.yard, need(state.split, "split")
    ranked = sorted(state.results, key=lambda r: r.metrics["r2"], reverse=True)
    if len(ranked) < 3:
        raise InvalidInputError("the registry step needs at least three trained candidates",
                                field="candidates")
    yard.models.set_gates(MODEL, gates())
    valid = with_age_band(split.valid)
    example = split.train[list(FEATURES)].sample(
        min(EXAMPLE_ROWS, len(split.train)), random_state=state.config.seed)

    def attempt(result: CandidateResult, role: str) -> Attempt:
        progress(f"registering {result.name}")
        record = yard.models.register(
            result.model, MODEL, training_set=state.training_set, run_id=result.run_id,
            input_example=example, description="Predicts a claim's settled value.")
        progress(f"evaluating {MODEL}:{record.version} on the validation months")
        evaluation = yard.models.evaluate(f"{MODEL}:{record.version}", valid, dataset=DATASET,
                                          sensitive=SENSITIVE)
        progress(f"promoting {MODEL}:{record.version} to {ALIAS}")
        fairness = evaluation_fairness(yard, record.version)
        try:
            yard.models.promote(MODEL, record.version, ALIAS,
                                reason=f"demo: {result.name} as {role}")
        except GateFailedError as refused:
            failed = [(r["kind"], r["gate"], r["detail"])
                      for r in refused.details["report"]["results"] if not r["passed"]]
            return Attempt(record.version, result.name, role, False, failed,
                           dict(evaluation.metrics), fairness)
        return Attempt(record.version, result.name, role, True, [],
                       dict(evaluation.metrics), fairness)

    held_before = yard.models.aliases(MODEL).get(ALIAS) is not None  # an earlier demo's
    attempts = [attempt(ranked[0], "the best candidate")]
    attempts.append(attempt(ranked[-1], "the weakest candidate"))
    attempts.append(attempt(_legacy_candidate(state, ranked[0]), "trained on the legacy book"))
    attempts.append(attempt(ranked[1], "the runner-up"))
    rollback: tuple[int, int | None] | None = None
    if sum(a.promoted for a in attempts) >= 2 or (attempts[-1].promoted and held_before):
        progress(f"rolling {ALIAS} back")
        before = yard.models.aliases(MODEL)[ALIAS]
        event = yard.models.rollback(MODEL, ALIAS, reason="demo: undo the last release")
        rollback = (before, event.to_version)
    lineage = yard.models.lineage(MODEL, attempts[0].version)
    state.registry = RegistryOutcome(
        attempts, rollback, yard.models.aliases(MODEL).get(ALIAS),
        sorted(str(source["name"]) for source in lineage.sources))
    if state.registry.production is not None:
        state.parent.set_tag("demo.production", f"{MODEL}:{state.registry.production}")


def evaluation_fairness(yard: Yard, version: int) -> dict[str, float]:
    """The fairness measurements stored with a version's validation evaluation."""
    for record in yard.models.store.evaluations(MODEL, version):
        if record.dataset == DATASET:
            found = record.evaluation.get("fairness", {}).get(SENSITIVE, {})
            return {str(k): float(v) for k, v in found.items()}
    return {}


def _legacy_candidate(state: DemoState, best: CandidateResult) -> CandidateResult:
    """The best recipe, fitted again on the claims of drivers aged 25 or more only."""
    split = need(state.split, "split")
    recipe = {c.name: c for c in default_candidates(state.config.seed)}[best.name]
    legacy = replace(recipe, name=f"{best.name}-legacy-book")
    train = split.train[split.train["age"] >= LEGACY_MIN_AGE].reset_index(drop=True)
    return train_candidate(
        state.yard, state.experiment, legacy, replace(split, train=train),
        parent=state.parent,
        data_params={**state.data_params(), "train.filter": f"age >= {LEGACY_MIN_AGE}"},
        training_set=state.training_set)
