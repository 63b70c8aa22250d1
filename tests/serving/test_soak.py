"""A bounded soak of a real ``modelyard serve`` (two workers, Redis online store) on 127.0.0.1:
mixed valid and invalid traffic from several clients, two hot swaps, and Redis killed and
restarted in the middle. The server stays up, valid requests succeed (entity requests get a
clear 503 while Redis is down), no answer is a 500, and the prediction log holds exactly one
entry per answered row: entities whose stored features are found, expired (a 15-day ttl) or
missing are in the mix, the last two answered with a null prediction and logged with their
status. ``MODELYARD_SOAK_SECONDS`` makes it longer (default 20)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from .support import (
    MODEL,
    NUMERIC,
    expired_ids,
    free_port,
    linear,
    open_yard,
    register,
    setup,
    start_serve,
    stop_serve,
)

MODELYARD = Path(sys.executable).parent / "modelyard"
PREDICT = f"/v1/models/{MODEL}/predict"
SECONDS = float(os.environ.get("MODELYARD_SOAK_SECONDS", "20"))


class Redis:
    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.proc = None


def _scrape(base: str) -> dict[str, list[Any]]:
    """``/metrics``, parsed: family name -> samples."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base}/metrics", timeout=30).text
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


@pytest.mark.slow
@pytest.mark.redis
def test_the_server_survives_mixed_traffic_swaps_and_a_redis_outage(project: Path,
                                                                    tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not on PATH")
    redis = Redis(tmp_path)
    redis.start()
    online = f"redis://127.0.0.1:{redis.port}/0?prefix=soak"
    yard = open_yard(project, online)
    training = setup(yard, ttl="15d")
    expired, found = expired_ids()
    register(yard, linear(training), training, features=NUMERIC)
    proc, base = start_serve(project, [f"{MODEL}@production", "--workers", "2",
                                       "--poll-interval", "0.3"], tmp_path / "server.log",
                             {"MODELYARD_ONLINE_URI": online})
    statuses: Counter[tuple[str, int]] = Counter()
    unexpected: list[str] = []
    predicted: Counter[str] = Counter()  # request id -> rows answered
    unfound: set[str] = set()  # requests with an expired and a missing entity
    lock = threading.Lock()
    stop = threading.Event()
    try:
        kinds = {
            "instances": ({"instances": [{"age": 40, "vehicle_value": 9e3},
                                         {"age": 22.5, "vehicle_value": 1e4}]}, {200}),
            "entities": ({"entities": [{"customer_id": found[0]}, {"customer_id": found[1]}]},
                         {200, 503}),
            "unfound": ({"entities": [{"customer_id": expired[0]}, {"customer_id": 10**6},
                                      {"customer_id": found[2]}]}, {200, 503}),
            "invalid": ({"instances": [{"age": "forty"}]}, {422}),
            "malformed": (None, {422}),
            "unknown": ({"instances": [{}]}, {404}),
        }

        def client(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=base, timeout=30) as http:
                while not stop.is_set():
                    kind = rng.choice(list(kinds))
                    body, allowed = kinds[kind]
                    path = "/v1/models/nope/predict" if kind == "unknown" else PREDICT
                    try:
                        response = (http.post(path, content=b'{"instances": [')
                                    if body is None else http.post(path, json=body))
                    except httpx.HTTPError as exc:
                        with lock:
                            unexpected.append(f"{kind}: {exc!r}")
                        continue
                    with lock:
                        statuses[(kind, response.status_code)] += 1
                        if response.status_code not in allowed:
                            unexpected.append(f"{kind}: {response.status_code} "
                                              f"{response.text[:200]}")
                        elif response.status_code == 200:
                            answer = response.json()
                            predicted[answer["request_id"]] += len(answer["predictions"])
                            if kind == "unfound":  # all missing just after Redis restarts
                                if answer["status"] not in (["expired", "missing", "found"],
                                                            ["missing"] * 3):
                                    unexpected.append(f"unfound: {answer}")
                                unfound.add(answer["request_id"])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        step = SECONDS / 6
        time.sleep(step)
        register(yard, linear(training, scale=2.0), training, features=NUMERIC)  # swap 1
        time.sleep(step)
        redis.kill()  # outage
        time.sleep(step)
        redis.start()  # back, empty (it keeps nothing on disk): materialize again
        yard.materialize()
        time.sleep(step)
        yard.models.rollback(MODEL, "production", reason="soak")  # swap 2
        time.sleep(2 * step)
        stop.set()
        for t in threads:
            t.join()
        assert proc.poll() is None, "the server died"
        after = httpx.post(f"{base}{PREDICT}", json=kinds["entities"][0], timeout=30)
        assert after.status_code == 200 and after.json()["version"] == 1
        predicted[after.json()["request_id"]] += 2
        scraped = _scrape(base)
    finally:
        stop.set()
        stop_serve(proc)
        redis.kill()
    assert unexpected == []
    # the two workers' metrics: bounded by model, with each worker's process gauges
    models = {s.labels.get("model") for s in scraped["modelyard_requests"]} - {None}
    assert models == {MODEL, "unknown"}
    assert len({s.labels["pid"] for s in scraped["modelyard_worker_resident_memory_bytes"]}
               ) == 2
    assert scraped["process_resident_memory_bytes"] and scraped["python_gc_objects_collected"]
    assert {(s.labels["version"], s.labels["role"])
            for s in scraped["modelyard_answer_seconds"]} >= {("1", "primary"), ("2", "primary")}
    assert statuses[("entities", 503)] > 0  # the outage was seen...
    assert statuses[("entities", 200)] > statuses[("entities", 503)]  # ...and survived
    assert statuses[("instances", 200)] > 50
    logged = yard.read_predictions(MODEL)
    yard.close()
    per_request = Counter(logged["request_id"])
    assert per_request == +predicted  # one entry per answered row, none lost or doubled
    assert unfound  # and the unfound entities' rows are there with their status
    rows = logged[logged["request_id"].isin(unfound)]
    assert set(rows["status"]) == {"expired", "missing", "found"}
    assert rows.loc[rows["status"] != "found", "reason"].notna().all()
    assert rows.loc[rows["status"] == "found", "reason"].isna().all()
    assert set(logged["version"]) == {1, 2}
