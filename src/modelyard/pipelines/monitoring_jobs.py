"""Monitoring checks on a schedule: a job on the workers' scheduler, or a loop here.

``schedule_monitoring`` stores the checks as a built-in pipeline, ``modelyard.monitor``,
with a schedule: ``modelyard worker`` fires each due time once (however many workers see
it) and one worker, holding the run's lease, runs the checks, so two workers never run
the same check twice; the run is recorded like any pipeline run (``modelyard pipelines
runs modelyard.monitor``), and the alerts it stores reach the pipelines that listen for
them. ``MonitoringLoop`` is the foreground form for a single user with no worker
(``modelyard monitor run --every``): check, wait, check again, until interrupted.

::

    schedule_monitoring(yard.pipelines, every="1h", window="1d")   # then: modelyard worker
    MonitoringLoop(yard.monitoring, window="1h").run(every="15m", on_result=print)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.pipelines import ScheduleRecord
from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.pipelines.definitions import Pipeline

if TYPE_CHECKING:
    from modelyard.monitoring.check import MonitorResult
    from modelyard.monitoring.service import MonitoringService
    from modelyard.pipelines.service import PipelineChange, PipelineService

__all__ = ["MONITOR_PIPELINE", "MonitoringLoop", "every_to_cron", "monitoring_pipeline",
           "monitoring_schedule", "schedule_monitoring", "unschedule_monitoring"]

MONITOR_PIPELINE = "modelyard.monitor"

# The stored code of the built-in pipeline: what one scheduled round does.
_CODE = '''\
def monitor(ctx):
    """Check the monitored models (or the ones named), store the results, send alerts."""
    p = ctx.params
    results = ctx.monitoring.run(p["models"] or None, window=p["window"], rules=p["rules"],
                                 notify=p["notify"])
    for result in results:
        print(f"{result.model}: {result.rows} predictions, {len(result.fired)} alert(s) "
              "fired" + "".join(f"; {outcome.message}" for outcome in result.fired))
    if not results:
        print("no model has monitoring rules: name models, or add monitoring rules")
'''

_MINUTE_STEPS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
_HOUR_STEPS = (1, 2, 3, 4, 6, 8, 12)


def every_to_cron(every: str) -> str:
    """The cron expression that fires every ``every`` on the clock (``"15m"`` ->
    ``"*/15 * * * *"``, ``"1h"`` -> ``"0 * * * *"``, ``"1d"`` -> ``"0 0 * * *"``,
    ``"7d"`` -> Mondays at 00:00). Workers fire schedules on whole minutes of the clock,
    so the interval must divide an hour or a day (or be a week)."""
    from modelyard.monitoring.windows import parse_duration

    seconds = parse_duration(every, field="every") / 1_000_000
    minutes = seconds / 60
    if minutes in _MINUTE_STEPS:
        return "* * * * *" if minutes == 1 else f"*/{int(minutes)} * * * *"
    hours = minutes / 60
    if hours in _HOUR_STEPS:
        return "0 * * * *" if hours == 1 else f"0 */{int(hours)} * * *"
    if hours == 24:
        return "0 0 * * *"
    if hours == 168:
        return "0 0 * * 1"
    raise InvalidInputError(
        f"every {every!r} cannot be run by the workers' scheduler, which fires on the "
        f"clock: use an interval that divides an hour (minutes: "
        f"{', '.join(map(str, _MINUTE_STEPS))}) or a day (hours: "
        f"{', '.join(map(str, _HOUR_STEPS))}), or 1d or 7d; or give a cron expression",
        field="every")


def _check_inputs(models: Sequence[str], window: str | None, rules: Sequence[str],
                  notify: Sequence[str]) -> None:
    """Refuse now what would fail in every scheduled run."""
    from modelyard.monitoring.alerts import parse_rule
    from modelyard.monitoring.notify import notifier_from_text
    from modelyard.monitoring.windows import parse_duration

    if isinstance(models, str) or not all(isinstance(m, str) and m for m in models):
        raise InvalidInputError("models must be a list of model names", field="models")
    if window is not None:
        parse_duration(window, field="window")
    for text in rules:
        parse_rule(text, field="rules")
    for text in notify:
        notifier_from_text(text, field="notify")


def monitoring_pipeline(*, models: Sequence[str] = (), window: str | None = None,
                        rules: Sequence[str] = (), notify: Sequence[str] = (),
                        cron: str | None = None, timezone: str = "UTC") -> Pipeline:
    """The built-in pipeline that runs the checks; its params are what to check. One
    attempt: a run whose worker died is marked failed, not run again (its alerts may have
    been sent), and the next due time checks anew."""
    _check_inputs(models, window, rules, notify)
    params: dict[str, Any] = {"models": list(models), "window": window,
                              "rules": list(rules), "notify": list(notify)}
    return Pipeline(MONITOR_PIPELINE, None, _CODE, "monitor", params, cron, timezone,
                    max_attempts=1, description="The monitoring checks on the workers' "
                    "scheduler (modelyard monitor schedule).")


def schedule_monitoring(pipelines: PipelineService, *, every: str | None = None,
                        cron: str | None = None, timezone: str = "UTC",
                        models: Sequence[str] = (), window: str | None = None,
                        rules: Sequence[str] = (), notify: Sequence[str] = ()
                        ) -> PipelineChange:
    """Put the monitoring checks on the workers' scheduler: every ``every`` (see
    :func:`every_to_cron`) or at ``cron`` in ``timezone``. ``models`` (default: every
    monitored model), ``window``, ``rules`` and ``notify`` are those of
    ``yard.monitoring.run``. Changing them makes a new version of the built-in pipeline;
    the schedule is replaced either way."""
    if (every is None) == (cron is None):
        raise InvalidInputError("give the checks an interval (every) or a cron expression, "
                                "one of the two", field="every")
    cron = every_to_cron(every) if every is not None else cron
    pipeline = monitoring_pipeline(models=models, window=window, rules=rules, notify=notify,
                                   cron=cron, timezone=timezone)
    change = pipelines.apply([pipeline])[0]
    pipelines.set_schedule(MONITOR_PIPELINE, pipeline.schedule, timezone)
    return change


def unschedule_monitoring(pipelines: PipelineService) -> ScheduleRecord:
    """Take the monitoring checks off the workers' scheduler (their runs stay recorded)."""
    try:
        return pipelines.set_schedule(MONITOR_PIPELINE, None)
    except NotFoundError:
        raise NotFoundError("the monitoring checks were never scheduled: nothing to stop "
                            "(modelyard monitor schedule --every 1h starts them)",
                            field="pipeline") from None


