"""Adaptive micro-batching: concurrent small requests to one version predicted together.

A model whose every call costs far more than its rows do (a scikit-learn forest spends most of
a one-row ``predict`` starting up) answers many concurrent clients faster when their rows go
through one call. :class:`MicroBatcher` runs one thread per version that takes whatever
requests are waiting, up to ``max_rows`` rows, predicts them in one call and hands each
request its own slice. It never waits for more requests to arrive: a lone request is
predicted at once, and batches form by themselves while a call is running. Whether a version
is batched is decided when it loads (:func:`batching_helps`), from timing the model itself.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

__all__ = ["MicroBatcher", "batching_helps"]

Columns = Mapping[str, list[Any]]
# What a model call takes: input columns, or (for a version that predicts from a float
# matrix) the matrix itself
Inputs = Any
_STOP = object()


def join_columns(parts: list[Columns]) -> Columns:
    """The rows of several requests' columns, in order, as one set of columns."""
    names = list(parts[0])
    return {n: [v for part in parts for v in part[n]] for n in names}


def join_matrices(parts: list[Any]) -> Any:
    """The rows of several requests' matrices, in order, as one matrix."""
    import numpy as np

    return np.concatenate(parts)


@dataclass
class _Item:
    columns: Inputs
    rows: int
    future: Future[list[Any]]


class MicroBatcher:
    """Predicts the rows of concurrent requests in shared calls (one worker thread).
    ``join`` makes one model input of several requests' inputs (columns by default; a
    version that predicts from a matrix joins matrices)."""

    def __init__(self, predict: Callable[[Inputs], list[Any]], *, max_rows: int = 256,
                 name: str = "modelyard-batcher",
                 observe: Callable[[int], None] | None = None,
                 join: Callable[[list[Any]], Inputs] = join_columns) -> None:
        self._predict = predict
        self._join = join
        self._max_rows = max_rows
        self._observe = observe
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed = False
        self._lock = threading.Lock()  # no request is queued after the stop marker
        self._thread.start()

    def predict(self, columns: Inputs, rows: int) -> list[Any]:
        """The predictions of ``rows`` rows, computed with whatever else is waiting."""
        if rows >= self._max_rows:
            return self._predict(columns)
        item = _Item(columns, rows, Future())
        with self._lock:
            closed = self._closed
            if not closed:
                self._queue.put(item)
        if closed:  # swapped out while this request was on its way: answer it here
            return self._predict(columns)
        return item.future.result()

    def close(self) -> None:
        """Stop the worker after the requests already queued."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            rows = first.rows
            stop = False
            while rows < self._max_rows:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
                rows += item.rows
            self._answer(batch)
            if stop:
                return

    def _answer(self, batch: list[_Item]) -> None:
        if len(batch) == 1:
            item = batch[0]
            self._settle(item, self._caller(item))
            return
        try:
            outputs = self._predict(self._join([item.columns for item in batch]))
        except BaseException:  # one bad row must not fail the others: answer each alone
            for item in batch:
                self._settle(item, self._caller(item))
            return
        if self._observe is not None:
            self._observe(len(batch))
        start = 0
        for item in batch:
            item.future.set_result(outputs[start:start + item.rows])
            start += item.rows

    def _caller(self, item: _Item) -> Callable[[], list[Any]]:
        return lambda: self._predict(item.columns)

    def _settle(self, item: _Item, compute: Callable[[], list[Any]]) -> None:
        try:
            item.future.set_result(compute())
        except BaseException as exc:
            item.future.set_exception(exc)
        if self._observe is not None:
            self._observe(1)


def batching_helps(predict: Callable[[Inputs], list[Any]], example: Inputs, *,
                   repeats: int = 5, rows: int = 16) -> bool:
    """Whether predicting ``rows`` rows in one call costs much less than ``rows`` calls of
    one row each: timed on the model itself, best of ``repeats``. ``example`` is input
    columns, or a matrix for a version that predicts from one."""
    if not isinstance(example, Mapping):  # a matrix
        if not len(example):
            return False
        one, many = example[:1], join_matrices([example[:1]] * rows)
    else:
        one = {n: values[:1] for n, values in example.items()}
        if not one or not next(iter(one.values())):
            return False
        many = {n: (values[:1] * rows) for n, values in one.items()}

    def best(columns: Inputs) -> float:
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            predict(columns)
            times.append(time.perf_counter() - began)
        return min(times)

    single = best(one)
    if single < 0.0005:  # under half a millisecond a call: handing rows over costs more
        return False
    return best(many) < single * rows / 4
