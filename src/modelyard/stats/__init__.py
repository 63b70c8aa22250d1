"""The statistics the model registry and monitoring share, below both.

:mod:`~modelyard.stats.evaluation` (tasks, metric names and directions, the
:class:`~modelyard.stats.evaluation.Evaluation` record), :mod:`~modelyard.stats.metrics`
(metric scorers from arrays, slices) and :mod:`~modelyard.stats.plots` (their figures),
:mod:`~modelyard.stats.score_calibration` (score-to-probability maps),
:mod:`~modelyard.stats.profile` (reference profiles) with
:mod:`~modelyard.stats.drift_statistics`, :mod:`~modelyard.stats.drift_calibration`,
:mod:`~modelyard.stats.columns` and :mod:`~modelyard.stats.strings`.

Nothing here imports a domain service, a backend or an entry point (``tests/test_layers.py``
holds it); NumPy, pandas, SciPy, scikit-learn and matplotlib load when a function runs.
"""
