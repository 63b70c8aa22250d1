"""Evaluation plots: moved to :mod:`modelyard.stats.plots`, the statistics shared by the
registry and monitoring; this module keeps the old import path working."""

from modelyard.stats.plots import (
    MAX_POINTS,
    Scores,
    classification_plots,
    regression_plots,
)

__all__ = ["MAX_POINTS", "Scores", "classification_plots", "regression_plots"]
