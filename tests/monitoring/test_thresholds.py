"""Drift thresholds: inside each statistic's range, a trending reference still flags a
window that has moved on past it, and a stationary column's unshifted windows stay quiet."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.monitoring import DriftOptions, build_profile, detect_drift
from modelyard.monitoring.methods import TESTS, maximum, sampling_allowance, threshold

ROWS = 4_000


def trending(rows: int, seed: int, start: float, end: float) -> pd.DataFrame:
    """Rolling claim counts whose mean rises from ``start`` to ``end`` over the rows (in
    time order), next to a stationary column."""
    rng = np.random.default_rng(seed)
    rate = np.linspace(start, end, rows)
    return pd.DataFrame({"claims_365d": rng.poisson(rate).astype(float),
                         "age": rng.normal(45.0, 12.0, rows)})


@pytest.fixture(scope="module")
def profile():  # type: ignore[no-untyped-def]
    return build_profile(trending(ROWS, 0, 0.2, 4.0))


def calibrated(profile, column: str, test: str, n: int) -> float:  # type: ignore[no-untyped-def]
    """The threshold of the calibration alone, without the trend bound."""
    calibration, name = profile.columns[column].calibration, TESTS[test]
    ens = [m * (ROWS - m) / ROWS for m in calibration.chunk_rows]
    z = [name.effect(v, e) * math.sqrt(e)
         for v, e in zip(calibration.statistics[test], ens, strict=True)]
    mean = sum(z) / len(z)
    sd = math.sqrt(sum((v - mean) ** 2 for v in z) / (len(z) - 1))
    en = n * ROWS / (n + ROWS)
    return name.statistic((mean + 3 * max(sd, 0.1 * mean)) / math.sqrt(en), en)


@pytest.mark.parametrize("test", sorted(TESTS))
def test_a_trending_column_that_moved_on_is_flagged(profile, test: str  # type: ignore[no-untyped-def]
                                                    ) -> None:
    # the reference's own chunks differ so much that the calibrated threshold scaled to a
    # small window is out of reach; the window continues the trend past the reference's end
    options = DriftOptions(numeric_test=test)
    report = detect_drift(profile, trending(200, 1, 5.0, 6.0), options=options)
    row = report["claims_365d"]
    assert row.test == test and row.threshold_source == "trend"
    assert row.drifted, row.message
    assert row.threshold is not None
    assert row.threshold < calibrated(profile, "claims_365d", test, 200)
    if test == "ks":  # the calibration alone would have missed it
        assert row.statistic is not None
        assert row.statistic < calibrated(profile, "claims_365d", test, 200)
    assert not report["age"].drifted


@pytest.mark.parametrize("test", sorted(TESTS))
def test_a_window_where_the_trend_ended_is_not_flagged(profile, test: str  # type: ignore[no-untyped-def]
                                                       ) -> None:
    # values like the reference's latest rows: within its own drift
    like_latest = trending(200, 2, 3.8, 4.0)
    options = DriftOptions(numeric_test=test)
    assert not detect_drift(profile, like_latest, options=options)["claims_365d"].drifted


@pytest.mark.parametrize("rows", [50, 300, 2_000])
def test_unshifted_windows_of_a_stationary_column_raise_no_alarm(rows: int) -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"x": rng.normal(0, 1, ROWS), "n": rng.poisson(3, ROWS),
                              "c": rng.choice(list("abcd"), ROWS, p=[0.4, 0.3, 0.2, 0.1])})
    profile = build_profile(reference)
    alarms, bounded = 0, 0
    for seed in range(20):
        w = np.random.default_rng(100 + seed)
        window = pd.DataFrame({"x": w.normal(0, 1, rows), "n": w.poisson(3, rows),
                               "c": w.choice(list("abcd"), rows, p=[0.4, 0.3, 0.2, 0.1])})
        for row in detect_drift(profile, window).columns:
            alarms += row.drifted
            bounded += row.drifted and row.threshold_source == "trend"
    # 60 column checks at a false-alarm rate of about alpha (0.01); the trend bound adds none
    assert alarms <= 1 and bounded == 0


def test_a_complete_separation_always_drifts() -> None:
    # chunks so different from each other that the calibrated KS threshold would pass 1
    chunks = [0.9, 0.05, 0.9, 0.05, 0.9]
    for name in ("ks", "jensenshannon", "psi", "chi2"):
        found = threshold(TESTS[name], [200] * 5, chunks, 20, 1_000, DriftOptions(sigmas=50))
        assert found.value < maximum(TESTS[name], 20, 1_000)


@given(test=st.sampled_from(sorted(TESTS)),
       chunks=st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=0, max_size=12),
       n=st.integers(1, 10**6), reference=st.integers(100, 10**6),
       sigmas=st.floats(0.0, 100.0), floor=st.floats(0.0, 1e3), df=st.integers(1, 50),
       spread=st.none() | st.floats(0.0, 1e3))
@settings(max_examples=200, deadline=None)
def test_thresholds_stay_inside_the_statistics_range(  # type: ignore[no-untyped-def]
        test, chunks, n, reference, sigmas, floor, df, spread) -> None:
    rows = [max(1, reference // max(len(chunks), 1))] * len(chunks)
    options = DriftOptions(sigmas=sigmas, floors={test: floor})
    found = threshold(TESTS[test], rows, chunks, n, reference, options, df=df, spread=spread)
    assert 0.0 <= found.value < maximum(TESTS[test], n, reference)
    assert found.source in ("calibration", "trend", "floor", "critical value")


@pytest.mark.parametrize("name", ["ks", "jensenshannon", "psi", "chi2"])
def test_the_sampling_allowance_holds_independent_windows(name: str) -> None:
    # the effect sampling alone reaches, checked against simulated windows of a stationary
    # source: at most a few percent of windows exceed it at alpha = 0.01
    from modelyard.monitoring import stats

    rng = np.random.default_rng(4)
    edges = np.quantile(rng.normal(size=5_000), np.linspace(0.1, 0.9, 9))
    reference = np.sort(rng.normal(size=5_000))
    ref_counts = stats.bin_counts(reference, edges)
    en = 300 * 5_000 / 5_300
    allowance = sampling_allowance(TESTS[name], en, 0.01, df=len(ref_counts) - 1)
    assert allowance is not None
    exceeded = 0
    for _ in range(300):
        window = np.sort(rng.normal(size=300))
        if name == "ks":
            value = float(stats.ks_statistic(stats.sketch(reference, 201), window))
        else:
            counts = stats.bin_counts(window, edges)
            if name == "chi2":
                value = float(stats.chi2_homogeneity(ref_counts, counts)[0])
            else:
                value = float((stats.jensenshannon if name == "jensenshannon"
                               else stats.psi)(ref_counts, counts))
        exceeded += TESTS[name].effect(value, en) > allowance
    assert exceeded <= 9
