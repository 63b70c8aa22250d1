"""Benchmark 2: search 10,000 runs (10 params, 10 metrics each) with a filter and an order.

Both stores hold the same runs: run ``i`` is named ``run-0000i`` and has params ``p0..p9``
(values ``v0..v9``) and metrics ``m0..m9`` (uniform in [0, 1)), drawn from one seeded
generator. Populating is not timed and goes as fast as each store allows: run 0 is logged
through the package's own API (so every row a real run has is there, system tags included),
then 9,999 copies of its rows, with each run's own name, params and metric values, are
inserted into the package's own tables in one transaction.

Timed: one long-lived process per package; after one warm-up call each, the two processes
take turns (so both see the same machine conditions) for up to ``REPEATS`` calls each, fewer
once MLflow's add up to ``LONG_S`` seconds; the figure is the median per package:

* DataFrame API: ``mlflow.search_runs(experiment_ids, filter_string, order_by)`` vs
  ``yard.search_runs(experiment, filter, order_by)``;
* record API: ``MlflowClient.search_runs(..., max_results=50000)`` vs
  ``yard.tracking.find_runs(...)``;
* top 10 (record API with ``max_results=10`` / ``limit=10``).

The row counts and the order of the returned runs must be the same on both sides and equal
to what the data says.

Run alone: ``python bench/bench_search.py``.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from common import (
    PEER_ENV,
    WorkerSession,
    emit,
    ensure_peer_venv,
    fmt_num,
    fresh_dir,
    median,
    modelyard_python,
    print_table,
    serve,
)

N_RUNS = 10_000
N_PARAMS = 10
N_METRICS = 10
SEED = 20240611
FILTER = "metrics.m0 > 0.5 and params.p1 = 'v3'"
ORDER = "metrics.m1 desc"
REPEATS = 7
LONG_S = 15.0
TARGET = 10.0
CASES = {
    "frame": "DataFrame API, all matches",
    "records": "record API, all matches",
    "top10": "record API, top 10",
}

RunData = tuple[str, dict[str, str], dict[str, float]]


def dataset() -> Iterator[RunData]:
    rng = random.Random(SEED)
    for i in range(N_RUNS):
        params = {f"p{j}": f"v{rng.randrange(10)}" for j in range(N_PARAMS)}
        metrics = {f"m{j}": rng.random() for j in range(N_METRICS)}
        yield f"run-{i:05d}", params, metrics


def expected_names() -> list[str]:
    hits = [(m["m1"], name) for name, p, m in dataset() if m["m0"] > 0.5 and p["p1"] == "v3"]
    return [name for _, name in sorted(hits, reverse=True)]


# --- populating: clone a real run's rows, in the package's own schema ------------------------

def clone_runs(url: str, template_id: str, run_table: str, id_col: str,
               children: list[str], name_tag: str | None) -> float:
    """Insert runs 1..N-1 as copies of the template run's rows; returns the seconds taken."""
    import sqlalchemy as sa

    start = time.perf_counter()
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    tables = {n: sa.Table(n, meta, autoload_with=engine) for n in [run_table, *children]}
    with engine.begin() as conn:
        base_run = dict(conn.execute(
            sa.select(tables[run_table]).where(tables[run_table].c[id_col] == template_id)
        ).mappings().one())
        base_rows = {n: [dict(r) for r in conn.execute(
            sa.select(tables[n]).where(tables[n].c[id_col] == template_id)).mappings()]
            for n in children}
        out: dict[str, list[dict[str, Any]]] = {n: [] for n in [run_table, *children]}
        runs = iter(dataset())
        next(runs)  # run 0 is the template itself
        for i, (name, params, metrics) in enumerate(runs, start=1):
            run_id = f"{i:032x}"
            row = {k: v.replace(template_id, run_id) if isinstance(v, str) else v
                   for k, v in base_run.items()}
            row.update({id_col: run_id, "name": name,
                        "start_time": base_run["start_time"] + i})
            out[run_table].append(row)
            for table, rows in base_rows.items():
                for r in rows:
                    new = {k: v for k, v in r.items() if k != "id"}
                    new[id_col] = run_id
                    if table == "params":
                        new["value"] = params[r["key"]]
                    elif table in ("metrics", "latest_metrics"):
                        new["value"] = metrics[r["key"]]
                    elif table == "tags":
                        new["value"] = (name if r["key"] == name_tag
                                        else str(r["value"]).replace(template_id, run_id))
                    out[table].append(new)
        for table, rows in out.items():
            conn.execute(tables[table].insert(), rows)
    engine.dispose()
    return time.perf_counter() - start


def timed(fn: Callable[[], list[str]]) -> Callable[[], dict[str, Any]]:
    def call() -> dict[str, Any]:
        start = time.perf_counter()
        names = fn()
        return {"seconds": time.perf_counter() - start, "names": names}

    return call


# --- workers --------------------------------------------------------------------------------

