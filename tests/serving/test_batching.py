"""Micro-batching: concurrent requests share model calls, each gets its own rows back."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from modelyard.serving.batching import MicroBatcher, batching_helps


class SlowModel:
    """Doubles ``x``; every call costs ``per_call`` seconds whatever its size."""

    def __init__(self, per_call: float = 0.005) -> None:
        self.per_call = per_call
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, columns: Mapping[str, list[Any]]) -> list[Any]:
        time.sleep(self.per_call)
        values = columns["x"]
        if any(v == "boom" for v in values):
            raise ValueError("bad row")
        with self.lock:
            self.calls.append(len(values))
        return [2 * v for v in values]


def _hammer(batcher: MicroBatcher, clients: int, each: int) -> dict[int, list[Any]]:
    results: dict[int, list[Any]] = {}

    def client(i: int) -> None:
        out = []
        for j in range(each):
            out.extend(batcher.predict({"x": [i * 1000 + j, i * 1000 + j + 0.5]}, 2))
        results[i] = out

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_requests_share_calls_and_get_their_own_rows() -> None:
    model = SlowModel()
    batcher = MicroBatcher(model)
    try:
        results = _hammer(batcher, clients=8, each=10)
    finally:
        batcher.close()
    for i, out in results.items():
        expected = [2 * v for j in range(10) for v in (i * 1000 + j, i * 1000 + j + 0.5)]
        assert out == expected
    assert sum(model.calls) == 8 * 10 * 2
    assert len(model.calls) < 80  # calls were shared
    assert max(model.calls) > 2


def test_a_failing_request_does_not_fail_the_ones_batched_with_it() -> None:
    model = SlowModel(per_call=0.02)
    batcher = MicroBatcher(model)
    outcomes: dict[str, Any] = {}

    def send(name: str, value: Any) -> None:
        try:
            outcomes[name] = batcher.predict({"x": [value]}, 1)
        except ValueError as exc:
            outcomes[name] = exc

    try:
        blocker = threading.Thread(target=send, args=("first", 1))
        blocker.start()
        time.sleep(0.005)  # the next two queue while the first call runs
        threads = [threading.Thread(target=send, args=(n, v))
                   for n, v in (("good", 3), ("bad", "boom"))]
        for t in threads:
            t.start()
        for t in [blocker, *threads]:
            t.join()
    finally:
        batcher.close()
    assert outcomes["first"] == [2] and outcomes["good"] == [6]
    assert isinstance(outcomes["bad"], ValueError)


def test_a_closed_batcher_answers_directly() -> None:
    model = SlowModel(per_call=0)
    batcher = MicroBatcher(model)
    batcher.close()
    assert batcher.predict({"x": [4]}, 1) == [8]
    batcher.close()  # twice is fine


@pytest.mark.parametrize(("per_call", "helps"), [(0.004, True), (0.0, False)])
def test_batching_is_used_where_timing_says_it_helps(per_call: float, helps: bool) -> None:
    assert batching_helps(SlowModel(per_call), {"x": [1.0]}) is helps
