"""Benchmark 1: 5,000 metric points into a SQLite store, per call and in batches.

Each case logs the same 5,000 (key, step, value) points into a fresh run and stops the clock
when the run has ended, that is when every point is committed to the database file. The
points are then counted with a separate sqlite3 connection, so a figure only counts when
all 5,000 points are durable.

Cases (same points on both sides):

* ``per-call``: 1,000 steps x 5 keys, one call per point:
  ``mlflow.log_metric(k, v, step=s)`` vs ``run.log_metric(k, v, step=s)``.
* ``batch, 5 keys per call``: 1,000 calls of 5 points (one training step each):
  ``mlflow.log_metrics({...}, step=s)`` (a ``log_batch`` underneath) vs
  ``run.log_metrics({...}, step=s)``.
* ``batch, 1,000 per call``: 5 calls of 1,000 points (1,000 keys x 5 steps), MLflow's
  maximum batch size: ``MlflowClient.log_batch(run_id, metrics=[...1000 Metric...])`` vs
  ``run.log_metrics({...1000 keys...}, step=s)``.
* ``per-call, async`` (MLflow only, for reference): ``mlflow.log_metric(...,
  synchronous=False)`` then ``mlflow.flush_async_logging()``, MLflow's own buffered mode;
  1,000 points only, as draining its queue runs at well under 100 points/s.

Each figure is the median of up to ``REPEATS`` timed runs after one small warm-up run;
timing stops early once the timed runs add up to ``LONG_S`` seconds, so a slow case (MLflow
per call) is timed once or twice.

Run alone: ``python bench/bench_logging.py``.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    PEER_ENV,
    emit,
    ensure_peer_venv,
    fmt_num,
    fresh_dir,
    median,
    modelyard_python,
    print_table,
    run_worker,
)

N_POINTS = 5_000
CASES: dict[str, tuple[int, int]] = {  # case -> (steps, keys); steps x keys = N_POINTS
    "per-call": (1_000, 5),
    "batch-5": (1_000, 5),
    "batch-1000": (5, 1_000),
    "per-call-async": (200, 5),  # 1,000 points: MLflow's async mode is slow to drain
}
LABELS = {
    "per-call": "per-call log_metric, 5,000 calls",
    "batch-5": "batch, 5 keys per call, 1,000 calls",
    "batch-1000": "batch, 1,000 points per call, 5 calls",
    "per-call-async": "per-call, MLflow synchronous=False (1,000 pts)",
}
TARGETS = {"per-call": 100.0, "batch-5": 5.0, "batch-1000": 5.0}
REPEATS = 5
LONG_S = 5.0


def value(step: int, key: int) -> float:
    return ((step * 7919 + key * 104729) % 10007) / 10007


def count_points(db: Path, table: str, run_column: str, run_id: str) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {run_column} = ?", (run_id,))
        return int(row.fetchone()[0])


# --- workers (each runs in its own interpreter) ---------------------------------------------

def mlflow_worker(case: str, folder: Path, repeats: int) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    db = folder / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    mlflow.set_experiment("bench")
    client = MlflowClient()
    steps, keys = CASES[case]
    names = [f"m{k}" for k in range(keys)]

    def log(run_id: str, n_steps: int) -> None:
        if case == "per-call":
            for s in range(n_steps):
                for k, name in enumerate(names):
                    mlflow.log_metric(name, value(s, k), step=s)
        elif case == "per-call-async":
            for s in range(n_steps):
                for k, name in enumerate(names):
                    mlflow.log_metric(name, value(s, k), step=s, synchronous=False)
            mlflow.flush_async_logging()
        elif case == "batch-5":
            for s in range(n_steps):
                mlflow.log_metrics({name: value(s, k) for k, name in enumerate(names)}, step=s)
        else:
            for s in range(n_steps):
                ts = int(time.time() * 1000)
                client.log_batch(run_id, metrics=[
                    Metric(name, value(s, k), ts, s) for k, name in enumerate(names)
                ])

    with mlflow.start_run() as warm:  # warm-up: lazy imports, statement caches
        log(warm.info.run_id, 2)
    seconds: list[float] = []
    stored: list[int] = []
    while len(seconds) < repeats and sum(seconds) < LONG_S:
        run = mlflow.start_run()
        start = time.perf_counter()
        log(run.info.run_id, steps)
        mlflow.end_run()
        seconds.append(time.perf_counter() - start)
        stored.append(count_points(db, "metrics", "run_uuid", run.info.run_id))
    return {"seconds": seconds, "stored": stored}


def modelyard_worker(case: str, folder: Path, repeats: int) -> dict[str, Any]:
    import modelyard

    db = folder / "modelyard.db"
    yard = modelyard.connect(f"sqlite:///{db}", artifact_uri=f"file://{folder / 'artifacts'}",
                             capture_git=False)
    steps, keys = CASES[case]
    names = [f"m{k}" for k in range(keys)]

    def log(run: modelyard.Run, n_steps: int) -> None:
        if case == "per-call":
            for s in range(n_steps):
                for k, name in enumerate(names):
                    run.log_metric(name, value(s, k), step=s)
        else:
            for s in range(n_steps):
                run.log_metrics({name: value(s, k) for k, name in enumerate(names)}, step=s)

    with yard.start_run("bench") as warm:
        log(warm, 2)
    seconds: list[float] = []
    stored: list[int] = []
    while len(seconds) < repeats and sum(seconds) < LONG_S:
        run = yard.start_run("bench")
        start = time.perf_counter()
        log(run, steps)
        run.end()
        seconds.append(time.perf_counter() - start)
        stored.append(count_points(db, "metrics", "run_id", run.run_id))
    yard.close()
    return {"seconds": seconds, "stored": stored}


# --- orchestration --------------------------------------------------------------------------

def measure(tool: str, python: str, case: str, repeats: int) -> dict[str, Any]:
    folder = fresh_dir("logging", f"{tool}-{case}")
    env = PEER_ENV if tool == "mlflow" else None
    result: dict[str, Any] = run_worker(python, Path(__file__), "worker", tool, case,
                                        str(folder), str(repeats), env=env)
    secs = median(result["seconds"])
    result["median_s"] = secs
    steps, keys = CASES[case]
    result["points"] = steps * keys
    result["points_per_s"] = steps * keys / secs
    result["all_stored"] = all(n == steps * keys for n in result["stored"])
    return result


def run(quick: bool = False) -> list[dict[str, Any]]:
    peer = ensure_peer_venv()
    mine = modelyard_python()
    rows: list[dict[str, Any]] = []
    for case in CASES:
        repeats = 1 if quick else REPEATS
        mlf = measure("mlflow", peer, case, repeats)
        my = measure("modelyard", mine, case, repeats) if case != "per-call-async" else None
        rows.append({"case": case, "label": LABELS[case], "mlflow": mlf, "modelyard": my,
                     "ratio": my["points_per_s"] / mlf["points_per_s"] if my else None,
                     "target": TARGETS.get(case)})
    table = []
    for r in rows:
        my, mlf = r["modelyard"], r["mlflow"]
        ratio = r["ratio"]
        met = "-" if r["target"] is None else ("met" if ratio >= r["target"] else "NOT met")
        table.append([
            r["label"],
            fmt_num(my["points_per_s"], "pts/s") if my else "-",
            fmt_num(mlf["points_per_s"], "pts/s"),
            f"{ratio:,.1f}x" if ratio else "-",
            f">= {r['target']:g}x, {met}" if r["target"] else "reference",
            "yes" if mlf["all_stored"] and (my is None or my["all_stored"]) else "NO",
        ])
    print_table(
        f"1. Logging {N_POINTS:,} metric points to SQLite, until the run has ended "
        "(median throughput)",
        ["case", "modelyard", "MLflow", "ratio", "target", "all points stored"], table,
    )
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        tool, case, folder, repeats = sys.argv[2], sys.argv[3], Path(sys.argv[4]), int(sys.argv[5])
        worker = mlflow_worker if tool == "mlflow" else modelyard_worker
        emit(worker(case, folder, repeats))
    else:
        run(quick="--quick" in sys.argv)