def monitoring_schedule(pipelines: PipelineService) -> ScheduleRecord | None:
    """The checks' schedule, or None when they are not on the scheduler."""
    found = next((s for s in pipelines.store.schedules() if s.pipeline == MONITOR_PIPELINE),
                 None)
    return None if found is None or found.cron is None else found


@dataclass
class MonitoringLoop:
    """The checks in the foreground, for one user without a worker: check every model
    (or the ones named), wait, check again, until interrupted (KeyboardInterrupt is left
    to the caller)."""

    monitoring: MonitoringService
    models: Sequence[str] = ()
    window: str | None = None
    start: Any = None
    end: Any = None
    rules: Sequence[str] = ()
    notify: Sequence[str] = ()
    last: list[MonitorResult] | None = None  # the last round done

    def round(self, on_result: Callable[[MonitorResult], None] | None = None
              ) -> list[MonitorResult] | None:
        """One round of checks; None when there is no model to check."""
        names = list(self.models) or self.monitoring.monitored_models()
        if not names:
            return None
        results = []
        for name in names:
            result = self.monitoring.check(name, window=self.window, start=self.start,
                                           end=self.end, rules=self.rules, notify=self.notify)
            results.append(result)
            if on_result is not None:
                on_result(result)
        self.last = results
        return results

    def run(self, every: str | None = None,
            on_result: Callable[[MonitorResult], None] | None = None,
            rounds: int | None = None) -> list[MonitorResult] | None:
        """Check now, then every ``every`` (None: once) until interrupted or ``rounds``
        rounds are done; the last round's results (None: no model to check). After an
        interrupt, :attr:`last` holds the last round done."""
        from modelyard.monitoring.windows import parse_duration

        pause = None if every is None else parse_duration(every, field="every") / 1e6
        done = 0
        while True:
            results = self.round(on_result)
            done += 1
            if results is None or pause is None or (rounds is not None and done >= rounds):
                return results
            time.sleep(pause)
