"""Retraining pipelines: the orchestration layer above the domain services.

``definitions`` (``@modelyard.pipeline`` and its triggers), ``discovery`` (the project's
``pipelines.py``), ``context`` (what a run's function receives, output capture),
``runner`` (one leased run, start to end), ``schedules`` (cron in a time zone),
``service`` (``yard.pipelines``) and ``worker`` (``modelyard worker``'s loop).
"""
