"""``modelyard worker``: take queued pipeline runs from the metadata store, one at a time,
fire due schedules, look for new data and conclude the shadow trials that are due, until
stopped.

Several workers (processes, machines) can share one store: a run is leased to one worker
at a time, and each schedule's due time is queued once (see
:mod:`modelyard.backends.metadata.pipelines`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from modelyard.backends.metadata.pipelines import PipelineRunRecord
from modelyard.errors import StorageError
from modelyard.pipelines.queueing import DEFAULT_LEASE_MS, worker_name
from modelyard.pipelines.service import PipelineService

__all__ = ["Worker"]

_log = logging.getLogger(__name__)


@dataclass
class Worker:
    service: PipelineService
    name: str = field(default_factory=worker_name)
    lease_ms: int = DEFAULT_LEASE_MS
    poll_seconds: float = 1.0
    data_poll_seconds: float = 30.0  # how often sources are looked at for new rows
    shadow_poll_seconds: float = 5.0  # how often shadow trials are checked for their end
    stop: threading.Event = field(default_factory=threading.Event)

    def _check_shadows(self) -> None:
        """Conclude the shadow trials that are due; a failure is logged, and the queue
        goes on."""
        try:
            self.service.check_shadows()
        except StorageError:
            raise
        except Exception:
            _log.exception("worker %s: could not check the shadow trials", self.name)

    def run(self, *, max_runs: int | None = None, until_idle: bool = False,
            on_run: Callable[[PipelineRunRecord], None] | None = None) -> int:
        """Work until stopped (or ``max_runs`` runs, or the queue is empty with
        ``until_idle``); the number of runs done."""
        done = 0
        data_checked = shadows_checked = -math.inf
        while not self.stop.is_set():
            try:
                self.service.fire_due()
                if time.monotonic() - data_checked >= self.data_poll_seconds:
                    data_checked = time.monotonic()
                    self.service.fire_new_data()
                if time.monotonic() - shadows_checked >= self.shadow_poll_seconds:
                    shadows_checked = time.monotonic()
                    self._check_shadows()
                run = self.service.work_once(self.name, lease_ms=self.lease_ms)
            except StorageError as exc:  # the store is away: wait and try again
                _log.warning("worker %s: %s; trying again in %.1f s", self.name, exc.message,
                             self.poll_seconds)
                self.stop.wait(self.poll_seconds)
                continue
            if run is None:
                if until_idle:
                    break
                self.stop.wait(self.poll_seconds)
                continue
            done += 1
            if on_run is not None:
                on_run(run)
            if max_runs is not None and done >= max_runs:
                break
        return done
