"""Calibration: how much each drift statistic varies within the reference itself.

The reference's present values, in row order, are cut into ``chunks`` contiguous chunks
(at least :data:`MIN_CHUNK_ROWS` values each, and at least
:data:`MIN_CHUNKS` chunks, else there is no calibration), and
each chunk is compared with the rest of the reference by every test that applies. Row order
is kept so that a reference sorted by time shows its own drift over time. The chunk sizes
and the statistics (to six significant digits: they measure a spread) are stored in the
profile; :func:`modelyard.monitoring.methods.threshold`
turns them into a threshold for any window size.

Bin and category counts are exact per chunk. ``ks`` and ``wasserstein`` are evaluated on
the sketch's quantiles (the CDFs of chunk and rest at each of the ``K`` quantiles, the
Wasserstein integral by the trapezoid rule between them), which is close enough to measure
their spread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from modelyard.stats import drift_statistics as stats

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["MIN_CHUNKS", "MIN_CHUNK_ROWS", "Calibration", "calibrate_categorical",
           "calibrate_numeric", "chunk_sizes"]

MIN_CHUNK_ROWS = 20
MIN_CHUNKS = 5  # fewer chunks of the reference: no calibration (nor thresholds from it)


@dataclass(frozen=True)
class Calibration:
    """The chunk sizes, and each test's statistic between every chunk and the rest."""

    chunk_rows: tuple[int, ...] = ()
    statistics: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, sizes: list[int], found: Mapping[str, Any]) -> Calibration:
        return cls(tuple(sizes), {test: tuple(float(f"{float(v):.6g}") for v in values)
                                  for test, values in found.items()})


def chunk_sizes(values: int, chunks: int) -> list[int]:
    """Sizes of the contiguous chunks ``values`` are cut into; empty when too few."""
    count = min(chunks, values // MIN_CHUNK_ROWS)
    if count < MIN_CHUNKS:
        return []
    base, extra = divmod(values, count)
    return [base + 1] * extra + [base] * (count - extra)


def calibrate_numeric(values: NDArray[np.float64], sorted_values: NDArray[np.float64],
                      knots: NDArray[np.float64], edges: NDArray[np.float64], std: float,
                      chunks: int) -> Calibration:
    """Chunk statistics of every numeric test (``wasserstein`` only when ``std > 0``)."""
    import numpy as np

    sizes = chunk_sizes(len(values), chunks)
    if not sizes:
        return Calibration()
    n = len(values)
    total_right = np.searchsorted(sorted_values, knots, side="right")
    total_left = np.searchsorted(sorted_values, knots, side="left")
    total_bins = stats.bin_counts(sorted_values, edges)
    widths = np.diff(knots)
    ks, wasserstein, chunk_bins = [], [], []
    start = 0
    for m in sizes:
        chunk = np.sort(values[start:start + m])
        start += m
        right = np.searchsorted(chunk, knots, side="right")
        left = np.searchsorted(chunk, knots, side="left")
        d_right = right / m - (total_right - right) / (n - m)
        d_left = left / m - (total_left - left) / (n - m)
        ks.append(float(max(np.abs(d_right).max(), np.abs(d_left).max())))
        if std > 0:
            area = float(np.sum(widths * (np.abs(d_right[:-1]) + np.abs(d_left[1:])) / 2))
            wasserstein.append(area / std)
        chunk_bins.append(stats.bin_counts(chunk, edges))
    found = {"ks": ks}
    if std > 0:
        found["wasserstein"] = wasserstein
    found.update(_count_tests(np.array(chunk_bins), total_bins))
    return Calibration.of(sizes, found)


def calibrate_categorical(bins: NDArray[np.intp], total: NDArray[np.int64], chunks: int
                          ) -> Calibration:
    """Chunk statistics of the count tests, from each present value's bin in row order."""
    import numpy as np

    sizes = chunk_sizes(len(bins), chunks)
    if not sizes:
        return Calibration()
    bounds = np.cumsum([0, *sizes])
    counts = np.array([np.bincount(bins[a:b], minlength=len(total))
                       for a, b in pairwise(bounds.tolist())])
    return Calibration.of(sizes, _count_tests(counts, total))


def _count_tests(chunk_counts: NDArray[np.int64], total: NDArray[np.int64]
                 ) -> dict[str, list[float]]:
    rest = total[None, :] - chunk_counts
    statistic, _, _ = stats.chi2_homogeneity(rest, chunk_counts)
    return {
        "jensenshannon": stats.jensenshannon(rest, chunk_counts).tolist(),
        "psi": stats.psi(rest, chunk_counts).tolist(),
        "chi2": statistic.tolist(),
    }
