"""Buffered metric logging: the training loop appends to memory, a thread writes batches.

``add`` only validates and appends, so logging a metric costs about a microsecond. A daemon
thread flushes every ``interval`` seconds (sooner when ``max_points`` are waiting), and
``flush`` runs at run end and at interpreter exit. A process killed with SIGKILL loses at
most the points logged in the last ``interval`` plus the time one flush takes; everything
flushed before is committed. Each flush also refreshes the heartbeat of the process's
running runs, by which a run whose process died is later shown as killed.

A batch whose write failed is kept whole and sent again before anything newer. For a store
whose answers can be lost after the write landed (``keys_batches``: a server restarting),
each batch gets a key when first sent and keeps it; the store then recognises a batch sent
again and logs nothing twice.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
import weakref

from modelyard.backends.metadata.base import MetricPoint, TrackingStore

log = logging.getLogger("modelyard.tracking")

_buffers: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()


class MetricBuffer:
    def __init__(self, store: TrackingStore, *, interval: float, max_points: int,
                 heartbeat_every: float) -> None:
        self._store = store
        self._interval = interval
        self._max_points = max(1, max_points)
        self._heartbeat_every = heartbeat_every
        self._reset()
        _buffers.add(self)

    def _reset(self) -> None:
        self._points: list[MetricPoint] = []
        self._unsent: list[tuple[str, list[MetricPoint]]] = []  # failed batches, with keys
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._active: set[str] = set()
        self._last_beat = 0.0
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, point: MetricPoint) -> None:
        with self._lock:
            self._points.append(point)
            full = len(self._points) >= self._max_points
        if self._thread is None:
            self._start()
        if full:
            self._wake.set()

    def extend(self, points: list[MetricPoint]) -> None:
        with self._lock:
            self._points.extend(points)
            full = len(self._points) >= self._max_points
        if self._thread is None:
            self._start()
        if full:
            self._wake.set()

    def track(self, run_id: str) -> None:
        with self._lock:
            self._active.add(run_id)
        if self._thread is None:
            self._start()

    def untrack(self, run_id: str) -> None:
        with self._lock:
            self._active.discard(run_id)

    def pending(self) -> int:
        with self._lock:
            return len(self._points) + sum(len(p) for _, p in self._unsent)

    def flush(self) -> None:
        """Write everything buffered now: batches that failed before (under their first
        key), then the new points. On failure what was not written stays buffered and it
        raises."""
        with self._flush_lock:
            with self._lock:
                if self._points:
                    key = uuid.uuid4().hex if self._store.keys_batches else ""
                    self._unsent.append((key, self._points))
                    self._points = []
                batches = list(self._unsent)
                active = list(self._active)
            if batches:
                for key, points in batches:
                    self._store.log_metrics(points, heartbeat=active, batch_key=key or None)
                    with self._lock:
                        self._unsent.remove((key, points))
            elif active and time.monotonic() - self._last_beat >= self._heartbeat_every:
                self._store.log_metrics([], heartbeat=active)
            else:
                return
            self._last_beat = time.monotonic()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._loop, name="modelyard-metrics",
                                            daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # keep training; the points stay buffered
                log.warning("modelyard: metric flush failed, will retry: %s", exc)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self.flush()


def _flush_all_at_exit() -> None:
    for buf in list(_buffers):
        try:
            buf.close()
        except Exception as exc:
            log.error("modelyard: could not flush metrics at exit: %s", exc)


def _after_fork_in_child() -> None:
    # A forked child has no flusher thread; give each buffer fresh state.
    for buf in list(_buffers):
        buf._reset()


atexit.register(_flush_all_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
