"""The drift statistics, vectorised over NumPy arrays (SciPy where it has the statistic).

Quantile sketch
    Quantiles of the reference with linear interpolation (``numpy.quantile(...,
    method="linear")``) at the probabilities of :func:`sketch_grid`: ``K`` evenly spaced
    ones, ``u = i / (K - 1)``, and :data:`TAIL_POINTS` more at each end, spaced
    geometrically (four per decade) below ``1 / (K - 1)`` and above ``1 - 1 / (K - 1)``, so
    that a heavy tail is followed closely. The reference distribution reconstructed from it
    has the piecewise-linear quantile function through the points ``(u_i, q_i)``: between
    two distinct quantiles its CDF rises linearly, and a value repeated over several
    quantiles is an atom. Its CDF differs from the reference's empirical CDF by at most
    ``1 / (K - 1) + 1 / N`` anywhere (``N`` reference values), which bounds the error of
    the Kolmogorov-Smirnov statistic computed against it.

Kolmogorov-Smirnov (``ks``)
    ``D = sup |F_current - F_reference|``. From a profile, against the reconstructed CDF:
    the supremum is reached at a current value or just before it, so it is computed
    exactly there (equal to ``scipy.stats.kstest`` against that CDF). The p-value is the
    two-sample asymptotic one that ``scipy.stats.ks_2samp`` uses for large samples,
    ``kstwo.sf(D, round(n N / (n + N)))``.

Wasserstein (``wasserstein``)
    ``W = integral over u in [0, 1] of |Q_current(u) - Q_reference(u)|``, computed exactly
    between the current sample's step quantile function and the reconstructed
    piecewise-linear one. By the triangle inequality it differs from
    ``scipy.stats.wasserstein_distance`` on the raw reference by at most the distance
    between the raw reference and its reconstruction. Drift reports divide it by the
    reference's standard deviation, so it reads in standard deviations.

Jensen-Shannon (``jensenshannon``)
    ``scipy.spatial.distance.jensenshannon`` with base-2 logarithms, so it lies in [0, 1],
    on bin or category counts.

Population stability index (``psi``)
    ``sum (c_i - r_i) ln(c_i / r_i)`` over the shares ``r`` (reference) and ``c`` (current)
    of each bin. A share of zero is replaced by :data:`PSI_EPSILON` on whichever side it
    occurs (the same rule for both sides, without renormalising), so the index is finite,
    symmetric in its two arguments, zero for identical shares, and a bin empty on both
    sides adds nothing.

Chi-squared (``chi2``)
    Pearson's test of homogeneity on the 2 x k table of counts (reference, current), without
    Yates' correction; bins empty on both sides are left out. Equal to
    ``scipy.stats.chi2_contingency(table, correction=False)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray

__all__ = ["PSI_EPSILON", "TAIL_POINTS", "bin_counts", "chi2_homogeneity", "grid_of",
           "jensenshannon", "ks_p_value", "ks_statistic", "psi", "sketch", "sketch_cdf",
           "sketch_grid", "sketch_quantiles", "wasserstein_distance",
           "wasserstein_samples"]

PSI_EPSILON = 1e-4  # the share given to an empty bin in the PSI
TAIL_POINTS = 16  # extra quantiles at each end of the sketch: four decades, four per decade


def sketch_grid(size: int) -> NDArray[np.float64]:
    """The probabilities of a sketch of ``size`` evenly spaced quantiles and its tails."""
    import numpy as np

    step = 1.0 / (size - 1)
    tail = step * 10.0 ** (-np.arange(1, TAIL_POINTS + 1) / 4)
    body = np.linspace(0.0, 1.0, size)
    return np.concatenate([body[:1], tail[::-1], body[1:-1], 1.0 - tail, body[-1:]])


def grid_of(knots: NDArray[np.float64] | tuple[float, ...]) -> NDArray[np.float64]:
    """The probabilities of a sketch, from its number of quantiles."""
    size = len(knots) - 2 * TAIL_POINTS
    if size < 3:
        raise ValueError(f"a sketch has at least {3 + 2 * TAIL_POINTS} quantiles, not "
                         f"{len(knots)}")
    return sketch_grid(size)


def sketch(sorted_values: NDArray[np.float64], size: int) -> NDArray[np.float64]:
    """The quantiles of sorted values at :func:`sketch_grid` ``(size)``, as
    ``numpy.quantile(values, grid, method="linear")`` without sorting again."""
    return sketch_quantiles(sorted_values, sketch_grid(size))


def sketch_quantiles(sorted_values: NDArray[np.float64], probabilities: NDArray[np.float64]
                     ) -> NDArray[np.float64]:
    """Linear-interpolation quantiles of sorted values (NumPy's ``linear`` method)."""
    import numpy as np

    n = len(sorted_values)
    position = probabilities * (n - 1)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, n - 1)
    gamma = position - below
    a, b = sorted_values[below], sorted_values[above]
    diff = b - a
    return np.where(gamma >= 0.5, b - diff * (1.0 - gamma), a + diff * gamma)


