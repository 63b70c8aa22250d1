"""Metrics from arrays: moved to :mod:`modelyard.stats.metrics`, the statistics shared by
the registry and monitoring; this module keeps the old import path working."""

from modelyard.stats.metrics import (
    MetricScorer,
    as_series,
    metric_scorer,
    slice_masks,
)

__all__ = ["MetricScorer", "as_series", "metric_scorer", "slice_masks"]