def mlflow_worker(folder: Path) -> None:
    import mlflow
    from mlflow import MlflowClient

    url = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(url)
    client = MlflowClient()
    exp_id = client.create_experiment("search")
    name, params, metrics = next(dataset())
    with mlflow.start_run(experiment_id=exp_id, run_name=name) as template:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
    populate_s = clone_runs(url, template.info.run_id, "runs", "run_uuid",
                            ["tags", "params", "metrics", "latest_metrics"], "mlflow.runName")

    def frame() -> list[str]:
        df = mlflow.search_runs(experiment_ids=[exp_id], filter_string=FILTER, order_by=[ORDER])
        return list(df["tags.mlflow.runName"])

    def records(limit: int = 50_000) -> list[str]:
        found = client.search_runs([exp_id], FILTER, order_by=[ORDER], max_results=limit)
        return [r.info.run_name for r in found]

    emit({"populate_s": populate_s})
    serve({"frame": timed(frame), "records": timed(records), "top10": timed(lambda: records(10))})


def modelyard_worker(folder: Path) -> None:
    import modelyard

    url = f"sqlite:///{folder / 'modelyard.db'}"
    yard = modelyard.connect(url, artifact_uri=f"file://{folder / 'artifacts'}",
                             capture_git=False)
    name, params, metrics = next(dataset())
    with yard.start_run("search", name=name) as template:
        template.log_params(params)
        template.log_metrics(metrics)
    populate_s = clone_runs(url, template.run_id, "runs", "run_id",
                            ["tags", "params", "metrics", "latest_metrics"], None)

    def frame() -> list[str]:
        return list(yard.search_runs("search", filter=FILTER, order_by=[ORDER])["name"])

    def records(limit: int | None = None) -> list[str]:
        found = yard.tracking.find_runs("search", FILTER, [ORDER], limit)
        return [r.info.name for r in found]

    emit({"populate_s": populate_s})
    serve({"frame": timed(frame), "records": timed(records), "top10": timed(lambda: records(10))})
    yard.close()


# --- orchestration --------------------------------------------------------------------------

def run(quick: bool = False) -> list[dict[str, Any]]:
    del quick  # one size: the figure is about 10,000 runs
    peer = ensure_peer_venv()
    want = expected_names()
    tools = {"mlflow": peer, "modelyard": modelyard_python()}
    sessions = {  # both populate at once; that part is not timed
        tool: WorkerSession(python, Path(__file__), "worker", tool,
                            str(fresh_dir("search", tool)),
                            env=PEER_ENV if tool == "mlflow" else None)
        for tool, python in tools.items()
    }
    try:
        results: dict[str, dict[str, Any]] = {
            tool: session.read() for tool, session in sessions.items()
        }
        for case in CASES:
            for tool, session in sessions.items():
                first = session.request(case)  # warm-up, and the result that is checked
                results[tool][case] = {"names": first["names"], "rows": len(first["names"]),
                                       "seconds": []}
            for turn in range(REPEATS):
                if sum(results["mlflow"][case]["seconds"]) >= LONG_S:
                    break
                order = list(sessions) if turn % 2 == 0 else list(reversed(sessions))
                for tool in order:
                    results[tool][case]["seconds"].append(sessions[tool].request(case)["seconds"])
            for tool in sessions:
                results[tool][case]["median_s"] = median(results[tool][case]["seconds"])
    finally:
        for session in sessions.values():
            session.close()
    rows, table = [], []
    for case, label in CASES.items():
        mlf, my = results["mlflow"][case], results["modelyard"][case]
        target_names = want[:10] if case == "top10" else want
        same = mlf["names"] == target_names and my["names"] == target_names
        ratio = mlf["median_s"] / my["median_s"]
        rows.append({"case": case, "label": label, "mlflow_s": mlf["median_s"],
                     "modelyard_s": my["median_s"], "ratio": ratio, "target": TARGET,
                     "rows_mlflow": mlf["rows"], "rows_modelyard": my["rows"],
                     "rows_expected": len(target_names), "same_order": same,
                     "populate_s": {t: results[t]["populate_s"] for t in results}})
        table.append([label, fmt_num(my["median_s"] * 1000, "ms"),
                      fmt_num(mlf["median_s"] * 1000, "ms"), f"{ratio:,.1f}x",
                      f">= {TARGET:g}x, {'met' if ratio >= TARGET else 'NOT met'}",
                      f"{my['rows']} / {mlf['rows']} (expected {len(target_names)})",
                      "yes" if same else "NO"])
    print_table(
        f"2. search_runs over {N_RUNS:,} runs: filter \"{FILTER}\", order by {ORDER} "
        "(median time per call)",
        ["case", "modelyard", "MLflow", "ratio", "target", "rows modelyard / MLflow",
         "same runs, same order"], table,
    )
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker = mlflow_worker if sys.argv[2] == "mlflow" else modelyard_worker
        worker(Path(sys.argv[3]))
    else:
        run()
