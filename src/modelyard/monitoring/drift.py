"""Drift of a window of production data against a reference.

:func:`detect_drift` needs only the reference's profile; :func:`compare_frames` takes the
raw reference as well and computes ``ks`` with ``scipy.stats.ks_2samp`` and ``wasserstein``
exactly between the two raw samples (:func:`modelyard.stats.drift_statistics.wasserstein_samples`,
equal to ``scipy.stats.wasserstein_distance``; the other tests read the same bin counts
either way, so they agree exactly). The profile path's ``ks`` statistic is
within ``1 / (sketch_size - 1) + 1 / N`` of the raw one, and its ``wasserstein`` within the
distance between the raw reference and its sketch (see :mod:`modelyard.stats.drift_statistics`).
Which test a column gets and the threshold it is held to are described in
:mod:`modelyard.monitoring.methods`; the result rows in :mod:`modelyard.monitoring.report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError
from modelyard.monitoring.methods import DriftOptions, DriftTest, choose_test, threshold
from modelyard.monitoring.report import ColumnDrift, DriftReport, Status, Summary
from modelyard.stats import drift_statistics as stats
from modelyard.stats.columns import (
    Columns,
    Frame,
    as_columns,
    counts_by_category,
    natural_kind,
    numeric_values,
    prediction_columns,
)
from modelyard.stats.profile import ColumnProfile, ReferenceProfile, build_profile

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

__all__ = ["QUANTILES", "column_drift", "compare_frames", "detect_drift"]

QUANTILES: dict[str, float] = {"p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}


def detect_drift(profile: ReferenceProfile, current: Frame, predictions: Any = None, *,
                 columns: Sequence[str] | None = None,
                 options: DriftOptions | None = None) -> DriftReport:
    """Compare ``current`` (and the model's ``predictions`` on it) with the reference
    ``profile``. ``columns`` restricts the comparison to some of the profile's columns."""
    return _drift(profile, current, predictions, columns, options or DriftOptions(), None, None)


def compare_frames(reference: Frame, current: Frame, *, reference_predictions: Any = None,
                   current_predictions: Any = None, columns: Sequence[str] | None = None,
                   kinds: Mapping[str, str] | None = None,
                   options: DriftOptions | None = None) -> DriftReport:
    """Compare two raw frames: the reference is profiled (for its bins, categories and
    calibration), then ``ks`` and ``wasserstein`` read its raw values."""
    profile = build_profile(reference, reference_predictions, columns=columns, kinds=kinds)
    raw = as_columns(reference, "reference")
    raw_predictions = None
    if reference_predictions is not None:
        raw_predictions = prediction_columns(reference_predictions, raw.rows,
                                             "reference_predictions")
    return _drift(profile, current, current_predictions, columns, options or DriftOptions(),
                  raw, raw_predictions)


def _drift(profile: ReferenceProfile, current: Frame, predictions: Any,
           columns: Sequence[str] | None, options: DriftOptions, raw: Columns | None,
           raw_predictions: Columns | None) -> DriftReport:
    window = as_columns(current, "current")
    if window.rows == 0:
        raise InvalidInputError("the current window has no rows; drift needs data",
                                field="current")
    names = _selected(profile, columns)
    unknown = [c for c in options.tests if c not in profile.columns
               and c not in profile.predictions]
    if unknown:
        raise InvalidInputError(f"options.tests names unknown column(s) "
                                f"{', '.join(map(repr, unknown))}", field="tests")
    rows = tuple(_row(profile.columns[name], window, options, raw) for name in names)
    found = set(window.names)
    missing = tuple(n for n in names if n not in found)
    extra = tuple(n for n in window.names if n not in profile.columns)
    prediction_rows: tuple[ColumnDrift, ...] = ()
    if predictions is not None:
        if not profile.predictions:
            raise InvalidInputError("predictions were given but the reference profile has "
                                    "none to compare them with", field="predictions")
        outputs = prediction_columns(predictions, window.rows, "predictions")
        prediction_rows = tuple(_row(p, outputs, options, raw_predictions)
                                for p in profile.predictions.values())
    compared = [r for r in rows if r.compared]
    if not compared:
        reasons = "; ".join(f"{r.column}: {r.message}" for r in rows)
        raise InvalidInputError(f"no column could be compared ({reasons})", field="current")
    share = sum(r.drifted for r in compared) / len(compared)
    return DriftReport(profile.rows, window.rows, rows, prediction_rows, share,
                       options.share_bound, share >= options.share_bound, missing, extra)


def _selected(profile: ReferenceProfile, columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return list(profile.columns)
    if isinstance(columns, str):
        raise InvalidInputError("columns must be a list of column names, not one string",
                                field="columns")
    unknown = [c for c in columns if c not in profile.columns]
    if unknown:
        raise InvalidInputError(
            f"the reference profile has no column(s) {', '.join(map(repr, unknown))}; it has "
            f"{', '.join(profile.columns)}", field="columns", columns=unknown)
    return list(dict.fromkeys(columns))


def _row(ref: ColumnProfile, window: Columns, options: DriftOptions,
         raw: Columns | None) -> ColumnDrift:
    if ref.name not in window.names:
        return _skipped(ref, "missing", "the column is absent from the current window")
    raw_series = raw.series(ref.name) if raw is not None else None
    return column_drift(ref, window.series(ref.name), options, raw_series)


def column_drift(ref: ColumnProfile, series: pd.Series, options: DriftOptions | None = None,
                 raw_reference: pd.Series | None = None) -> ColumnDrift:
    """Drift of one column; with ``raw_reference``, ``ks`` and ``wasserstein`` read it."""
    options = options or DriftOptions()
    if ref.all_null:
        return _skipped(ref, "all_null_reference",
                        "no value is present in the reference; there is nothing to compare with")
    found = natural_kind(series)
    if found is not None and not ref.accepts(found):
        return _skipped(ref, "type_mismatch",
                        f"expected {ref.kind} values (reference dtype {ref.dtype}), got "
                        f"{found} values (dtype {series.dtype})")
    if ref.numeric:
        return _numeric(ref, series, options, raw_reference)
    return _categorical(ref, series, options)


def _numeric(ref: ColumnProfile, series: pd.Series, options: DriftOptions,
             raw_reference: pd.Series | None) -> ColumnDrift:
    import numpy as np

    read = numeric_values(series, ref.kind)
    values = np.sort(read.values)
    n = len(values)
    counts = stats.bin_counts(values, np.asarray(ref.bin_edges))
    if n == 0:
        return _skipped(ref, "all_null_current", "no value is present in the current window",
                        Summary(0, read.nulls, counts=tuple(counts.tolist())))
    test = choose_test(ref.name, ref.kind, n, options, constant=ref.constant)
    knots = np.asarray(ref.quantiles)
    reference_values = None
    if raw_reference is not None and test.name in ("ks", "wasserstein"):
        reference_values = numeric_values(raw_reference, ref.kind).values
    p_value: float | None = None
    df = 1
    if test.name == "ks":
        if reference_values is None:
            statistic = stats.ks_statistic(knots, values)
            p_value = stats.ks_p_value(statistic, n, ref.count)
        else:
            from scipy.stats import ks_2samp

            result = ks_2samp(reference_values, values)
            statistic, p_value = float(result.statistic), float(result.pvalue)
    elif test.name == "wasserstein":
        if reference_values is None:
            distance = stats.wasserstein_distance(knots, values)
        else:
            distance = stats.wasserstein_samples(np.sort(reference_values), values)
        statistic = distance / float(ref.std or 1.0)
    else:
        statistic, p_value, df = _count_statistic(test, np.asarray(ref.bin_counts), counts)
    summary = Summary(n, read.nulls, float(values.mean()), float(values.std()),
                      float(values[0]), float(values[-1]), _quantiles(values),
                      tuple(counts.tolist()))
    return _compared(ref, test, statistic, p_value, df, n, options, summary)


def _categorical(ref: ColumnProfile, series: pd.Series, options: DriftOptions) -> ColumnDrift:
    import numpy as np

    counts = counts_by_category(series, ref.categories)
    n = int(counts.sum())
    nulls = len(series) - n
    if n == 0:
        return _skipped(ref, "all_null_current", "no value is present in the current window",
                        Summary(0, nulls, counts=tuple(counts.tolist())))
    test = choose_test(ref.name, ref.kind, n, options)
    statistic, p_value, df = _count_statistic(test, np.asarray(ref.bin_counts), counts)
    summary = Summary(n, nulls, counts=tuple(counts.tolist()))
    return _compared(ref, test, statistic, p_value, df, n, options, summary)


def _count_statistic(test: DriftTest, reference: NDArray[np.int64], current: NDArray[np.int64]
                     ) -> tuple[float, float | None, int]:
    """The statistic, its p-value (chi2 only) and the degrees of freedom of the bins
    compared (non-empty on either side, less one)."""
    if test.name in ("jensenshannon", "psi"):
        bins = max(1, int(((reference + current) > 0).sum()) - 1)
        found = stats.jensenshannon if test.name == "jensenshannon" else stats.psi
        return float(found(reference, current)), None, bins
    statistic, df, p = stats.chi2_homogeneity(reference, current)
    return float(statistic), float(p), int(df)


def _compared(ref: ColumnProfile, test: DriftTest, statistic: float, p_value: float | None,
              df: int, n: int, options: DriftOptions, current: Summary) -> ColumnDrift:
    calibration = ref.calibration
    spread = _spread(ref) if test.name == "wasserstein" else None
    limit = threshold(test, calibration.chunk_rows, calibration.statistics.get(test.name, ()),
                      n, ref.count, options, df=df, spread=spread)
    drifted = statistic > limit.value
    status: Status = "constant_reference" if ref.numeric and ref.constant else "ok"
    verdict = "drifted" if drifted else "no drift"
    message = (f"{test.name} = {statistic:.4g} {'>' if drifted else '<='} "
               f"{limit.value:.4g} ({limit.source}): {verdict}")
    if status == "constant_reference":
        message = f"the reference holds the single value {ref.min!r}; {message}"
    return ColumnDrift(ref.name, ref.kind, test.name, statistic, p_value, limit.value,
                       limit.source, drifted, status, message, _reference_summary(ref),
                       current, ref.bin_edges, ref.categories)


def _spread(ref: ColumnProfile) -> float | None:
    """The reference's ``integral of sqrt(u (1 - u)) dQ(u)`` over its sketch, in standard
    deviations: the scale of the Wasserstein distance's sampling noise."""
    import numpy as np

    if not ref.quantiles or not ref.std:
        return None
    u = stats.grid_of(ref.quantiles)
    middle = (u[1:] + u[:-1]) / 2
    steps = np.diff(np.asarray(ref.quantiles))
    return float(np.sum(np.sqrt(middle * (1 - middle)) * steps)) / float(ref.std)


def _skipped(ref: ColumnProfile, status: Status, message: str,
             current: Summary | None = None) -> ColumnDrift:
    return ColumnDrift(ref.name, ref.kind, None, None, None, None, None, False, status,
                       message, _reference_summary(ref), current, ref.bin_edges,
                       ref.categories)


def _reference_summary(ref: ColumnProfile) -> Summary:
    import numpy as np

    quantiles: dict[str, float] = {}
    if ref.quantiles:
        u = stats.grid_of(ref.quantiles)
        found = np.interp(list(QUANTILES.values()), u, ref.quantiles)
        quantiles = dict(zip(QUANTILES, map(float, found), strict=True))
    return Summary(ref.count, ref.nulls, ref.mean, ref.std, ref.min, ref.max, quantiles,
                   ref.bin_counts)


def _quantiles(sorted_values: NDArray[np.float64]) -> dict[str, float]:
    import numpy as np

    found = stats.sketch_quantiles(sorted_values, np.array(list(QUANTILES.values())))
    return dict(zip(QUANTILES, map(float, found), strict=True))
