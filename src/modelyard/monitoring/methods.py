"""The drift tests by name, which one a column gets, and the threshold each is held to.

Tests
    ========================  ==========================  ===============================
    name                      applies to                  statistic
    ========================  ==========================  ===============================
    ``ks``                    numeric, timestamp          Kolmogorov-Smirnov D (p-value)
    ``wasserstein``           numeric, timestamp          Wasserstein-1 / reference std
    ``jensenshannon``         every kind                  Jensen-Shannon distance, base 2
    ``psi``                   every kind                  population stability index
    ``chi2``                  every kind                  Pearson chi-squared (p-value)
    ========================  ==========================  ===============================

    Numeric columns use ``jensenshannon``, ``psi`` and ``chi2`` on the reference's
    quantile bins; categorical and boolean columns on their categories.

Automatic choice
    by kind and the current window's number of values ``n``: numeric and timestamp
    columns get ``ks`` when ``n <= small_sample`` (1,000), else ``wasserstein``;
    categorical and boolean columns get ``chi2``, else ``jensenshannon``. A column whose
    reference is constant gets ``ks`` whatever is asked (a standard deviation of zero
    cannot normalise the Wasserstein distance). Any test can be asked for by name, for
    every column of a kind or for one column.

Thresholds
    Each statistic is put on an *effect* scale on which pure sampling noise shrinks as
    ``1 / sqrt(en)`` with ``en = n N / (n + N)``: ``D``, ``W / std`` and the JS distance
    as they are, ``sqrt(psi)``, and ``sqrt(chi2 / en)``. When the profile was built, the
    reference was cut into chunks of ``m`` rows and each chunk compared with the rest of
    the reference, giving ``z_j = effect_j * sqrt(en_j)``. The threshold for a window of
    ``n`` values is ``max(floor, (mean(z) + sigmas * sd(z)) / sqrt(en))``, turned back
    into the statistic's unit; ``sd(z)`` counts as at least a tenth of ``mean(z)``. The
    scaling assumes the reference's rows vary independently; a reference whose chunks
    differ more than sampling explains (a season, a trend) widens the threshold at every
    size, so that a small window could need more than the statistic can reach.

    Trend bound: with calibration, the threshold is at most the reference's *latest*
    chunk's effect (its last rows against the rest, the drift the reference itself had
    reached by its end) plus the effect that sampling alone exceeds with probability about
    ``alpha`` for the window's ``en`` (:func:`sampling_allowance`). A window as far from
    the reference as its own latest rows, give or take sampling noise, is not drift; one
    that has moved further is. For a stationary reference the latest chunk's effect is
    itself sampling noise, so the bound stays above the ``alpha`` critical value and adds
    (almost) no false alarm. The report names the threshold's source ``trend`` when this
    bound is the one that applies.

    The floor is the smallest effect worth an alarm, so a large window, whose noise is
    tiny, is flagged only for a difference of practical size. Without calibration (a
    reference of fewer than ``5 x 20`` values) ``ks`` and ``chi2`` fall back on their
    asymptotic critical values at ``alpha``, and the other tests on their floors.

Range
    Every threshold is kept strictly below the largest value its statistic can take
    (:func:`maximum`: 1 for ``ks`` and ``jensenshannon``, ``2 (1 - e) ln(1 / e)`` for
    ``psi`` with its zero fill ``e``, ``n + N`` for ``chi2``; the Wasserstein distance has
    no bound), so a window entirely apart from the reference always drifts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from modelyard.errors import InvalidInputError
from modelyard.stats.columns import Kind
from modelyard.stats.drift_calibration import MIN_CHUNKS
from modelyard.stats.drift_statistics import PSI_EPSILON

__all__ = ["FLOORS", "TESTS", "DriftOptions", "DriftTest", "TestName", "Threshold",
           "choose_test", "maximum", "sampling_allowance", "threshold"]

TestName = Literal["ks", "wasserstein", "jensenshannon", "psi", "chi2"]
_NUMERIC: frozenset[Kind] = frozenset({"numeric", "timestamp"})
_ALL: frozenset[Kind] = frozenset({"numeric", "timestamp", "categorical", "boolean"})

FLOORS: dict[str, float] = {
    "ks": 0.04,  # D; a mean shift of 0.1 standard deviation of a normal gives D = 0.04
    "wasserstein": 0.1,  # in reference standard deviations
    "jensenshannon": 0.1,  # base-2 distance
    "psi": 0.1,  # the conventional "moderate shift"
    "chi2": 0.1,  # effect sqrt(chi2 / en): 0.1 is a 5-point move of a 50/50 split
}


@dataclass(frozen=True)
class DriftTest:
    name: TestName
    kinds: frozenset[Kind]
    p_value: bool
    description: str

    def effect(self, statistic: float, en: float) -> float:
        """The statistic on the scale on which sampling noise falls as ``1 / sqrt(en)``."""
        if self.name == "psi":
            return math.sqrt(max(statistic, 0.0))
        if self.name == "chi2":
            return math.sqrt(max(statistic, 0.0) / en)
        return statistic

    def statistic(self, effect: float, en: float) -> float:
        """Inverse of :meth:`effect`."""
        if self.name == "psi":
            return effect * effect
        if self.name == "chi2":
            return effect * effect * en
        return effect


TESTS: dict[str, DriftTest] = {
    "ks": DriftTest("ks", _NUMERIC, True, "Kolmogorov-Smirnov distance"),
    "wasserstein": DriftTest("wasserstein", _NUMERIC, False,
                             "Wasserstein distance / reference standard deviation"),
    "jensenshannon": DriftTest("jensenshannon", _ALL, False, "Jensen-Shannon distance (base 2)"),
    "psi": DriftTest("psi", _ALL, False, "population stability index"),
    "chi2": DriftTest("chi2", _ALL, True, "chi-squared test of homogeneity"),
}


@dataclass(frozen=True)
class DriftOptions:
    """How drift is tested. Every field has a default; see the module docstring."""

    numeric_test: str | None = None  # None: automatic
    categorical_test: str | None = None  # for categorical and boolean columns
    tests: Mapping[str, str] = field(default_factory=dict)  # column -> test
    small_sample: int = 1_000  # automatic choice: ks / chi2 up to this many values
    sigmas: float = 3.0
    floors: Mapping[str, float] = field(default_factory=dict)  # test -> floor, over FLOORS
    share_bound: float = 0.5  # dataset drift when this share of columns drifted, or more
    alpha: float = 0.01  # critical value of ks and chi2 when there is no calibration

    def __post_init__(self) -> None:
        for name, value in (("numeric_test", self.numeric_test),
                            ("categorical_test", self.categorical_test)):
            if value is not None:
                _known(value, name)
        for column, value in self.tests.items():
            _known(value, f"tests[{column!r}]")
        if self.numeric_test is not None and "numeric" not in TESTS[self.numeric_test].kinds:
            raise InvalidInputError(
                f"numeric_test {self.numeric_test!r} does not apply to numeric columns",
                field="numeric_test")
        if self.categorical_test is not None and (
                "categorical" not in TESTS[self.categorical_test].kinds):
            raise InvalidInputError(
                f"categorical_test {self.categorical_test!r} does not apply to categorical "
                f"columns; use one of {', '.join(_names_for('categorical'))}",
                field="categorical_test")
        for name, floor in self.floors.items():
            _known(name, "floors")
            if not (isinstance(floor, int | float) and math.isfinite(floor) and floor >= 0):
                raise InvalidInputError(f"floors[{name!r}] must be a number >= 0, not "
                                        f"{floor!r}", field="floors")
        _check_number("small_sample", self.small_sample, 0, None)
        _check_number("sigmas", self.sigmas, 0, None)
        _check_number("share_bound", self.share_bound, 0, 1, low_open=True)
        _check_number("alpha", self.alpha, 0, 1, low_open=True, high_open=True)

    def floor(self, test: str) -> float:
        return float(self.floors.get(test, FLOORS[test]))


def _known(name: str, field_name: str) -> None:
    if name not in TESTS:
        raise InvalidInputError(f"{field_name}: unknown drift test {name!r}; the tests are "
                                f"{', '.join(TESTS)}", field=field_name)


def _names_for(kind: Kind) -> list[str]:
    return [name for name, test in TESTS.items() if kind in test.kinds]


def _check_number(name: str, value: float, low: float, high: float | None, *,
                  low_open: bool = False, high_open: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = f"{'>' if low_open else '>='} {low:g}"
        if high is not None:
            bounds += f" and {'<' if high_open else '<='} {high:g}"
        raise InvalidInputError(f"{name} must be a number {bounds}, not {value!r}", field=name)


def choose_test(column: str, kind: Kind, n: int, options: DriftOptions, *,
                constant: bool = False) -> DriftTest:
    """The test a column gets (see the module docstring)."""
    asked = options.tests.get(column)
    if asked is not None and kind not in TESTS[asked].kinds:
        raise InvalidInputError(
            f"tests[{column!r}]: {asked!r} does not apply to the {kind} column {column!r}; "
            f"use one of {', '.join(_names_for(kind))}", field="tests", column=column)
    numeric = kind in _NUMERIC
    if asked is None:
        asked = options.numeric_test if numeric else options.categorical_test
    if numeric and constant and asked in (None, "wasserstein"):
        return TESTS["ks"]
    if asked is None:
        small = n <= options.small_sample
        asked = ("ks" if small else "wasserstein") if numeric else (
            "chi2" if small else "jensenshannon")
    return TESTS[asked]


@dataclass(frozen=True)
class Threshold:
    value: float  # in the statistic's unit
    source: Literal["calibration", "trend", "floor", "critical value"]


def maximum(test: DriftTest, n: int, reference: int) -> float:
    """The largest value the statistic can take for windows of ``n`` values against
    ``reference`` values (``inf`` for the Wasserstein distance, which has no bound)."""
    if test.name in ("ks", "jensenshannon"):
        return 1.0
    if test.name == "psi":  # all of each side's share in a bin the other side leaves empty
        return 2.0 * (1.0 - PSI_EPSILON) * math.log(1.0 / PSI_EPSILON)
    if test.name == "chi2":  # complete separation of the 2 x k table
        return float(n + reference)
    return math.inf


def sampling_allowance(test: DriftTest, en: float, alpha: float, *, df: int = 1,
                       spread: float | None = None) -> float | None:
    """The effect (see :meth:`DriftTest.effect`) that sampling alone exceeds with
    probability about ``alpha`` when the rows are independent, at ``en = n N / (n + N)``.

    ``ks``: Smirnov's critical value. ``chi2``, ``psi`` and ``jensenshannon``: from the
    chi-squared critical value at ``df`` degrees of freedom (``en * psi`` and
    ``8 ln 2 * en * js**2`` both tend to Pearson's statistic for small differences).
    ``wasserstein``: ``1.5`` times Kolmogorov's critical value times ``spread``, the
    reference's ``integral of sqrt(u (1 - u)) dQ(u)`` in standard deviations (the mean of
    ``sqrt(en) W`` is ``sqrt(2 / pi)`` times it); None without ``spread``.
    """
    if test.name == "ks":
        from scipy.stats import kstwo

        return float(kstwo.isf(alpha, max(1, round(en))))
    if test.name == "wasserstein":
        if spread is None or not math.isfinite(spread):
            return None
        from scipy.stats import kstwobign

        return 1.5 * float(kstwobign.isf(alpha)) * spread / math.sqrt(en)
    from scipy.stats import chi2

    critical = float(chi2.isf(alpha, max(1, df))) / en
    if test.name == "jensenshannon":
        return math.sqrt(critical / (8.0 * math.log(2.0)))
    return math.sqrt(critical)


def threshold(test: DriftTest, chunk_rows: Sequence[int], chunk_statistics: Sequence[float],
              n: int, reference: int, options: DriftOptions, *, df: int = 1,
              spread: float | None = None) -> Threshold:
    """The value above which the statistic of a window of ``n`` values means drift.

    ``chunk_rows`` / ``chunk_statistics`` are the reference's calibration for this test
    (empty when there is none), in the reference's row order; ``reference`` the number of
    reference values, ``df`` the degrees of freedom of the bins or categories compared
    (non-empty on either side, less one), ``spread`` the reference's Wasserstein spread
    (see :func:`sampling_allowance`). The module docstring gives the rule.
    """
    en = n * reference / (n + reference)
    floor = options.floor(test.name)
    noise, source = 0.0, "floor"
    if len(chunk_statistics) >= MIN_CHUNKS:
        ens = [m * (reference - m) / reference for m in chunk_rows]
        z = [test.effect(value, e) * math.sqrt(e)
             for value, e in zip(chunk_statistics, ens, strict=True)]
        mean = sum(z) / len(z)
        sd = math.sqrt(sum((v - mean) ** 2 for v in z) / (len(z) - 1))
        noise = (mean + options.sigmas * max(sd, 0.1 * mean)) / math.sqrt(en)
        source = "calibration"
        allowance = sampling_allowance(test, en, options.alpha, df=df, spread=spread)
        if allowance is not None:
            cap = test.effect(chunk_statistics[-1], ens[-1]) + allowance
            if cap < noise:
                noise, source = cap, "trend"
    elif test.name in ("ks", "chi2") and (test.name == "ks" or df >= 1):
        noise = sampling_allowance(test, en, options.alpha, df=df) or 0.0
        source = "critical value"
    if floor >= noise:
        noise, source = floor, "floor"
    value = test.statistic(noise, en)
    # strictly inside the attainable range, so that a complete separation always drifts
    return Threshold(min(value, maximum(test, n, reference) * (1.0 - 1e-9)),
                     source)  # type: ignore[arg-type]