def sketch_cdf(knots: NDArray[np.float64], x: NDArray[np.float64]
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The reconstructed reference CDF at ``x``: its value ``F(x)`` and its left limit
    ``F(x-)`` (they differ only at an atom)."""
    import numpy as np

    u = grid_of(knots)
    values, first, counts = np.unique(knots, return_index=True, return_counts=True)
    low, high = u[first], u[first + counts - 1]  # CDF just before / at each distinct knot
    size = len(values)
    i = np.searchsorted(values, x, side="left")  # values[i - 1] < x <= values[i]
    at = np.minimum(i, size - 1)
    exact = (i < size) & (values[at] == x)
    if size == 1:
        right = np.where(x < values[0], 0.0, 1.0)
        left = np.where(x <= values[0], 0.0, 1.0)
        return right, left
    j = np.clip(i, 1, size - 1)
    x0, x1 = values[j - 1], values[j]
    t = np.clip((x - x0) / (x1 - x0), 0.0, 1.0)
    between = high[j - 1] + (low[j] - high[j - 1]) * t
    between = np.where(i == 0, 0.0, np.where(i == size, 1.0, between))
    right = np.where(exact, high[at], between)
    left = np.where(exact, low[at], between)
    return right, left


def ks_statistic(knots: NDArray[np.float64], current_sorted: NDArray[np.float64]) -> float:
    """Kolmogorov-Smirnov distance between a sorted sample and the reconstructed CDF."""
    import numpy as np

    n = len(current_sorted)
    right, left = sketch_cdf(knots, current_sorted)
    steps = np.arange(1, n + 1) / n
    upper = float(np.max(steps - right))
    lower = float(np.max(left - (steps - 1.0 / n)))
    return max(upper, lower, 0.0)


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """Two-sided two-sample p-value for ``D`` (Smirnov's asymptotic distribution, as
    ``scipy.stats.ks_2samp`` uses for large samples)."""
    from scipy.stats import kstwo

    en = max(1, round(n * m / (n + m)))
    return float(min(1.0, max(0.0, kstwo.sf(statistic, en))))


def wasserstein_distance(knots: NDArray[np.float64], current_sorted: NDArray[np.float64]
                         ) -> float:
    """Wasserstein-1 distance between a sorted sample and the reconstructed distribution,
    integrated exactly over the merged breakpoints of the two quantile functions."""
    import numpy as np

    n = len(current_sorted)
    u = grid_of(knots)
    at_grid = np.interp(np.arange(n + 1) / n, u, knots)
    # each piece ((j - 1)/n, j/n], with the reference quantile taken as linear across it
    piece = _mean_abs_linear(current_sorted - at_grid[:-1], current_sorted - at_grid[1:])
    total = float(piece.sum()) / n
    # pieces with a knot inside are split there (a knot on a piece's edge splits off nothing)
    inner = u[1:-1]
    where = np.minimum((inner * n).astype(np.intp), n - 1)
    pieces = np.unique(where)
    ids = np.concatenate([pieces, pieces, where])
    points = np.concatenate([pieces / n, (pieces + 1) / n, inner])
    order = np.lexsort((points, ids))
    ids, points = ids[order], points[order]
    same = ids[1:] == ids[:-1]
    a, b, owner = points[:-1][same], points[1:][same], ids[:-1][same]
    value = current_sorted[owner]
    exact = (b - a) * _mean_abs_linear(value - np.interp(a, u, knots),
                                       value - np.interp(b, u, knots))
    return total - float(piece[pieces].sum()) / n + float(exact.sum())


def wasserstein_samples(a_sorted: NDArray[np.float64], b_sorted: NDArray[np.float64]
                        ) -> float:
    """Wasserstein-1 distance between two samples, given sorted: the integral over
    ``u in [0, 1]`` of ``|Q_a(u) - Q_b(u)|`` between their step quantile functions, summed
    exactly over the pieces on which both are constant. Equal to
    ``scipy.stats.wasserstein_distance(a, b)`` (up to rounding), in linear time once sorted.
    """
    import math

    import numpy as np

    n, m = len(a_sorted), len(b_sorted)
    if n == m:
        return float(np.abs(a_sorted - b_sorted).sum()) / n
    # on a grid of lcm(n, m) steps, a's quantile changes every m / g steps and b's every n / g
    g = math.gcd(n, m)
    step_a, step_b = m // g, n // g
    ends = np.sort(np.concatenate([np.arange(1, n + 1, dtype=np.int64) * step_a,
                                   np.arange(1, m + 1, dtype=np.int64) * step_b]),
                   kind="stable")  # two sorted runs: one merge
    ends = ends[np.concatenate([ends[1:] != ends[:-1], [True]])]
    widths = np.diff(ends, prepend=0).astype(np.float64)
    gaps = np.abs(a_sorted[(ends - 1) // step_a] - b_sorted[(ends - 1) // step_b])
    return float(np.dot(gaps, widths)) / (n * step_a)


def _mean_abs_linear(d0: NDArray[np.float64], d1: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean of ``|d|`` over an interval on which ``d`` goes linearly from ``d0`` to
    ``d1 <= d0`` (the current value minus a rising reference quantile). Overwrites ``d0``."""
    import numpy as np

    crossing = np.flatnonzero((d0 > 0) & (d1 < 0))
    a, b = d0[crossing], -d1[crossing]
    mean = np.add(d0, d1, out=d0)
    np.abs(mean, out=mean)
    mean *= 0.5
    mean[crossing] = (a * a + b * b) / (2.0 * (a + b))
    return mean


def bin_counts(sorted_values: NDArray[np.float64], edges: NDArray[np.float64]
               ) -> NDArray[np.int64]:
    """Counts in the bins ``(-inf, e_0), [e_0, e_1), ..., [e_last, inf)`` of sorted values."""
    import numpy as np

    cuts = np.searchsorted(sorted_values, edges, side="left")
    bounds = np.concatenate([[0], cuts, [len(sorted_values)]])
    return np.diff(bounds).astype(np.int64)


def jensenshannon(reference: ArrayLike, current: ArrayLike) -> NDArray[np.float64]:
    """Jensen-Shannon distance (base 2, in [0, 1]) between count vectors, along the last
    axis; each vector is normalised to shares first."""
    import numpy as np
    from scipy.spatial import distance

    result = distance.jensenshannon(np.asarray(reference, dtype=np.float64),
                                    np.asarray(current, dtype=np.float64), base=2, axis=-1)
    return np.clip(np.asarray(result, dtype=np.float64), 0.0, 1.0)


def psi(reference: ArrayLike, current: ArrayLike, epsilon: float = PSI_EPSILON
        ) -> NDArray[np.float64]:
    """Population stability index between count vectors, along the last axis."""
    import numpy as np

    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    r = np.maximum(r / r.sum(axis=-1, keepdims=True), epsilon)
    c = np.maximum(c / c.sum(axis=-1, keepdims=True), epsilon)
    return np.asarray(np.sum((c - r) * np.log(c / r), axis=-1), dtype=np.float64)


def chi2_homogeneity(reference: ArrayLike, current: ArrayLike
                     ) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:
    """Pearson's chi-squared statistic, degrees of freedom and p-value of the 2 x k table
    (reference, current), along the last axis. A table with fewer than two non-empty bins
    has statistic 0, 0 degrees of freedom and p-value 1."""
    import numpy as np
    from scipy.stats import chi2

    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(current, dtype=np.float64)
    both = a + b
    kept = both > 0
    na, nb = a.sum(axis=-1, keepdims=True), b.sum(axis=-1, keepdims=True)
    share = np.where(kept, both, 1.0) / (na + nb)
    ea, eb = na * share, nb * share
    terms = (a - ea) ** 2 / ea + (b - eb) ** 2 / eb
    statistic = np.sum(np.where(kept, terms, 0.0), axis=-1)
    df = np.sum(kept, axis=-1) - 1
    p = np.where(df >= 1, chi2.sf(statistic, np.maximum(df, 1)), 1.0)
    statistic = np.where(df >= 1, statistic, 0.0)
    return (np.asarray(statistic, dtype=np.float64), np.asarray(np.maximum(df, 0), np.int64),
            np.asarray(p, dtype=np.float64))
