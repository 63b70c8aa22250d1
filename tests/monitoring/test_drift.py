"""Drift: planted shifts found, unshifted data left alone, the profile path against the raw
path and SciPy, test choice, thresholds, predictions, and every bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import InvalidInputError
from modelyard.monitoring import (
    FLOORS,
    DriftOptions,
    ReferenceProfile,
    build_profile,
    compare_frames,
    detect_drift,
)
from modelyard.monitoring import stats as drift_stats
from modelyard.monitoring.drift import column_drift

REFERENCE_ROWS = 20_000
CATEGORIES = np.array(["a", "b", "c", "d", "e"], dtype=object)
MIX = np.array([0.4, 0.25, 0.15, 0.12, 0.08])


def window(rows: int, seed: int, *, shift: float = 0.0, scale: float = 1.0,
           mix: np.ndarray = MIX, new: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cat = CATEGORIES[rng.choice(5, rows, p=mix)]
    cat[rng.random(rows) < new] = "zz"
    return pd.DataFrame({
        "norm": rng.normal(shift, scale, rows),
        "skewed": rng.lognormal(0.0, 1.0, rows),
        "count": rng.poisson(3, rows),
        "cat": cat,
        "flag": rng.random(rows) < 0.3,
    })


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return window(REFERENCE_ROWS, 0)


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> ReferenceProfile:
    return build_profile(reference)


# --- planted shifts and unshifted data -----------------------------------------------------

@pytest.mark.parametrize("rows", [500, 5_000])
@pytest.mark.parametrize(("change", "column"), [
    ({"shift": 0.3}, "norm"),  # mean shift of 0.3 sd
    ({"scale": 1.5}, "norm"),  # variance shift
    ({"new": 0.05}, "cat"),  # a new category in 5% of the rows
    ({"mix": np.array([0.25, 0.25, 0.2, 0.18, 0.12])}, "cat"),  # frequencies changed
])
def test_planted_shifts_are_found(profile: ReferenceProfile, change: dict[str, object],
                                  column: str, rows: int) -> None:
    report = detect_drift(profile, window(rows, 8, **change))  # type: ignore[arg-type]
    assert report.drifted_columns == (column,)
    row = report[column]
    assert row.statistic is not None and row.threshold is not None
    assert row.statistic > row.threshold
    small = rows <= 1_000
    expected = {"norm": "ks" if small else "wasserstein",
                "cat": "chi2" if small else "jensenshannon"}[column]
    assert row.test == expected
    assert report.drifted_share == pytest.approx(1 / 5) and not report.dataset_drift


@pytest.mark.parametrize("rows", [60, 300, 2_000, 200_000])
def test_unshifted_windows_are_not_flagged(profile: ReferenceProfile, rows: int) -> None:
    for seed in (11, 12, 13):
        report = detect_drift(profile, window(rows, seed))
        assert report.drifted_columns == (), [r.message for r in report.columns if r.drifted]


def test_a_large_window_is_held_to_the_floor_not_to_its_tiny_noise(
        profile: ReferenceProfile) -> None:
    big = detect_drift(profile, window(200_000, 21))
    assert {r.threshold_source for r in big.columns} == {"floor"}
    assert big["norm"].threshold == FLOORS["wasserstein"]
    small = detect_drift(profile, window(300, 21))
    assert {r.threshold_source for r in small.columns} <= {"calibration", "trend"}
    # a shift too small to matter is statistically certain at this size, and not flagged
    slight = detect_drift(profile, window(200_000, 22, shift=0.05))
    assert slight["norm"].statistic == pytest.approx(0.05, abs=0.01)
    assert not slight["norm"].drifted


def test_calibrated_thresholds_shrink_with_the_window(profile: ReferenceProfile) -> None:
    options = DriftOptions(numeric_test="ks", floors={"ks": 0.0})
    found = [float(detect_drift(profile, window(rows, 3), options=options)["norm"].threshold
                   or 0.0) for rows in (100, 400, 1_600)]
    assert found[0] > found[1] > found[2]
    # noise in D falls as 1 / sqrt(en), en = n N / (n + N)
    en = [n * REFERENCE_ROWS / (n + REFERENCE_ROWS) for n in (100, 400, 1_600)]
    assert found[0] / found[2] == pytest.approx(np.sqrt(en[2] / en[0]), rel=1e-9)


@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 400))
@settings(max_examples=25, deadline=None)
def test_identical_data_never_drifts(seed: int, rows: int) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "x": rng.normal(size=rows),
        "ties": rng.integers(0, 3, rows),
        "cat": rng.choice(["p", "q", "r"], rows),
    })
    report = detect_drift(build_profile(frame), frame)
    assert report.drifted_columns == ()
    assert all(r.statistic is not None and np.isfinite(r.statistic) for r in report.columns)


# --- the profile path against the raw path and SciPy ---------------------------------------

@pytest.mark.parametrize("test", ["ks", "wasserstein", "jensenshannon", "psi", "chi2"])
def test_profile_path_agrees_with_raw_frames(reference: pd.DataFrame,
                                             profile: ReferenceProfile, test: str) -> None:
    current = window(3_000, 5, shift=0.1)
    categorical = None if test in ("ks", "wasserstein") else test
    options = DriftOptions(numeric_test=test, categorical_test=categorical)
    from_profile = detect_drift(profile, current, options=options)
    raw = compare_frames(reference, current, options=options)
    for mine, theirs in zip(from_profile.columns, raw.columns, strict=True):
        assert mine.test == theirs.test and mine.threshold == theirs.threshold
        assert mine.drifted == theirs.drifted
        if mine.test in ("jensenshannon", "psi", "chi2"):
            assert mine.statistic == theirs.statistic and mine.p_value == theirs.p_value
            continue
        ref = reference[mine.column].to_numpy(dtype=float)
        cur = np.sort(current[mine.column].to_numpy(dtype=float))
        if mine.test == "ks":
            expected = scipy.stats.ks_2samp(ref, cur)
            assert theirs.statistic == pytest.approx(expected.statistic)
            assert theirs.p_value == pytest.approx(expected.pvalue)
            bound = 1 / 1000 + 1 / len(ref)
            assert abs(mine.statistic - theirs.statistic) <= bound  # type: ignore[operator]
        else:
            std = ref.std()
            assert theirs.statistic == pytest.approx(
                scipy.stats.wasserstein_distance(ref, cur) / std)
            knots = np.asarray(profile[mine.column].quantiles)
            bound = drift_stats.wasserstein_distance(knots, np.sort(ref)) / std
            assert abs(mine.statistic - theirs.statistic) <= bound + 1e-12  # type: ignore[operator]


def test_category_statistics_equal_scipy_on_value_counts(reference: pd.DataFrame,
                                                         profile: ReferenceProfile) -> None:
    current = window(5_000, 8, new=0.03)
    row = detect_drift(profile, current)["cat"]
    keys = sorted(set(reference["cat"]) | set(current["cat"]))
    ref_counts = reference["cat"].value_counts().reindex(keys, fill_value=0).to_numpy()
    cur_counts = current["cat"].value_counts().reindex(keys, fill_value=0).to_numpy()
    from scipy.spatial.distance import jensenshannon

    assert row.test == "jensenshannon"
    assert row.statistic == pytest.approx(jensenshannon(ref_counts, cur_counts, base=2))
    chi = detect_drift(profile, current, options=DriftOptions(categorical_test="chi2"))["cat"]
    expected = scipy.stats.chi2_contingency(np.array([ref_counts, cur_counts]),
                                            correction=False)
    assert chi.statistic == pytest.approx(expected.statistic)
    assert chi.p_value == pytest.approx(expected.pvalue)


# --- test choice and options ---------------------------------------------------------------

def test_every_test_can_be_chosen_by_name(profile: ReferenceProfile) -> None:
    current = window(800, 9)
    for test in ("psi", "jensenshannon", "chi2"):
        report = detect_drift(profile, current, options=DriftOptions(numeric_test=test,
                                                                     categorical_test=test))
        assert {r.test for r in report.columns} == {test}
    per_column = DriftOptions(tests={"norm": "wasserstein", "cat": "psi"})
    report = detect_drift(profile, current, options=per_column)
    assert (report["norm"].test, report["cat"].test, report["skewed"].test) == (
        "wasserstein", "psi", "ks")


@pytest.mark.parametrize(("options", "match"), [
    (lambda: DriftOptions(numeric_test="t-test"), "unknown drift test 't-test'"),
    (lambda: DriftOptions(categorical_test="ks"), "does not apply to categorical"),
    (lambda: DriftOptions(tests={"norm": "nope"}), r"tests\['norm'\]: unknown drift test"),
    (lambda: DriftOptions(floors={"ks": -1}), r"floors\['ks'\] must be a number >= 0"),
    (lambda: DriftOptions(share_bound=0), "share_bound must be a number > 0"),
    (lambda: DriftOptions(sigmas=float("nan")), "sigmas must be a number"),
    (lambda: DriftOptions(alpha=1), "alpha must be a number > 0 and < 1"),
])
def test_bad_options_are_refused(options, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError, match=match):
        options()


def test_a_test_that_does_not_fit_the_column_is_refused(profile: ReferenceProfile) -> None:
    with pytest.raises(InvalidInputError, match="'ks' does not apply to the categorical "
                                                "column 'cat'"):
        detect_drift(profile, window(100, 1), options=DriftOptions(tests={"cat": "ks"}))
    with pytest.raises(InvalidInputError, match=r"unknown column.*'nope'"):
        detect_drift(profile, window(100, 1), options=DriftOptions(tests={"nope": "ks"}))


def test_dataset_verdict_is_the_share_of_drifted_columns(profile: ReferenceProfile) -> None:
    current = window(5_000, 4, shift=0.5, new=0.2)
    assert detect_drift(profile, current).drifted_columns == ("norm", "cat")
    assert not detect_drift(profile, current).dataset_drift  # 2 of 5 < 0.5
    assert detect_drift(profile, current, options=DriftOptions(share_bound=0.4)).dataset_drift


def test_without_calibration_ks_and_chi2_use_critical_values() -> None:
    rng = np.random.default_rng(2)
    small = pd.DataFrame({"x": rng.normal(size=60), "c": rng.choice(["a", "b"], 60)})
    profile = build_profile(small)
    report = detect_drift(profile, small.iloc[:30], options=DriftOptions(floors={"ks": 0,
                                                                                 "chi2": 0}))
    assert report["x"].threshold_source == "critical value"
    en = round(30 * 60 / 90)
    assert report["x"].threshold == pytest.approx(scipy.stats.kstwo.isf(0.01, en))
    assert report["c"].threshold == pytest.approx(scipy.stats.chi2.isf(0.01, 1))
    psi = detect_drift(profile, small, options=DriftOptions(categorical_test="psi"))
    assert psi["c"].threshold_source == "floor"


# --- predictions ---------------------------------------------------------------------------

def test_prediction_drift(reference: pd.DataFrame) -> None:
    def score(frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(1 / (1 + np.exp(-frame["norm"].to_numpy())))

    profile = build_profile(reference, score(reference))
    steady, moved = window(3_000, 6), window(3_000, 6, shift=0.6)
    assert not detect_drift(profile, steady, score(steady)).prediction_drift
    report = detect_drift(profile, moved, score(moved))
    assert report.prediction_drift and report.predictions[0].column == "prediction"
    assert report.predictions[0].test == "wasserstein"
    assert "prediction" not in report.drifted_columns  # predictions do not count in the share
    restored = ReferenceProfile.from_json(profile.to_json())
    assert detect_drift(restored, moved, score(moved)).predictions == report.predictions


def test_predictions_without_reference_predictions_are_refused(
        profile: ReferenceProfile) -> None:
    with pytest.raises(InvalidInputError, match="profile has none"):
        detect_drift(profile, window(10, 1), np.zeros(10))


# --- bad inputs ----------------------------------------------------------------------------

def test_an_empty_window_is_refused(profile: ReferenceProfile) -> None:
    with pytest.raises(InvalidInputError, match="current window has no rows"):
        detect_drift(profile, window(0, 1))
    with pytest.raises(InvalidInputError, match="pandas DataFrame or a pyarrow Table"):
        detect_drift(profile, {"norm": [1.0]})


def test_schema_changes_are_reported_not_fatal(profile: ReferenceProfile) -> None:
    current = window(500, 2).drop(columns=["skewed"]).assign(extra=1.0)
    report = detect_drift(profile, current)
    assert report.missing_columns == ("skewed",) and report.extra_columns == ("extra",)
    row = report["skewed"]
    assert (row.status, row.statistic, row.drifted) == ("missing", None, False)
    assert "absent from the current window" in row.message
    assert len([r for r in report.columns if r.compared]) == 4


def test_all_null_and_type_mismatch_columns_are_not_compared(
        profile: ReferenceProfile) -> None:
    current = window(500, 2)
    current["norm"] = np.nan
    current["count"] = "many"
    report = detect_drift(profile, current)
    assert report["norm"].status == "all_null_current" and not report["norm"].drifted
    assert report["norm"].current is not None and report["norm"].current.nulls == 500
    assert report["count"].status == "type_mismatch"
    assert "expected numeric values" in report["count"].message
    assert report.drifted_share == 0.0


def test_all_null_reference_column(reference: pd.DataFrame) -> None:
    frame = reference.iloc[:1_000].assign(gone=np.nan)
    report = detect_drift(build_profile(frame), frame)
    assert report["gone"].status == "all_null_reference"
    assert "no value is present in the reference" in report["gone"].message


def test_constant_reference_column() -> None:
    frame = pd.DataFrame({"flat": np.full(1_000, 3.0), "x": np.arange(1_000.0)})
    profile = build_profile(frame)
    same = detect_drift(profile, frame.iloc[:500],
                        options=DriftOptions(numeric_test="wasserstein"))
    assert same["flat"].status == "constant_reference" and same["flat"].test == "ks"
    assert same["flat"].statistic == 0.0 and not same["flat"].drifted
    moved = frame.iloc[:500].assign(flat=np.where(np.arange(500) < 50, 4.0, 3.0))
    changed = detect_drift(profile, moved)["flat"]
    assert changed.drifted and changed.statistic == pytest.approx(0.1)
    assert "single value 3.0" in changed.message


def test_nothing_comparable_is_refused_with_the_reasons(profile: ReferenceProfile) -> None:
    current = pd.DataFrame({"norm": [np.nan] * 3, "unrelated": [1, 2, 3]})
    with pytest.raises(InvalidInputError, match=r"no column could be compared.*norm: no value"):
        detect_drift(profile, current)
    with pytest.raises(InvalidInputError, match=r"no column.*'nope'"):
        detect_drift(profile, window(10, 1), columns=["nope"])


def test_columns_restricts_the_comparison(profile: ReferenceProfile) -> None:
    report = detect_drift(profile, window(500, 1), columns=["cat", "norm"])
    assert [r.column for r in report.columns] == ["cat", "norm"]


def test_report_is_json_safe_and_tabular(profile: ReferenceProfile) -> None:
    current = window(2_000, 3, shift=0.4).drop(columns=["flag"])
    report = detect_drift(profile, current)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["drifted_columns"] == ["norm"] and data["missing_columns"] == ["flag"]
    norm = data["columns"][0]
    assert len(norm["reference"]["counts"]) == len(norm["bin_edges"]) + 1
    assert sum(norm["current"]["counts"]) == 2_000
    assert norm["reference"]["quantiles"]["p50"] == pytest.approx(0.0, abs=0.05)
    assert norm["current"]["quantiles"]["p50"] == pytest.approx(0.4, abs=0.1)
    frame = report.to_frame()
    assert list(frame["column"]) == ["norm", "skewed", "count", "cat", "flag"]
    assert frame.loc[frame["column"] == "norm", "drifted"].item()


def test_one_column_from_a_series(profile: ReferenceProfile) -> None:
    row = column_drift(profile["cat"], pd.Series(["a"] * 300))
    assert row.drifted and row.test == "chi2" and row.p_value is not None
    assert row.p_value < 1e-6
