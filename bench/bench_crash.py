"""Crash endurance: every write path killed with SIGKILL at many seeded random moments.

The long version of ``tests/crash/``: for each write path (ingest, materialize, log_model,
log_artifact, promote, forget, a monitoring check), on SQLite and on PostgreSQL, ``--points``
kill points (default 25). At each one a worker process (forked from a server that imported
modelyard once) runs the write with an idempotency key and is killed a seeded random
fraction of the way through it; the project is opened again (which repairs what the kill left
half-done), checked for anything half-visible, and the write is retried under the same key
and checked to have landed exactly once. There is no peer to compare with: the figures are
how many writes were killed part-way, how many of those left something to repair and how,
and that no check failed (a failure stops the script with the assertion).

Run alone: ``python bench/bench_crash.py [--points N] [--seed S] [--only sqlite|postgres]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from common import create_pg_database, drop_pg_database, postgres_available  # noqa: E402


def run_backend(backend: str, points: int, seed: int) -> dict[str, object]:
    from _workers.crash import run_crash_points
    from _workers.writes import PATHS, WorkerPool

    import modelyard

    with tempfile.TemporaryDirectory(prefix="bench-crash-") as tmp:
        root = Path(tmp) / "proj"
        modelyard.init_project(root, "crash")
        uri = (f"sqlite:///{root / '.modelyard' / 'modelyard.db'}" if backend == "sqlite"
               else create_pg_database("bench_crash"))
        started = time.perf_counter()
        try:
            reports = run_crash_points(WorkerPool(), uri, root, PATHS, points=points,
                                       seed=seed)
        finally:
            if backend == "postgres":
                drop_pg_database(uri)
        seconds = time.perf_counter() - started
    rows = {}
    for r in reports:
        rows[r.path] = {"killed": r.killed, "finished": r.finished,
                        "repairs": dict(Counter(r.repairs))}
    return {"backend": backend, "points_per_path": points, "seconds": round(seconds, 1),
            "paths": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=25)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    backends = [args.only] if args.only else ["sqlite", "postgres"]
    for backend in backends:
        if backend == "postgres" and not postgres_available():
            print("postgres: skipped (no server)")
            continue
        result = run_backend(backend, args.points, args.seed)
        print(f"\n{backend}: {args.points} kill points per path, all checks passed "
              f"({result['seconds']} s)")
        print(f"{'path':<14}{'killed':>8}{'finished':>10}  repairs on the next open")
        for path, row in result["paths"].items():  # type: ignore[union-attr]
            repairs = ", ".join(f"{k} x{v}" for k, v in row["repairs"].items()) or "-"
            print(f"{path:<14}{row['killed']:>8}{row['finished']:>10}  {repairs}")
        print("BENCH-RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
