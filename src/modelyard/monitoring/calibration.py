"""The drift tests' calibration on the reference's own spread: moved to
:mod:`modelyard.stats.drift_calibration`, the statistics shared by the registry and
monitoring; this module keeps the old import path working."""

from modelyard.stats.drift_calibration import (
    MIN_CHUNK_ROWS,
    MIN_CHUNKS,
    Calibration,
    calibrate_categorical,
    calibrate_numeric,
    chunk_sizes,
)

__all__ = ["MIN_CHUNKS", "MIN_CHUNK_ROWS", "Calibration", "calibrate_categorical",
           "calibrate_numeric", "chunk_sizes"]
