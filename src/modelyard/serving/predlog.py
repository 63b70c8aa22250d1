"""The prediction log's writer: requests append to memory, a thread writes batches.

``log`` appends the records to an in-memory queue and returns (about a microsecond; it never
blocks on the store and never raises); ``log_failure`` queues a failed request's
:class:`~modelyard.backends.metadata.predictions.FailureRecord` the same way, in the same
queue. ``log_answer`` queues a whole answer as it is, with the time it was logged: its
records (one per row) are built by the writer thread, when it takes them, so a request pays
for none of that. A daemon thread writes the queue in batches of at most ``max_batch``
records, each batch one store transaction (two when it holds predictions and failures), every
``flush_interval`` seconds or as soon as ``max_batch`` records wait. ``flush`` waits until
everything logged before it is written; ``close`` flushes and stops the thread, and runs at
interpreter exit.

When the store fails (down, locked, full), the batch is kept and retried, after a pause that
doubles from ``flush_interval`` up to ``retry_max`` seconds (a ``flush`` retries at once);
stores are idempotent on the record key, so a batch whose commit was reported lost is simply
written again. Memory stays bounded: beyond ``max_pending`` queued records, the oldest are
dropped and counted (the batch being retried is kept, so at most ``max_pending + max_batch``
records are held). A failure episode and a dropping episode each log one warning, and one
line when writes resume. A record the store refuses as malformed is dropped and counted as
``invalid``, so it never blocks the records behind it.

A process killed with SIGKILL loses what was not yet written (at most the last
``flush_interval`` plus one write); everything ``flush`` returned for is committed.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from modelyard.backends.metadata.predictions import (
    FailureRecord,
    PredictionRecord,
    PredictionStore,
)
from modelyard.backends.predictions.codec import check_failure, check_record
from modelyard.backends.resources import resource_error
from modelyard.errors import InvalidInputError

__all__ = ["AnswerLike", "PredictionLog", "PredictionLogStats", "records_from_answer"]

log = logging.getLogger("modelyard.serving")

EXIT_TIMEOUT_S = 10.0  # how long interpreter exit waits for the store

_logs: weakref.WeakSet[PredictionLog] = weakref.WeakSet()

Logged = PredictionRecord | FailureRecord  # what the store is given


@dataclass(slots=True)
class _Rows:
    """Rows ``start`` to ``stop`` of an answer, queued as they are: their records are built
    when the writer takes them."""

    answer: AnswerLike
    at_us: int  # when the answer was logged
    start: int
    stop: int

    def records(self) -> list[PredictionRecord]:
        return records_from_answer(self.answer, self.at_us, self.start, self.stop)


Queued = PredictionRecord | FailureRecord | _Rows  # what the queue holds


def _size(item: Queued) -> int:
    return item.stop - item.start if type(item) is _Rows else 1


@dataclass(frozen=True)
class PredictionLogStats:
    logged: int  # records handed to log() or log_failure() since start
    written: int  # committed to the store
    pending: int  # waiting in memory (queued or being written)
    dropped: int  # oldest records discarded because the queue was full, or logged after close
    invalid: int  # records the store refused as malformed
    failures: int  # failed write attempts
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AnswerLike(Protocol):
    """What the model server answered one request with (``serving.service.Answer``)."""

    @property
    def model(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def role(self) -> Any: ...
    @property
    def request_id(self) -> str: ...
    @property
    def predictions(self) -> Sequence[Any]: ...
    @property
    def inputs(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def entities(self) -> Sequence[Mapping[str, Any]] | None: ...
    @property
    def status(self) -> Sequence[str] | None: ...
    @property
    def errors(self) -> Mapping[int, str]: ...
    @property
    def seconds(self) -> float: ...


def records_from_answer(answer: AnswerLike, at_us: int | None = None, start: int = 0,
                        stop: int | None = None) -> list[PredictionRecord]:
    """One record per answered row of an answer (rows ``start`` to ``stop``, by default
    all). A prediction that is a mapping is the output as it is; any other value is
    ``{"prediction": value}``. A row answered without a prediction (an entity whose stored
    features are missing or expired) has a null output and its ``reason``; on the entity
    path every record has the lookup's ``status``. ``at_us`` defaults to now."""
    at = time.time_ns() // 1_000 if at_us is None else at_us
    latency_ms = answer.seconds * 1_000.0
    entities = answer.entities
    status = answer.status
    errors = answer.errors
    predictions, inputs = answer.predictions, answer.inputs
    end = min(len(predictions), len(inputs))
    end = end if stop is None else min(stop, end)
    rid, model, version, role = answer.request_id, answer.model, answer.version, answer.role
    records = []
    for row in range(start, end):
        prediction = predictions[row]
        output = prediction if isinstance(prediction, Mapping) else {"prediction": prediction}
        records.append(PredictionRecord(
            rid, row, model, version, role, at, latency_ms,
            entities[row] if entities is not None else None, inputs[row], output,
            status[row] if status is not None and row < len(status) else None,
            errors.get(row) if errors else None))
    return records


