"""Retraining pipelines: the orchestration layer above the domain services.

``definitions`` (``@modelyard.pipeline`` and its triggers) with ``declarations`` (the
``Shadow`` trial and the ``EvaluationWindow``), ``discovery`` (the project's
``pipelines.py``), ``applying`` (plan and apply), ``context`` (what a run's function
receives, output capture), ``queueing`` (new runs), ``runner`` (one leased run, start to
end), ``schedules`` (cron in a time zone), ``triggering`` (alerts, schedules, new data,
upstream runs), ``decisions`` (champion against challenger) with ``snapshot`` (the declared
evaluation data), ``shadowing`` and ``live_comparison`` (the shadow policy's live trial),
``probation``, ``why``, ``reproduce``, ``service`` (``yard.pipelines``) and ``worker``
(``modelyard worker``'s loop).
"""
