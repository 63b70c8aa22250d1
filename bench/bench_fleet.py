"""A fleet of model servers: how fast an alias move reaches every replica.

    python bench/bench_fleet.py              # 4 replicas, 20 moves per mode
    python bench/bench_fleet.py --quick      # 2 replicas, 6 moves
    python bench/bench_fleet.py --replicas 8 --moves 40

A scratch project on a fresh PostgreSQL database holds ``bench-fleet`` versions 1 and 2 (a
linear model of 8 float inputs, with its ONNX twin). ``--replicas`` processes of
``modelyard serve bench-fleet@production --poll-interval 2`` run on 127.0.0.1, each under a
steady stream of single-row requests from its own client thread (one request every 5 ms at
most). The alias is then moved ``--moves`` times between the two versions; for each move the
figure is the time from the move's commit (``promote`` returning) to the first answer carrying
the new version (``Modelyard-Model-Version``) from the last replica to get there. Two modes,
in the same run: with the servers woken by PostgreSQL's LISTEN/NOTIFY (the default), and with
``--no-listen`` (their 2-second polls only), which is what a fleet of independently polling
servers gives. Failed requests and answers of an old version after the new one are counted.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    WORK_DIR,
    create_pg_database,
    drop_pg_database,
    emit,
    fmt_num,
    fresh_dir,
    machine_summary,
    postgres_available,
    print_table,
)

MODEL = "bench-fleet"
ROW = {"instances": [{f"f{i}": float(i) for i in range(8)}]}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_project(folder: Path, uri: str) -> dict[str, str]:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    import modelyard

    modelyard.init_project(folder, "bench-fleet")
    artifacts = (folder / ".modelyard" / "artifacts").as_uri()
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(500, 8)), columns=[f"f{i}" for i in range(8)])
    with modelyard.connect(uri, project=folder, artifact_uri=artifacts, capture_git=False,
                           capture_packages=False) as yard:
        for scale in (1.0, 2.0):
            with yard.start_run("fleet") as run:
                run.log_model(LinearRegression().fit(x, x.sum(axis=1) * scale), MODEL,
                              input_example=x.head())
        yard.models.promote(MODEL, 1, "production")
    return {"MODELYARD_URI": uri, "MODELYARD_ARTIFACT_URI": artifacts}


def start(folder: Path, env: dict[str, str], listen: bool, index: int
          ) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _port()
    log = (WORK_DIR / f"fleet-server-{'listen' if listen else 'poll'}-{index}.log").open("wb")
    command = [str(Path(sys.executable).parent / "modelyard"), "serve", f"{MODEL}@production",
               "--port", str(port), "--poll-interval", "2", "--log-level", "warning",
               "--listen" if listen else "--no-listen"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    proc = subprocess.Popen(command, cwd=folder, env={**environment, **env}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server {index} exited; see {log.name}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server {index} did not start in time")


def measure(folder: Path, env: dict[str, str], *, listen: bool, replicas: int,
            moves: int) -> dict[str, Any]:
    import httpx
    import numpy as np

    import modelyard

    servers = [start(folder, env, listen, i) for i in range(replicas)]
    stop = threading.Event()
    failures: list[str] = []
    seen: list[list[tuple[float, int]]] = [[] for _ in servers]

    def load(i: int, base: str) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            while not stop.is_set():
                try:
                    answer = http.post(f"/v1/models/{MODEL}/predict", json=ROW)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code}")
                    continue
                seen[i].append((time.monotonic(), int(answer.headers["Modelyard-Model-Version"])))
                time.sleep(0.005)

    threads = [threading.Thread(target=load, args=(i, base), daemon=True)
               for i, (_, base) in enumerate(servers)]
    for thread in threads:
        thread.start()
    reach: list[float] = []
    regressions = 0
    try:
        with modelyard.connect(env["MODELYARD_URI"], project=folder,
                               artifact_uri=env["MODELYARD_ARTIFACT_URI"]) as yard:
            for move in range(moves):
                version = 2 if move % 2 == 0 else 1
                yard.models.promote(MODEL, version, "production", reason=f"move {move}")
                moved = time.monotonic()
                last = 0.0
                for i in range(len(servers)):
                    while True:
                        flips = [at for at, v in list(seen[i]) if at > moved and v == version]
                        if flips:
                            break
                        if time.monotonic() - moved > 60:
                            raise RuntimeError(f"replica {i} never served version {version}")
                        time.sleep(0.01)
                    last = max(last, flips[0] - moved)
                time.sleep(0.3)
                for i in range(len(servers)):
                    flips = [at for at, v in list(seen[i]) if at > moved and v == version]
                    regressions += sum(1 for at, v in list(seen[i])
                                       if at > flips[0] and v != version)
                reach.append(last)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for proc, _ in servers:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in servers:
            proc.wait(timeout=60)
    p50, p99 = (float(v) for v in np.percentile(reach, [50, 99]))
    return {"mode": "listen" if listen else "poll", "replicas": replicas, "moves": moves,
            "p50_s": p50, "p99_s": p99, "max_s": max(reach), "requests": sum(map(len, seen)),
            "failed": len(failures), "old_after_new": regressions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--replicas", type=int, default=None)
    parser.add_argument("--moves", type=int, default=None)
    args = parser.parse_args()
    replicas = args.replicas or (2 if args.quick else 4)
    moves = args.moves or (6 if args.quick else 20)
    if not postgres_available():
        sys.exit("bench_fleet needs PostgreSQL (BENCH_PG_URI)")
    folder = fresh_dir("fleet")
    uri = create_pg_database("fleet")
    try:
        env = make_project(folder / "project", uri)
        results = [measure(folder / "project", env, listen=listen, replicas=replicas,
                           moves=moves) for listen in (True, False)]
    finally:
        drop_pg_database(uri)
    rows = [[r["mode"], fmt_num(r["p50_s"] * 1000, " ms"), fmt_num(r["p99_s"] * 1000, " ms"),
             fmt_num(r["max_s"] * 1000, " ms"), str(r["requests"]), str(r["failed"]),
             str(r["old_after_new"])] for r in results]
    print_table(f"Alias move -> last of {replicas} replicas serving it ({moves} moves)",
                ["mode", "p50", "p99", "max", "requests", "failed", "old after new"], rows)
    listen, poll = results
    print(f"polling / notification: p50 {poll['p50_s'] / listen['p50_s']:.1f}x, "
          f"p99 {poll['p99_s'] / listen['p99_s']:.1f}x")
    emit({"bench": "fleet", "machine": machine_summary(), "results": results})


if __name__ == "__main__":
    main()
