"""``modelyard serve MODEL@ALIAS`` in processes of its own, under concurrent clients, through
two promotions and a rollback: not one request fails, and every version answers in turn."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .support import MODEL, NUMERIC, linear, open_yard, register, setup, start_serve, stop_serve

MODELYARD = Path(sys.executable).parent / "modelyard"
PREDICT = f"/v1/models/{MODEL}/predict"


@pytest.fixture
def live(request: pytest.FixtureRequest, project: Path
         ) -> Iterator[tuple[str, Path, Callable[[], None]]]:
    yard = open_yard(project)
    training = setup(yard)
    register(yard, linear(training), training, features=NUMERIC)
    yard.close()
    proc, base = start_serve(project, [f"{MODEL}@production", "--workers",
                                       str(request.param), "--poll-interval", "0.3"],
                             project / "server.log")
    try:
        yield base, project, lambda: stop_serve(proc)
    finally:
        stop_serve(proc)


@pytest.mark.slow
@pytest.mark.parametrize("live", [1, 2], indirect=True, ids=["1-worker", "2-workers"])
def test_promotions_and_a_rollback_under_load_fail_no_request(
        live: tuple[str, Path, Callable[[], None]]) -> None:
    base, project, stop_server = live
    stop = threading.Event()
    seen: Counter[int] = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            while not stop.is_set():
                try:
                    response = http.post(PREDICT, json={"instances": [
                        {"age": 20 + i, "vehicle_value": 5_000.0}]})
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(repr(exc))
                    continue
                with lock:
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text}")
                    else:
                        body = response.json()
                        seen[body["version"]] += 1
                        answered.append(body["request_id"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()

    answered: list[str] = []

    def wait_for(version: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answer = httpx.post(f"{base}{PREDICT}", json={"instances": [
                {"age": 1, "vehicle_value": 1}]}, timeout=30).json()
            answered.append(answer["request_id"])
            if answer["version"] == version:
                return
            time.sleep(0.05)
        raise AssertionError(f"version {version} was not swapped in")

    yard = open_yard(project)
    try:
        training = yard.models.rebuild_training_set(MODEL, 1)
        time.sleep(0.5)
        register(yard, linear(training, scale=2.0), training, features=NUMERIC)
        wait_for(2)
        time.sleep(0.5)
        register(yard, linear(training, scale=3.0), training, features=NUMERIC)
        wait_for(3)
        time.sleep(0.5)
        yard.models.rollback(MODEL, "production", reason="test")
        wait_for(2)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
        yard.close()
    assert failures == []
    assert set(seen) == {1, 2, 3} and sum(seen.values()) > 100
    stop_server()
    with open_yard(project) as yard:  # one log entry per answered request, no more
        logged = yard.read_predictions(MODEL)
    assert sorted(logged["request_id"]) == sorted(answered)
