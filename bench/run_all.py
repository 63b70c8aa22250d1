"""Run every benchmark against MLflow, then print the summary against the targets.

    python bench/run_all.py            # everything (about 4 minutes once the venv exists)
    python bench/run_all.py --only search,import
    python bench/run_all.py --quick    # one repetition where a benchmark allows it

MLflow is installed from PyPI into bench/.venvs/mlflow on first use; every MLflow
measurement runs in a subprocess with that interpreter, every modelyard measurement in a
subprocess with the project's interpreter. Raw figures go to bench/.work/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import bench_concurrency
import bench_drift
import bench_import
import bench_logging
import bench_online
import bench_pipelines
import bench_pit
import bench_search
import bench_serving
from common import (
    PG_ADMIN_URI,
    WORK_DIR,
    ensure_peer_venv,
    machine_summary,
    modelyard_python,
    package_version,
    postgres_available,
    print_table,
)

BENCHMARKS: dict[str, Callable[[bool], list[dict[str, Any]]]] = {
    "logging": bench_logging.run,
    "search": bench_search.run,
    "import": bench_import.run,
    "concurrency": bench_concurrency.run,
    "pit": bench_pit.run,  # against Feast; prints its own tables (10M x 1M: bench_pit.py --large)
    "online": bench_online.run,  # against Feast; prints its own tables
    "serving": bench_serving.run,  # against MLflow and BentoML; prints its own tables
    "drift": bench_drift.run,  # against Evidently; prints its own tables
    "pipelines": bench_pipelines.run,  # against Metaflow and ZenML; prints its own tables
}


def versions(peer: str, mine: str) -> dict[str, str]:
    found = {
        "mlflow": package_version(peer, "mlflow"),
        "SQLAlchemy (MLflow venv)": package_version(peer, "sqlalchemy"),
        "psycopg (MLflow venv)": package_version(peer, "psycopg"),
        "modelyard": package_version(mine, "modelyard"),
        "SQLAlchemy (modelyard venv)": package_version(mine, "sqlalchemy"),
        "psycopg (modelyard venv)": package_version(mine, "psycopg"),
    }
    if postgres_available():
        import sqlalchemy as sa

        url = sa.engine.make_url(PG_ADMIN_URI).set(drivername="postgresql+psycopg")
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            found["PostgreSQL server"] = conn.execute(sa.text("SHOW server_version")).scalar_one()
        engine.dispose()
    import sqlite3

    found["SQLite library"] = sqlite3.sqlite_version
    return found


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def summary(results: dict[str, list[dict[str, Any]]]) -> list[list[str]]:
    rows: list[list[str]] = []
    for r in results.get("logging", []):
        if r["target"]:
            rows.append([f"logging: {r['label']}", f"{r['ratio']:,.1f}x faster",
                         f">= {r['target']:g}x", _met(r["ratio"] >= r["target"])])
    for r in results.get("search", []):
        ok = r["ratio"] >= r["target"] and r["same_order"]
        rows.append([f"search_runs: {r['label']}", f"{r['ratio']:,.1f}x faster",
                     f">= {r['target']:g}x, same rows", _met(ok)])
    for r in results.get("import", []):
        if r["target"]:
            rows.append([f"start-up: {r['label']}", f"{r['ratio']:,.1f}x faster",
                         f">= {r['target']:g}x", _met(r["ratio"] >= r["target"])])
    for r in results.get("concurrency", []):
        if r["tool"] != "modelyard":
            continue
        lost = r["expected"] - r["distinct"]
        dup = r["stored"] - r["distinct"]
        where = "existing" if r["shape"] == "existing" else "brand-new"
        rows.append([
            f"8 writers, {r['backend']}, {where} store (modelyard)",
            f"{lost} lost, {dup} duplicated, {r['failed_writers']} failed writers",
            "0 lost, 0 errors", _met(lost == 0 and dup == 0 and r["failed_writers"] == 0),
        ])
    for r in results.get("serving", []):
        if r["kind"] == "target":
            rows.append([f"serving: {r['label']}", r["measured"], r["target"], _met(r["met"])])
    rows += bench_drift.summary(results.get("drift", []))
    rows += bench_pipelines.summary(results.get("pipelines", []))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    peer, mine = ensure_peer_venv(), modelyard_python()
    machine, found = machine_summary(), versions(peer, mine)
    load_before = os.getloadavg()[0]
    print("machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()))
    print("versions: " + "; ".join(f"{k} {v}" for k, v in found.items()))
    print(f"load average before: {load_before:.2f}", flush=True)

    started = time.perf_counter()
    results = {name: BENCHMARKS[name](args.quick) for name in chosen}
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    print_table("Summary against the targets", ["claim", "measured", "target", "result"],
                summary(results))
    print(f"total {seconds:.0f} s; load average after: {load_after:.2f}")
    info = {"machine": machine, "versions": found, "load_before": load_before,
            "load_after": load_after, "seconds": seconds}
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    out = WORK_DIR / "results.json"
    out.write_text(json.dumps({"info": info, "results": results}, indent=2, default=str))
    print(f"raw figures: {out}")


if __name__ == "__main__":
    main()
