"""The drift statistics: moved to :mod:`modelyard.stats.drift_statistics`, the statistics
shared by the registry and monitoring; this module keeps the old import path working."""

from modelyard.stats.drift_statistics import (
    PSI_EPSILON,
    TAIL_POINTS,
    bin_counts,
    chi2_homogeneity,
    grid_of,
    jensenshannon,
    ks_p_value,
    ks_statistic,
    psi,
    sketch,
    sketch_cdf,
    sketch_grid,
    sketch_quantiles,
    wasserstein_distance,
    wasserstein_samples,
)

__all__ = ["PSI_EPSILON", "TAIL_POINTS", "bin_counts", "chi2_homogeneity", "grid_of",
           "jensenshannon", "ks_p_value", "ks_statistic", "psi", "sketch", "sketch_cdf",
           "sketch_grid", "sketch_quantiles", "wasserstein_distance", "wasserstein_samples"]
