"""What a pipeline declares beside its function: the shadow trial of the ``shadow`` policy
(:class:`Shadow`) and the evaluation window champion and challenger are scored on
(:class:`EvaluationWindow`).

::

    @modelyard.pipeline(name="claims_retrain", model="claims-model", policy="shadow",
                        shadow=modelyard.Shadow(duration="1d", requests=2000),
                        evaluation=modelyard.EvaluationWindow(
                            ["claim_stats:*"], label="claim_value", labels="claim_labels",
                            window="30d", from_prediction_log=True))

Both are frozen, validated when built (an error names the field), and carried in the
pipeline's spec as plain JSON, so they count for its version.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelyard.errors import InvalidDefinitionError

__all__ = ["EvaluationWindow", "Shadow", "duration_ms"]


_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(text: object, what: str) -> int:
    """``"1h"`` -> milliseconds (units s, m, h, d)."""
    if not isinstance(text, str) or not (m := _DURATION.match(text.strip())) or not int(m[1]):
        raise InvalidDefinitionError(
            f"{what} {text!r} is not valid: write a positive whole number and a unit, like "
            "30m, 1h or 1d (units: s, m, h, d)", field=what, value=repr(text))
    return int(m[1]) * _UNIT_MS[m[2]]


def _whole(value: object, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidDefinitionError(f"{what} must be a whole number of at least {minimum}, "
                                     f"not {value!r}", field=what)
    return value


def _fraction(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value) or value < 0:
        raise InvalidDefinitionError(f"{what} must be a number of at least 0, not {value!r}",
                                     field=what)
    return float(value)


@dataclass(frozen=True)
class Shadow:
    """How the ``shadow`` policy tries a candidate live before deciding on it.

    The candidate that passes the gates offline is put on ``alias`` (``shadow`` by default,
    ``canary`` with ``canary_percent``): a server started with ``--shadow MODEL@shadow``
    sends it a copy of every request, one started with ``--canary MODEL@canary`` lets it
    answer ``canary_percent`` of them. The trial ends after ``duration`` or once the
    candidate answered ``requests`` requests, whichever comes first (at least one of the two
    is given). Its answers and the champion's, in the prediction log, are then compared:

    - shadow: on the same requests (agreement of the predictions, and the model's metrics
      on the requests whose labels have arrived); canary: each on the requests it answered;
    - the model's declared metric and no-regression gates run on those live metrics (on
      the labelled requests, as data set ``live``), when at least ``min_labelled`` of them
      have labels;
    - the candidate's error rate may exceed the champion's by at most ``max_error_rate``
      (0.01: one point); with ``max_latency_ratio``, its p95 latency may be at most that
      many times the champion's; with ``min_agreement`` (shadow only), that share of the
      rows must get the same prediction (within ``agreement_rtol`` for numbers).

    Fewer than ``min_requests`` compared requests, a failed check, or the champion moved by
    someone else meanwhile: the candidate is dropped; else it is promoted.
    """

    duration: str | None = None
    requests: int | None = None
    canary_percent: float | None = None
    alias: str | None = None
    min_requests: int = 1
    min_labelled: int = 1
    max_error_rate: float = 0.01
    max_latency_ratio: float | None = None
    min_agreement: float | None = None
    agreement_rtol: float = 1e-6

    def __post_init__(self) -> None:
        from modelyard.registry.references import check_alias

        if self.duration is None and self.requests is None:
            raise InvalidDefinitionError(
                "a shadow trial needs an end: give duration (like '1d') or requests (a "
                "number of requests the candidate answers), or both", field="shadow")
        if self.duration is not None:
            duration_ms(self.duration, "shadow duration")
        if self.requests is not None:
            _whole(self.requests, "shadow requests")
        if self.canary_percent is not None:
            share = _fraction(self.canary_percent, "canary_percent")
            if not 0 < share <= 100:
                raise InvalidDefinitionError(
                    f"canary_percent must be above 0 and at most 100, not {share:g}",
                    field="canary_percent")
            object.__setattr__(self, "canary_percent", share)
        if self.alias is not None:
            check_alias(self.alias)
        _whole(self.min_requests, "min_requests")
        _whole(self.min_labelled, "min_labelled")
        object.__setattr__(self, "max_error_rate",
                           _fraction(self.max_error_rate, "max_error_rate"))
        if self.max_latency_ratio is not None:
            object.__setattr__(self, "max_latency_ratio",
                               _fraction(self.max_latency_ratio, "max_latency_ratio"))
        if self.min_agreement is not None:
            agreement = _fraction(self.min_agreement, "min_agreement")
            if agreement > 1 or self.canary_percent is not None:
                raise InvalidDefinitionError(
                    "min_agreement is a share from 0 to 1, compared on the same requests: "
                    "a shadow trial only (a canary answers other requests than the "
                    "champion)", field="min_agreement")
            object.__setattr__(self, "min_agreement", agreement)
        object.__setattr__(self, "agreement_rtol",
                           _fraction(self.agreement_rtol, "agreement_rtol"))

    @property
    def mode(self) -> str:
        return "shadow" if self.canary_percent is None else "canary"

    @property
    def trial_alias(self) -> str:
        """The alias the candidate holds during the trial."""
        return self.alias or self.mode

    @property
    def duration_ms(self) -> int | None:
        return None if self.duration is None else duration_ms(self.duration, "duration")

    def spec(self) -> dict[str, Any]:
        return {"duration": self.duration, "requests": self.requests,
                "canary_percent": self.canary_percent, "alias": self.alias,
                "min_requests": self.min_requests, "min_labelled": self.min_labelled,
                "max_error_rate": self.max_error_rate,
                "max_latency_ratio": self.max_latency_ratio,
                "min_agreement": self.min_agreement, "agreement_rtol": self.agreement_rtol}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Shadow:
        return cls(**{k: spec[k] for k in cls.__dataclass_fields__ if k in spec})


@dataclass(frozen=True)
class EvaluationWindow:
    """The frozen data a pipeline's candidate and champion are both scored on, unless the
    run hands its own to ``ctx.register(..., evaluation=...)``.

    The snapshot is cut as of the run's time (``ctx.now``) over the last ``window`` before
    it. With ``labels`` (a source of the feature store holding the entity keys, its
    timestamp and the ``label`` column) and ``features``, it is a point-in-time training set
    rebuilt from the labelled events of the window. With ``from_prediction_log``, the
    model's logged predictions of the window whose labels have arrived are added (their
    inputs as served, and their label). Both versions are scored on exactly those rows, and
    per ``slices`` (columns of the rows); the decision records the as-of time, the feature
    versions, the tables' commits, the row counts and a hash of the rows.
    """

    features: Sequence[str] | str = ()
    label: str | None = None
    window: str = "30d"
    labels: str | None = None
    from_prediction_log: bool = False
    slices: Sequence[str] = ()

    def __post_init__(self) -> None:
        features = [self.features] if isinstance(self.features, str) else list(self.features)
        if not all(isinstance(f, str) and f for f in features):
            raise InvalidDefinitionError(
                "evaluation features are feature references like 'claim_stats:*'",
                field="evaluation.features")
        object.__setattr__(self, "features", tuple(features))
        if bool(features) != (self.labels is not None):
            raise InvalidDefinitionError(
                "an evaluation training set needs both its features and the labels source "
                "its rows come from (labels='claim_labels', a source with the entity keys, "
                "the timestamp and the label)", field="evaluation.labels")
        if self.labels is not None and (not isinstance(self.labels, str) or not self.labels):
            raise InvalidDefinitionError("labels names a source of the feature store",
                                         field="evaluation.labels")
        if not features and not self.from_prediction_log:
            raise InvalidDefinitionError(
                "an evaluation needs rows: a training set (labels= and features=) rebuilt "
                "as of the run's time, or from_prediction_log=True, or both",
                field="evaluation.features")
        if not isinstance(self.label, str) or not self.label:
            raise InvalidDefinitionError("an evaluation names its label column (label=...)",
                                         field="evaluation.label")
        duration_ms(self.window, "evaluation window")
        if not isinstance(self.from_prediction_log, bool):
            raise InvalidDefinitionError("from_prediction_log is True or False",
                                         field="evaluation.from_prediction_log")
        slices = [self.slices] if isinstance(self.slices, str) else list(self.slices)
        if not all(isinstance(s, str) and s for s in slices):
            raise InvalidDefinitionError("evaluation slices are column names",
                                         field="evaluation.slices")
        object.__setattr__(self, "slices", tuple(slices))

    @property
    def window_ms(self) -> int:
        return duration_ms(self.window, "evaluation window")

    def spec(self) -> dict[str, Any]:
        return {"features": list(self.features), "label": self.label, "window": self.window,
                "labels": self.labels, "from_prediction_log": self.from_prediction_log,
                "slices": list(self.slices)}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> EvaluationWindow:
        return cls(tuple(spec.get("features", ())), spec.get("label"),
                   spec.get("window", "30d"), spec.get("labels"),
                   bool(spec.get("from_prediction_log", False)), tuple(spec.get("slices", ())))