class PredictionLog:
    def __init__(self, store: PredictionStore, *, flush_interval: float = 0.5,
                 max_batch: int = 1_000, max_pending: int = 100_000,
                 retry_max: float = 30.0) -> None:
        if flush_interval <= 0 or retry_max <= 0:
            raise InvalidInputError("flush_interval and retry_max must be positive seconds",
                                    field="flush_interval")
        if max_batch < 1 or max_pending < 1:
            raise InvalidInputError("max_batch and max_pending must be at least 1",
                                    field="max_pending")
        self.store = store
        self._interval = flush_interval
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._retry_max = retry_max
        self._reset()
        _logs.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._queue: deque[Queued] = deque()
        self._queued = 0  # records in the queue (an answer's rows count one each)
        self._batch: list[Any] = []  # taken by the writer, not yet written
        # Records are numbered in logging order: the queue's head is number _head, the batch
        # starts at _batch_start; everything numbered below the oldest of them is done.
        self._logged = self._head = self._batch_start = 0
        self._written = self._dropped = self._invalid = self._failures = 0
        self._late = 0  # logged after close, never written
        self._last_error: str | None = None
        self._failing = False
        self._overflowed = self._warned_overflow = 0  # drops because the queue was full
        self._dropping = False
        self._thread: threading.Thread | None = None
        self._closed = False
        self._abandoned = False

    # --- the request path -----------------------------------------------------------------

    def log(self, records: PredictionRecord | Iterable[PredictionRecord]) -> None:
        """Queue records for writing; returns at once and never raises."""
        try:
            self._enqueue((records,) if isinstance(records, PredictionRecord) else (
                records if isinstance(records, (list, tuple)) else tuple(records)))
        except Exception:  # the request must not fail because of its log
            log.debug("modelyard: could not queue prediction records", exc_info=True)

    def log_failure(self, record: FailureRecord) -> None:
        """Queue a failed request for writing (usable as the server's failure sink);
        returns at once and never raises."""
        try:
            self._enqueue((record,))
        except Exception:
            log.debug("modelyard: could not queue a failure record", exc_info=True)

    def _enqueue(self, batch: Sequence[Queued], n: int | None = None) -> None:
        """Append to the queue (``n`` records; default one per item), dropping the oldest
        beyond ``max_pending``; wake the writer when a batch is full."""
        n = len(batch) if n is None else n
        with self._lock:
            if self._closed:  # not numbered: what close() waits for is already known
                self._late += n
                return
            self._logged += n
            self._queue.extend(batch)
            self._queued += n
            over = self._queued - self._max_pending
            if over > 0:
                self._drop_oldest(over)
            full = self._queued >= self._max_batch
        if self._thread is None:
            self._start()
        if full or over > 0:
            self._wake.set()

    def _drop_oldest(self, over: int) -> None:
        """Drop the ``over`` oldest queued records (the lock is held)."""
        self._dropped += over
        self._overflowed += over
        self._head += over
        self._queued -= over
        queue = self._queue
        while over:
            head = queue[0]
            size = _size(head)
            if size <= over:
                queue.popleft()
                over -= size
            else:  # the oldest rows of a queued answer
                assert type(head) is _Rows
                head.start += over
                over = 0

    def log_answer(self, answer: AnswerLike) -> None:
        """Log what the server answered (usable as the server's sink): queued as it is, its
        records built by the writer thread; returns at once and never raises."""
        try:
            n = min(len(answer.predictions), len(answer.inputs))
            if n:
                self._enqueue((_Rows(answer, time.time_ns() // 1_000, 0, n),), n)
        except Exception:
            log.debug("modelyard: could not log an answer", exc_info=True)

    # --- waiting and stopping -------------------------------------------------------------

    def _done_below(self) -> int:
        """Every record numbered below this is written, dropped or refused."""
        return self._batch_start if self._batch else self._head

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record logged before this call is written (or was dropped or
        refused). False when ``timeout`` seconds passed first (the store is failing)."""
        with self._lock:
            target = self._logged
            if self._done_below() >= target or self._abandoned:
                return self._done_below() >= target
            if self._thread is None or not self._thread.is_alive():
                self._start_locked()
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            while self._done_below() < target:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._progress.wait(left)
            return True

    def close(self, timeout: float | None = None) -> bool:
        """Flush, stop the writer and refuse further records (they count as dropped).
        Returns False, after logging how many records are lost, if the store did not take
        them within ``timeout`` seconds."""
        with self._lock:
            self._closed = True
        done = self.flush(timeout)
        thread = self._thread
        with self._lock:
            lost = self._logged - self._done_below()
            self._abandoned = True
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0 if done else 0)
        if lost:
            log.error("modelyard: the prediction log could not write %d records before "
                      "closing; they are lost (last error: %s)", lost, self._last_error)
        return done and not lost

    def stats(self) -> PredictionLogStats:
        with self._lock:
            pending = self._queued + sum(map(_size, self._batch))
            return PredictionLogStats(self._logged + self._late, self._written, pending,
                                      self._dropped + self._late, self._invalid,
                                      self._failures, self._last_error)

    # --- the writer thread ----------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if (self._thread is not None and self._thread.is_alive()) or self._abandoned:
            return
        self._thread = threading.Thread(target=self._loop, name="modelyard-predlog",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        delay = self._interval
        attempts = 0
        while not self._abandoned:
            self._wake.wait(delay)
            self._wake.clear()
            if self._abandoned:
                return
            try:
                self._warn_drops()
                drained = self._drain()
            except Exception:  # never let the writer die; the records stay queued
                log.exception("modelyard: unexpected error in the prediction log writer")
                drained = False
            if drained:
                attempts, delay = 0, self._interval
                with self._lock:
                    if self._closed and not self._queued:
                        return
            else:
                attempts += 1
                delay = min(self._retry_max, self._interval * 2 ** min(attempts - 1, 30))

    def _drain(self) -> bool:
        """Write batches until the queue is empty (True) or a write fails (False)."""
        while True:
            with self._lock:
                taken = None if self._batch else self._take()
                if taken is None and not self._batch:
                    return True
            if taken is not None:  # an answer's records are built here, off the request
                records = self._expand(taken)
                with self._progress:
                    self._batch = records
                    if not records:  # (none could be built: counted as invalid)
                        self._progress.notify_all()
                        continue
            batch = self._batch
            try:
                _write(self.store, batch)
            except InvalidInputError:
                if not self._drop_invalid(batch):
                    self._failed(batch, "the store refused the batch as malformed")
                    return False
                continue
            except Exception as exc:
                self._failed(batch, self._describe(exc))
                return False
            with self._progress:
                self._written += len(batch)
                self._batch = []
                recovered = self._failing
                self._failing = False
                self._progress.notify_all()
            if recovered:
                log.warning("modelyard: prediction log writes resumed (%d records pending)",
                            self.stats().pending)

    def _take(self) -> list[Queued] | None:
        """Take the next batch, at most ``max_batch`` records, off the queue (the lock is
        held); None when the queue is empty. The batch counts as taken (``_batch``) until
        written."""
        room = self._max_batch
        queue = self._queue
        taken: list[Queued] = []
        while room and queue:
            head = queue[0]
            size = _size(head)
            if size <= room:
                taken.append(queue.popleft())
                room -= size
            else:  # the first rows of a queued answer; the rest stay queued
                assert type(head) is _Rows
                taken.append(_Rows(head.answer, head.at_us, head.start, head.start + room))
                head.start += room
                room = 0
        count = self._max_batch - room
        if not count:
            return None
        self._batch_start = self._head
        self._head += count
        self._queued -= count
        self._batch = taken  # (its records replace it once built)
        return taken

    def _expand(self, taken: list[Queued]) -> list[Logged]:
        """The records of a taken batch. An answer whose records cannot be built (it
        should not happen) is counted as invalid and logged once."""
        records: list[Logged] = []
        for item in taken:
            if not isinstance(item, _Rows):
                records.append(item)
                continue
            try:
                records.extend(item.records())
            except Exception:
                log.warning("modelyard: the prediction log could not build the records of "
                            "request %r", getattr(item.answer, "request_id", None),
                            exc_info=True)
                with self._progress:
                    self._invalid += item.stop - item.start
        return records

    def _describe(self, exc: Exception) -> str:
        """The failure as the warning and ``stats().last_error`` give it: for a full disk,
        a read-only or refused folder or too many open files, which one, where, and what to
        do."""
        where = str(getattr(self.store, "root", None) or getattr(self.store, "uri", "")
                    or "the prediction store")
        clear = resource_error(exc, where, "cannot write the prediction log")
        if clear is not None:
            return f"StorageError: {clear.message}"
        return f"{type(exc).__name__}: {exc}"

    def _drop_invalid(self, batch: list[Logged]) -> bool:
        """Remove the malformed records from the batch being written; True if any was."""
        kept: list[Logged] = []
        refused: list[str] = []
        for record in batch:
            try:
                if isinstance(record, FailureRecord):
                    check_failure(record)
                else:
                    check_record(record)
                kept.append(record)
            except InvalidInputError as exc:
                refused.append(str(exc))
        if not refused:
            return False
        log.warning("modelyard: the prediction log dropped %d malformed records, e.g. %s",
                    len(refused), refused[0])
        with self._progress:
            self._invalid += len(refused)
            self._batch = kept  # _batch_start stays: no kept record is numbered below it
            self._progress.notify_all()
        return True

    def _failed(self, batch: list[Logged], error: str) -> None:
        with self._lock:
            self._failures += 1
            self._last_error = error
            first = not self._failing
            self._failing = True
        if first:
            log.warning("modelyard: prediction log write failed, keeping %d records and "
                        "retrying: %s", len(batch), error)

    def _warn_drops(self) -> None:
        """One warning when the queue starts overflowing; the episode ends once the queue
        is back under half its bound with no new drops."""
        with self._lock:
            overflowed, queued = self._overflowed, self._queued
        if overflowed > self._warned_overflow and not self._dropping:
            log.warning("modelyard: the prediction log queue is full (%d records): dropping "
                        "the oldest; %d dropped so far", self._max_pending, overflowed)
            self._dropping = True
        elif overflowed == self._warned_overflow and queued < self._max_pending // 2:
            self._dropping = False
        self._warned_overflow = overflowed


def _write(store: PredictionStore, batch: list[Logged]) -> None:
    """Predictions, then failures: each kind one transaction. Both writes are idempotent,
    so a batch retried after only its first write succeeded stores each record once."""
    predictions = [r for r in batch if isinstance(r, PredictionRecord)]
    failures = [r for r in batch if not isinstance(r, PredictionRecord)]  # checked there
    if predictions:
        store.write(predictions)
    if failures:
        store.write_failures(failures)


def _close_all_at_exit() -> None:
    for plog in list(_logs):
        try:
            plog.close(EXIT_TIMEOUT_S)
        except Exception as exc:
            log.error("modelyard: could not flush the prediction log at exit: %s", exc)


def _after_fork_in_child() -> None:
    # A forked child has no writer thread, and the parent writes what it had queued.
    for plog in list(_logs):
        plog._reset()


atexit.register(_close_all_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
