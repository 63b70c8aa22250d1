"""Four ``modelyard serve`` processes on PostgreSQL under load: twenty alias moves reach every
one of them within a second (LISTEN/NOTIFY, not their polls), and no request fails."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

import modelyard
from modelyard.serving.fleet import live_replicas, wait_for_version

from .support import MODEL, NUMERIC, linear, register, setup, start_serve, stop_serve

REPLICAS = 4
MOVES = 20
PREDICT = f"/v1/models/{MODEL}/predict"
ROW = {"instances": [{"age": 33, "vehicle_value": 12_000.0}]}


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_alias_moves_reach_every_replica_within_a_second_with_no_failed_request(
        project: Path, pg_uri: str) -> None:
    artifacts = (project / ".modelyard" / "artifacts").as_uri()
    yard = modelyard.connect(pg_uri, project=project, artifact_uri=artifacts,
                             capture_git=False, capture_packages=False)
    training = setup(yard, materialize=False)
    register(yard, linear(training), training, features=NUMERIC)
    register(yard, linear(training, scale=2.0), training, features=NUMERIC, alias=None)
    env = {"MODELYARD_URI": pg_uri, "MODELYARD_ARTIFACT_URI": artifacts}
    servers = []
    try:
        for i in range(REPLICAS):  # polls every 30 s: only a notification can be this fast
            servers.append(start_serve(project, [f"{MODEL}@production", "--poll-interval",
                                                 "30"], project / f"server-{i}.log", env))
        bases = [base for _, base in servers]
        assert len(live_replicas(yard.replicas)) == REPLICAS

        stop = threading.Event()
        failures: list[str] = []
        # per replica: (time answered, version) of every answer, in order
        seen: list[list[tuple[float, int]]] = [[] for _ in range(REPLICAS)]

        def load(i: int) -> None:  # a steady stream, not a saturating one
            with httpx.Client(base_url=bases[i], timeout=30) as http:
                while not stop.is_set():
                    try:
                        response = http.post(PREDICT, json=ROW)
                    except httpx.HTTPError as exc:
                        failures.append(f"{bases[i]}: {exc!r}")
                        continue
                    if response.status_code != 200:
                        failures.append(f"{bases[i]}: {response.status_code} {response.text}")
                        continue
                    seen[i].append((time.monotonic(),
                                    int(response.headers["Modelyard-Model-Version"])))
                    time.sleep(0.005)

        threads = [threading.Thread(target=load, args=(i,)) for i in range(REPLICAS)]
        for thread in threads:
            thread.start()
        reach: list[float] = []
        promote_s: list[float] = []
        for move in range(MOVES):
            version = 2 if move % 2 == 0 else 1
            before = time.monotonic()
            yard.models.promote(MODEL, version, "production", reason=f"move {move}")
            moved = time.monotonic()  # the move has committed
            promote_s.append(moved - before)
            # the replica list (heartbeats) shows every replica on the new version...
            assert wait_for_version(yard.replicas, MODEL, "production", version,
                                    timeout=30).done, f"move {move}"
            time.sleep(0.2)  # ...and each has answered with it since
            last = 0.0
            for i, answers in enumerate(seen):
                flips = [at for at, v in list(answers) if at > before and v == version]
                assert flips, f"move {move}: replica {i} never answered version {version}"
                stale = [at for at, v in list(answers) if at > flips[0] and v != version]
                assert not stale, f"move {move}: replica {i} answered the old version again"
                last = max(last, flips[0] - moved)
            reach.append(max(last, 0.0))
        stop.set()
        for thread in threads:
            thread.join()
        p50, p99 = np.percentile(reach, [50, 99])
        print(f"\nalias move -> last of {REPLICAS} replicas serving: p50 {p50 * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms over {MOVES} moves; {sum(map(len, seen))} requests; "
              f"promote() took {np.median(promote_s) * 1000:.0f} ms (median)")
        assert not failures, failures[:5]
        assert min(map(len, seen)) > 0
        assert p99 < 1.0, reach
    finally:
        for proc, _ in servers:
            stop_serve(proc)
        yard.close()
