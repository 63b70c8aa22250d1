"""The drift statistics against SciPy, and their properties on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon as scipy_js

from modelyard.monitoring import stats

PROPERTY = settings(max_examples=60, deadline=None)

counts = st.lists(st.integers(0, 1_000), min_size=2, max_size=12)


@st.composite
def count_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two count vectors of one length, each with a positive total."""
    size = draw(st.integers(2, 12))
    a = draw(st.lists(st.integers(0, 1_000), min_size=size, max_size=size))
    b = draw(st.lists(st.integers(0, 1_000), min_size=size, max_size=size))
    a[draw(st.integers(0, size - 1))] += 1
    b[draw(st.integers(0, size - 1))] += 1
    return np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)


@st.composite
def samples(draw: st.DrawFn, ties: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """A reference, a current sample (continuous or with ties) and a sketch size."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_ref, n_cur = draw(st.integers(1, 3_000)), draw(st.integers(1, 600))
    shape = draw(st.sampled_from(["normal", "integers", "rounded"] if ties else ["normal"]))
    shift = draw(st.floats(-1.0, 1.0))
    if shape == "normal":
        ref, cur = rng.normal(size=n_ref), rng.normal(shift, 1.3, size=n_cur)
    elif shape == "integers":
        ref = rng.integers(0, 5, n_ref).astype(float)
        cur = rng.integers(0, 7, n_cur).astype(float)
    else:
        ref, cur = np.round(rng.normal(size=n_ref), 1), np.round(rng.normal(shift, 1, n_cur), 1)
    return ref, cur, draw(st.sampled_from([3, 11, 101, 1001]))


def _cdf(knots: np.ndarray):  # type: ignore[no-untyped-def]
    return lambda x: stats.sketch_cdf(knots, np.atleast_1d(np.asarray(x, dtype=float)))[0]


# --- sketch --------------------------------------------------------------------------------

@given(samples())
@PROPERTY
def test_sketch_is_numpy_linear_quantiles(case: tuple[np.ndarray, np.ndarray, int]) -> None:
    ref, _, size = case
    expected = np.quantile(ref, stats.sketch_grid(size), method="linear")
    np.testing.assert_allclose(stats.sketch(np.sort(ref), size), expected, rtol=1e-12,
                               atol=1e-12)


def test_sketch_grid_is_even_with_geometric_tails() -> None:
    grid = stats.sketch_grid(101)
    assert len(grid) == 101 + 2 * stats.TAIL_POINTS and np.all(np.diff(grid) > 0)
    assert set(np.linspace(0, 1, 101).tolist()) <= set(grid.tolist())
    low = grid[(grid > 0) & (grid < 0.01)]
    np.testing.assert_allclose(low, 0.01 * 10.0 ** (-np.arange(16, 0, -1) / 4))
    np.testing.assert_allclose(1 - grid[::-1], grid, atol=1e-15)


def test_sketch_cdf_has_atoms_at_repeated_values() -> None:
    # the quantile function rises from 0 to 1 on [0, .25], stays at 1, rises to 2 on [.75, 1]
    knots = np.interp(stats.sketch_grid(5), [0, 0.25, 0.75, 1], [0.0, 1.0, 1.0, 2.0])
    right, left = stats.sketch_cdf(knots, np.array([-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0]))
    np.testing.assert_allclose(right, [0, 0, 0.125, 0.75, 0.875, 1, 1])
    np.testing.assert_allclose(left, [0, 0, 0.125, 0.25, 0.875, 1, 1])


# --- Kolmogorov-Smirnov --------------------------------------------------------------------

@given(samples(ties=False))
@PROPERTY
def test_ks_equals_scipy_kstest_against_the_reconstructed_cdf(
        case: tuple[np.ndarray, np.ndarray, int]) -> None:
    ref, cur, size = case
    knots = stats.sketch(np.sort(ref), size)
    if len(np.unique(knots)) < len(knots):
        return  # the sample's own ties; scipy's one-sample test assumes a continuous CDF
    expected = scipy.stats.kstest(cur, _cdf(knots)).statistic
    assert stats.ks_statistic(knots, np.sort(cur)) == pytest.approx(expected, abs=1e-12)


@given(samples())
@PROPERTY
def test_ks_from_the_sketch_is_within_its_bound_of_ks_2samp(
        case: tuple[np.ndarray, np.ndarray, int]) -> None:
    ref, cur, size = case
    knots = stats.sketch(np.sort(ref), size)
    raw = scipy.stats.ks_2samp(ref, cur).statistic
    bound = 1 / (size - 1) + 1 / len(ref)
    assert abs(stats.ks_statistic(knots, np.sort(cur)) - raw) <= bound + 1e-12


def test_ks_p_value_is_scipys_asymptotic_one() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=4_000), rng.normal(0.1, 1, 700)
    result = scipy.stats.ks_2samp(ref, cur, method="asymp")
    assert stats.ks_p_value(result.statistic, len(cur), len(ref)) == pytest.approx(
        result.pvalue, rel=1e-12)


# --- Wasserstein ---------------------------------------------------------------------------

@given(samples())
@settings(max_examples=20, deadline=None)
def test_wasserstein_is_exact_against_the_reconstructed_distribution(
        case: tuple[np.ndarray, np.ndarray, int]) -> None:
    ref, cur, size = case
    knots = stats.sketch(np.sort(ref), size)
    fine = 100_000  # the reconstructed quantile function at the midpoints of a fine grid
    dense = np.interp((np.arange(fine) + 0.5) / fine, stats.sketch_grid(size), knots)
    expected = scipy.stats.wasserstein_distance(cur, dense)
    span = float(knots[-1] - knots[0])
    assert stats.wasserstein_distance(knots, np.sort(cur)) == pytest.approx(
        expected, abs=2 * span / fine + 1e-12)


def test_wasserstein_against_a_constant_is_scipys_exactly() -> None:
    cur = np.sort(np.random.default_rng(1).normal(size=321))
    knots = np.full(1001 + 2 * stats.TAIL_POINTS, 0.25)
    assert stats.wasserstein_distance(knots, cur) == pytest.approx(
        scipy.stats.wasserstein_distance(cur, [0.25]), rel=1e-12)


@given(samples())
@PROPERTY
def test_wasserstein_from_the_sketch_is_within_its_bound_of_scipy(
        case: tuple[np.ndarray, np.ndarray, int]) -> None:
    ref, cur, size = case
    ordered = np.sort(ref)
    knots = stats.sketch(ordered, size)
    raw = scipy.stats.wasserstein_distance(ref, cur)
    bound = stats.wasserstein_distance(knots, ordered)  # raw reference vs its reconstruction
    assert abs(stats.wasserstein_distance(knots, np.sort(cur)) - raw) <= bound + 1e-9


# --- counts: Jensen-Shannon, PSI, chi-squared ---------------------------------------------

@given(count_pairs())
@PROPERTY
def test_jensenshannon_is_scipys_base_2_and_bounded(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    value = float(stats.jensenshannon(a, b))
    assert value == pytest.approx(scipy_js(a, b, base=2), abs=1e-12)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(float(stats.jensenshannon(b, a)), abs=1e-12)
    assert float(stats.jensenshannon(a, 3 * a)) == pytest.approx(0.0, abs=1e-7)


def test_jensenshannon_of_disjoint_supports_is_one() -> None:
    assert float(stats.jensenshannon([5, 0], [0, 7])) == pytest.approx(1.0)


@given(count_pairs())
@PROPERTY
def test_psi_is_non_negative_symmetric_and_zero_for_equal_shares(
        pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    value = float(stats.psi(a, b))
    assert value >= 0.0
    assert value == pytest.approx(float(stats.psi(b, a)), rel=1e-12, abs=1e-15)
    assert float(stats.psi(a, 2 * a)) == pytest.approx(0.0, abs=1e-12)
    # a bin empty on both sides adds nothing
    assert float(stats.psi(np.append(a, 0), np.append(b, 0))) == pytest.approx(value, abs=1e-12)


def test_psi_fills_an_empty_bin_with_epsilon_on_either_side() -> None:
    eps = stats.PSI_EPSILON
    expected = (0.5 - eps) * np.log(0.5 / eps) + (0.5 - 1.0) * np.log(0.5 / 1.0)
    assert float(stats.psi([10, 0], [5, 5])) == pytest.approx(expected)
    assert float(stats.psi([5, 5], [10, 0])) == pytest.approx(expected)
    assert float(stats.psi([[10, 0], [5, 5]], [[5, 5], [10, 0]])[1]) == pytest.approx(expected)


@given(count_pairs())
@PROPERTY
def test_chi2_equals_scipy_chi2_contingency(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    statistic, df, p = stats.chi2_homogeneity(a, b)
    kept = (a + b) > 0
    if kept.sum() < 2:
        assert (float(statistic), int(df), float(p)) == (0.0, 0, 1.0)
        return
    expected = scipy.stats.chi2_contingency(np.array([a[kept], b[kept]]), correction=False)
    assert float(statistic) == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    assert int(df) == expected.dof
    assert float(p) == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)


def test_chi2_on_an_unchanged_column_is_not_significant() -> None:
    rng = np.random.default_rng(11)
    p = [0.5, 0.3, 0.15, 0.05]
    a = np.bincount(rng.choice(4, 100_000, p=p), minlength=4)
    b = np.bincount(rng.choice(4, 100_000, p=p), minlength=4)
    _, _, value = stats.chi2_homogeneity(a, b)
    assert float(value) == pytest.approx(
        scipy.stats.chi2_contingency(np.array([a, b]), correction=False).pvalue)
    assert float(value) > 0.01


def test_count_statistics_work_row_by_row() -> None:
    a = np.array([[10, 20, 30], [5, 0, 5], [1, 1, 1]])
    b = np.array([[12, 18, 30], [0, 5, 5], [1, 1, 1]])
    for i in range(3):
        assert stats.jensenshannon(a, b)[i] == pytest.approx(float(stats.jensenshannon(a[i],
                                                                                      b[i])))
        assert stats.psi(a, b)[i] == pytest.approx(float(stats.psi(a[i], b[i])))
        assert stats.chi2_homogeneity(a, b)[0][i] == pytest.approx(
            float(stats.chi2_homogeneity(a[i], b[i])[0]))


@given(st.lists(st.floats(-100, 100), min_size=1, max_size=200),
       st.lists(st.floats(-50, 50), min_size=1, max_size=12))
@PROPERTY
def test_bin_counts_put_edge_values_in_the_upper_bin(values: list[float],
                                                     edges: list[float]) -> None:
    ordered, cuts = np.sort(values), np.unique(edges)
    expected = np.bincount(np.searchsorted(cuts, ordered, side="right"),
                           minlength=len(cuts) + 1)
    np.testing.assert_array_equal(stats.bin_counts(ordered, cuts), expected)
