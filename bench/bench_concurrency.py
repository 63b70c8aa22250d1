"""Benchmark 4: eight processes writing to one store at once, on SQLite and PostgreSQL.

Each writer process imports its package, waits at a barrier (a file the parent creates once
all writers are ready), then connects, starts its own run in the experiment
``concurrent``, logs its points and ends the run:

* ``existing store``: the store and the experiment were created beforehand; each writer logs
  ``STEPS`` steps x 2 keys one call per point, then ``BATCHES`` batches of 100 keys
  (``mlflow.log_metric`` / ``MlflowClient.log_batch`` vs ``run.log_metric`` /
  ``run.log_metrics``).
* ``brand-new store``: nothing exists yet (a SQLite path with no file, or an empty
  PostgreSQL database); all writers create the schema and the experiment at the same moment,
  then log fewer points each.

A writer that raises stops there, as a training script would, and reports the exception.
Afterwards the parent counts the stored points (and the distinct (run, key, step) triples) in
the database. PostgreSQL cases use a fresh database each, dropped afterwards. modelyard
runs with ``capture_git=False``; everything else is each package's default.

Run alone: ``python bench/bench_concurrency.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    PEER_ENV,
    RESULT_PREFIX,
    create_pg_database,
    drop_pg_database,
    emit,
    ensure_peer_venv,
    fmt_num,
    fresh_dir,
    modelyard_python,
    postgres_available,
    print_table,
    run_worker,
)

WRITERS = 8
BATCH_KEYS = 100
SHAPES = {  # shape -> (per-call steps x 2 keys, batches of BATCH_KEYS)
    "existing": (500, 10),  # 1,000 + 1,000 = 2,000 points per writer
    "new": (50, 1),  # 100 + 100 = 200 points per writer
}
EXPERIMENT = "concurrent"
WRITER_TIMEOUT_S = 600


def points_per_writer(shape: str) -> int:
    steps, batches = SHAPES[shape]
    return steps * 2 + batches * BATCH_KEYS


def value(step: int, key: int) -> float:
    return ((step * 7919 + key * 104729) % 10007) / 10007


# --- writer processes -----------------------------------------------------------------------

def wait_for_go(folder: Path, index: int) -> None:
    (folder / f"ready-{index}").touch()
    go = folder / "go"
    while not go.exists():
        time.sleep(0.001)


def mlflow_writer(uri: str, shape: str) -> None:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    steps, batches = SHAPES[shape]
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(EXPERIMENT)
    client = MlflowClient()
    with mlflow.start_run() as run:
        for s in range(steps):
            for k in range(2):
                mlflow.log_metric(f"c{k}", value(s, k), step=s)
        for b in range(batches):
            ts = int(time.time() * 1000)
            client.log_batch(run.info.run_id, metrics=[
                Metric(f"b{k}", value(b, k), ts, b) for k in range(BATCH_KEYS)
            ])


def modelyard_writer(uri: str, shape: str, folder: Path) -> None:
    import modelyard

    steps, batches = SHAPES[shape]
    yard = modelyard.connect(uri, artifact_uri=f"file://{folder / 'artifacts'}",
                             capture_git=False)
    with yard.start_run(EXPERIMENT) as run:
        for s in range(steps):
            for k in range(2):
                run.log_metric(f"c{k}", value(s, k), step=s)
        for b in range(batches):
            run.log_metrics({f"b{k}": value(b, k) for k in range(BATCH_KEYS)}, step=b)
    yard.close()


def writer_main(tool: str, uri: str, shape: str, folder: Path, index: int) -> None:
    if tool == "mlflow":
        import mlflow  # noqa: F401  (imported before the barrier, not timed)
    else:
        import modelyard  # noqa: F401
    wait_for_go(folder, index)
    start = time.perf_counter()
    try:
        if tool == "mlflow":
            mlflow_writer(uri, shape)
        else:
            modelyard_writer(uri, shape, folder)
        emit({"ok": True, "seconds": time.perf_counter() - start})
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        emit({"ok": False, "seconds": time.perf_counter() - start,
              "error": f"{type(exc).__name__}: {first}"})


# --- setup and counting (run in the tool's own interpreter) ---------------------------------

def setup_main(tool: str, uri: str, folder: Path) -> None:
    if tool == "mlflow":
        import mlflow

        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(EXPERIMENT)
    else:
        import modelyard

        with modelyard.connect(uri, artifact_uri=f"file://{folder / 'artifacts'}") as yard:
            yard.create_experiment(EXPERIMENT)
    emit({"ok": True})


def count_main(tool: str, uri: str) -> None:
    import sqlalchemy as sa

    if tool == "mlflow":
        engine = sa.create_engine(uri)
        run_col = "run_uuid"
    else:
        from modelyard.backends.metadata.sql.engine import make_engine

        engine = make_engine(uri)
        run_col = "run_id"
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT COUNT(*) FROM metrics")).scalar_one()
        distinct = conn.execute(sa.text(
            f"SELECT COUNT(*) FROM (SELECT DISTINCT {run_col}, key, step FROM metrics) d"
        )).scalar_one()
        statuses: dict[str, int] = {str(k): int(v) for k, v in conn.execute(
            sa.text("SELECT status, COUNT(*) FROM runs GROUP BY status"))}
    engine.dispose()
    emit({"rows": int(rows), "distinct": int(distinct),
          "runs": {str(k).lower(): int(v) for k, v in statuses.items()}})


# --- orchestration --------------------------------------------------------------------------

def run_case(tool: str, python: str, backend: str, shape: str) -> dict[str, Any]:
    folder = fresh_dir("concurrency", f"{tool}-{backend}-{shape}")
    uri = (f"sqlite:///{folder / 'store.db'}" if backend == "sqlite"
           else create_pg_database(f"bench_{tool}"))
    env = {**os.environ, **(PEER_ENV if tool == "mlflow" else {})}
    script = Path(__file__)
    try:
        if shape == "existing":
            run_worker(python, script, "setup", tool, uri, str(folder), env=env)
        procs = [
            subprocess.Popen([python, str(script), "writer", tool, uri, shape, str(folder),
                              str(i)], stdout=(folder / f"out-{i}").open("w"),
                             stderr=(folder / f"err-{i}").open("w"), env=env)
            for i in range(WRITERS)
        ]
        deadline = time.monotonic() + 300
        while sum((folder / f"ready-{i}").exists() for i in range(WRITERS)) < WRITERS:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                break
            time.sleep(0.005)
        start = time.perf_counter()
        (folder / "go").touch()
        writers = [_collect(p, folder, i) for i, p in enumerate(procs)]
        seconds = time.perf_counter() - start
        try:
            counted = run_worker(python, script, "count", tool, uri, env=env)
        except RuntimeError as exc:  # no schema at all: nothing was stored
            counted = {"rows": 0, "distinct": 0, "runs": {}, "count_error": str(exc)[-300:]}
    finally:
        if backend == "postgres":
            drop_pg_database(uri)
    expected = WRITERS * points_per_writer(shape)
    errors = [w["error"] for w in writers if not w["ok"]]
    return {"tool": tool, "backend": backend, "shape": shape, "seconds": seconds,
            "expected": expected, "stored": counted["rows"], "distinct": counted["distinct"],
            "runs": counted["runs"], "failed_writers": len(errors), "errors": errors,
            "points_per_s": counted["distinct"] / seconds}


def _collect(proc: subprocess.Popen[bytes], folder: Path, index: int) -> dict[str, Any]:
    try:
        proc.wait(timeout=WRITER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return {"ok": False, "error": f"timed out after {WRITER_TIMEOUT_S} s"}
    out = (folder / f"out-{index}").read_text(errors="replace")
    for line in reversed(out.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
            return result
    err = (folder / f"err-{index}").read_text(errors="replace")
    last = (err.strip().splitlines() or ["no output"])[-1][:300]
    return {"ok": False, "error": f"exit {proc.returncode}: {last}"}


def summarize_errors(errors: list[str]) -> str:
    if not errors:
        return ""
    counts: dict[str, int] = {}
    for e in errors:
        counts[e] = counts.get(e, 0) + 1
    return "; ".join(f"{n}x {e[:120]}" for e, n in counts.items())


def run(quick: bool = False) -> list[dict[str, Any]]:
    del quick
    peer = ensure_peer_venv()
    mine = modelyard_python()
    backends = ["sqlite", "postgres"] if postgres_available() else ["sqlite"]
    results = []
    for backend in backends:
        for shape in SHAPES:
            for tool, python in (("modelyard", mine), ("mlflow", peer)):
                r = run_case(tool, python, backend, shape)
                print(f"  ... {tool}, {backend}, {shape} store: {r['distinct']:,} of "
                      f"{r['expected']:,} points, {r['failed_writers']} writers failed, "
                      f"{r['seconds']:.1f} s", flush=True)
                results.append(r)
    table = []
    for r in results:
        lost = r["expected"] - r["distinct"]
        table.append([
            f"{r['backend']}, {'existing' if r['shape'] == 'existing' else 'brand-new'} store",
            "modelyard" if r["tool"] == "modelyard" else "MLflow",
            f"{r['distinct']:,} / {r['expected']:,}",
            f"{lost:,}", f"{r['stored'] - r['distinct']:,}",
            f"{r['failed_writers']} / {WRITERS}",
            fmt_num(r["seconds"], "s"), fmt_num(r["points_per_s"], "pts/s"),
        ])
    print_table(
        f"4. {WRITERS} writer processes on one store (per writer: "
        f"{points_per_writer('existing'):,} points on an existing store, "
        f"{points_per_writer('new'):,} on a brand-new one)",
        ["case", "package", "points stored / expected", "lost", "duplicates",
         "writers failed", "wall time", "throughput"], table,
    )
    for r in results:
        if r["errors"]:
            name = "modelyard" if r["tool"] == "modelyard" else "MLflow"
            print(f"  {name}, {r['backend']}, {r['shape']} store: "
                  f"{summarize_errors(r['errors'])}")
    return results


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "writer":
        writer_main(sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5]), int(sys.argv[6]))
    elif command == "setup":
        setup_main(sys.argv[2], sys.argv[3], Path(sys.argv[4]))
    elif command == "count":
        count_main(sys.argv[2], sys.argv[3])
    else:
        run()
