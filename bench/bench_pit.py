"""Point-in-time training sets: modelyard's DuckDB engine against a hand-written DuckDB ASOF
join (the practical floor) and Feast's local offline stores.

    python bench/bench_pit.py              # 1,000,000 feature rows, 100,000-row spine
    python bench/bench_pit.py --large      # also 10,000,000 rows x 1,000,000 (modelyard, floor)
    python bench/bench_pit.py --no-feast   # modelyard and the floor only
    python bench/bench_pit.py --no-windows # skip the window-aggregate case

The feature table holds 10,000 entities x 100 hourly events with 10 float features; 1% of the
events are restated (same entity and event time, ingested later, other values), so ties must be
resolved by ingestion time. The spine draws random entities (1% with no history) at random
instants, 5% of them exactly at an event time and some before any history.

Every measurement runs in a fresh subprocess: modelyard and the floor with the project's
interpreter, Feast with its own (``bench/.venvs/feast``, installed from PyPI on first use).
The clock covers reading the feature table from Parquet and the join, with the spine already
in memory (an Arrow table; a pandas DataFrame for Feast, which asks for one); memory is the
worker's peak resident set (``VmHWM``). Every result is compared, row by row and value by
value, with the floor's.

A second case times modelyard's two window strategies (range join, stream) and its automatic
choice on 16 windows, once on that history and once on a dense one (1,000 entities x 1,000
events), where the choice flips; all three must give the same values.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from common import (
    VENVS_DIR,
    WORK_DIR,
    emit,
    ensure_venv,
    fmt_num,
    median,
    modelyard_python,
    package_version,
    peak_rss_mb,
    print_table,
    run_worker,
)

FEAST_VENV = VENVS_DIR / "feast"
FEAST_REQUIREMENTS = ["feast[duckdb]"]
FEAST_ENV = {"FEAST_USAGE": "False", "DO_NOT_TRACK": "true"}
PIT_DIR = WORK_DIR / "pit"
FEATURES = [f"f{i}" for i in range(10)]
HOUR_US = 3_600_000_000
BASE_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
SIZES = {
    "1m": {"entities": 10_000, "events": 100, "spine": 100_000},
    "10m": {"entities": 100_000, "events": 100, "spine": 1_000_000},
    "dense": {"entities": 1_000, "events": 1_000, "spine": 100_000},
}
# The window case: every window function, over one day and over seven days.
WINDOW_FUNCS = ["mean", "sum", "count", "min", "max", "std", "count_distinct", "last"]
WINDOW_HOURS = [24, 168]
FLOOR_SQL = """
WITH latest AS (
    SELECT entity_id, event_time, {features} FROM features
    QUALIFY row_number() OVER (PARTITION BY entity_id, event_time ORDER BY ingested_at DESC) = 1
)
SELECT s.*, {features}
FROM spine s ASOF LEFT JOIN latest f
  ON s.entity_id = f.entity_id AND s.event_timestamp >= f.event_time
"""


# --- the Feast environment -----------------------------------------------------------------

def feast_python() -> str:
    return str(FEAST_VENV / "bin" / "python")


def ensure_feast_venv(log: bool = True) -> str:
    """Create bench/.venvs/feast with Feast (and its DuckDB store) unless it already imports."""
    return ensure_venv(FEAST_VENV, FEAST_REQUIREMENTS, "feast, ibis, duckdb", log)


# --- data ----------------------------------------------------------------------------------

def make_data(size: str) -> Path:
    """Write features.parquet and spine.parquet for ``size`` once; return their folder."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = PIT_DIR / size
    if (folder / "spine.parquet").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    shape = SIZES[size]
    entities, events, spine_rows = shape["entities"], shape["events"], shape["spine"]
    rng = np.random.default_rng(20240101)
    rows = entities * events
    entity = np.repeat(np.arange(entities, dtype=np.int64), events)
    slot = np.tile(np.arange(events, dtype=np.int64), entities)
    event_us = BASE_US + slot * HOUR_US + rng.integers(0, HOUR_US // 2, rows)
    restated = np.flatnonzero((rng.random(rows) < 0.01) & (slot > 0))
    event_us[restated] = event_us[restated - 1]  # same entity, same event time as the row before
    ingested_us = event_us + rng.integers(1, 600_000_000, rows)
    ingested_us[restated] = ingested_us[restated - 1] + rng.integers(1, HOUR_US, len(restated))
    stamp = pa.timestamp("us", "UTC")
    columns: dict[str, Any] = {
        "entity_id": entity,
        "event_time": pa.array(event_us, stamp),
        "ingested_at": pa.array(ingested_us, stamp),
    }
    for name in FEATURES:
        columns[name] = rng.random(rows)
    table = pa.table(columns).take(np.argsort(ingested_us, kind="stable"))  # an append log
    pq.write_table(table, folder / "features.parquet", row_group_size=1_000_000)

    who = rng.integers(0, int(entities * 1.01), spine_rows)  # ids >= entities have no history
    when = BASE_US - 2 * HOUR_US + rng.integers(0, (events + 4) * HOUR_US, spine_rows)
    exact = rng.random(spine_rows) < 0.05
    known = exact & (who < entities)
    picks = who[known] * events + rng.integers(0, events, int(known.sum()))
    when[known] = event_us[picks]
    spine = pa.table({
        "row_id": np.arange(spine_rows, dtype=np.int64),
        "entity_id": who.astype(np.int64),
        "event_timestamp": pa.array(when, stamp),
    })
    pq.write_table(spine, folder / "spine.parquet")
    return folder


# --- workers (each runs in its own process) ------------------------------------------------

def _peak_mb() -> float:
    return peak_rss_mb()


def _finish(result: Any, folder: Path, name: str, seconds: float, join_seconds: float,
            before_mb: float) -> None:
    """Record the output (in spine order, for the comparison) and hand the figures back."""
    import numpy as np
    import pyarrow.parquet as pq

    peak = _peak_mb()
    row_ids = result.column("row_id").to_numpy()
    in_order = bool(np.array_equal(row_ids, np.arange(len(row_ids))))
    ordered = result.select(["row_id", *FEATURES]).sort_by("row_id")
    pq.write_table(ordered, folder / f"out-{name}.parquet")
    emit({"seconds": seconds, "join_seconds": join_seconds, "peak_mb": peak,
          "before_mb": before_mb, "rows": result.num_rows, "spine_order": in_order})


def worker_modelyard(folder: Path, name: str, threads: int | None) -> None:
    import pyarrow.parquet as pq

    from modelyard.backends.offline.duckdb_engine import DuckDBEngine
    from modelyard.backends.offline.engine import GroupInput

    spine = pq.read_table(folder / "spine.parquet")
    engine = DuckDBEngine(threads=threads)
    before = _peak_mb()
    start = time.perf_counter()
    table = pq.read_table(folder / "features.parquet")
    loaded = time.perf_counter()
    group = GroupInput("stats", ("entity_id",), table, tuple(FEATURES))
    result = engine.point_in_time(spine, "event_timestamp", [group])
    done = time.perf_counter()
    _finish(result, folder, name, done - start, done - loaded, before)


def worker_floor(folder: Path, name: str, threads: int | None) -> None:
    import duckdb
    import pyarrow.parquet as pq

    spine = pq.read_table(folder / "spine.parquet")
    config: dict[str, Any] = {} if threads is None else {"threads": threads}
    con = duckdb.connect(":memory:", config=config)
    before = _peak_mb()
    start = time.perf_counter()
    features = pq.read_table(folder / "features.parquet")
    loaded = time.perf_counter()
    con.register("features", features)
    con.register("spine", spine)
    result = con.sql(FLOOR_SQL.format(features=", ".join(FEATURES))).to_arrow_table()
    done = time.perf_counter()
    _finish(result, folder, name, done - start, done - loaded, before)


FEAST_REPO = """
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

entity = Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64)
source = FileSource(path={path!r}, timestamp_field="event_time",
                    created_timestamp_column="ingested_at")
stats = FeatureView(name="stats", entities=[entity], ttl=timedelta(0), source=source,
                    schema=[Field(name=f"f{{i}}", dtype=Float64) for i in range(10)])
"""
FEAST_YAML = """project: pit_bench
registry: {repo}/registry.db
provider: local
online_store:
  type: sqlite
  path: {repo}/online.db
offline_store:
  type: {store}
entity_key_serialization_version: 3
"""


def worker_feast(folder: Path, name: str, store: str) -> None:
    import importlib.util

    import pyarrow.parquet as pq
    from feast import FeatureStore

    repo = WORK_DIR / "feast" / f"{folder.name}-{store}"
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(FEAST_YAML.format(repo=repo, store=store))
    (repo / "features.py").write_text(
        FEAST_REPO.format(path=str(folder / "features.parquet"))
    )
    spec = importlib.util.spec_from_file_location("pit_features", repo / "features.py")
    assert spec is not None and spec.loader is not None
    definitions = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(definitions)
    fs = FeatureStore(repo_path=str(repo))
    fs.apply([definitions.entity, definitions.stats])

    entity_df = pq.read_table(folder / "spine.parquet").to_pandas()
    before = _peak_mb()
    start = time.perf_counter()
    job = fs.get_historical_features(
        entity_df=entity_df, features=[f"stats:{f}" for f in FEATURES],
    )
    result = job.to_arrow()
    done = time.perf_counter()
    _finish(result, folder, name, done - start, done - start, before)


def worker_windows(folder: Path, strategy: str) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    from modelyard.backends.offline.duckdb_engine import DuckDBEngine
    from modelyard.backends.offline.engine import GroupInput, WindowSpec

    spine = pq.read_table(folder / "spine.parquet")
    table = pq.read_table(folder / "features.parquet")
    windows = tuple(
        WindowSpec(f"{func}_{hours}h", func, None if func == "count" else "f0",
                   hours * HOUR_US)
        for func in WINDOW_FUNCS for hours in WINDOW_HOURS
    )
    group = GroupInput("stats", ("entity_id",), table, windows=windows)
    engine = DuckDBEngine(windows=strategy)
    before = _peak_mb()
    start = time.perf_counter()
    result = engine.point_in_time(spine, "event_timestamp", [group])
    seconds = time.perf_counter() - start
    values = result.select([w.name for w in windows])
    digest = [float(np.nansum(values.column(i).to_numpy(zero_copy_only=False).astype(float)))
              for i in range(values.num_columns)]
    emit({"seconds": seconds, "peak_mb": _peak_mb(), "before_mb": before, "digest": digest})


def worker_main(args: argparse.Namespace) -> None:
    folder = Path(args.data).resolve()
    threads = args.threads
    if args.worker == "windows":
        worker_windows(folder, args.name)
    elif args.worker == "modelyard":
        worker_modelyard(folder, args.name, threads)
    elif args.worker == "floor":
        worker_floor(folder, args.name, threads)
    elif args.worker == "feast-file":
        worker_feast(folder, args.name, "file")
    elif args.worker == "feast-duckdb":
        worker_feast(folder, args.name, "duckdb")
    else:
        raise SystemExit(f"unknown worker {args.worker}")


# --- the comparison ------------------------------------------------------------------------

def compare(folder: Path, name: str) -> dict[str, Any]:
    """``name``'s output against the floor's: rows missing or extra, then every value of the
    rows both returned."""
    import numpy as np
    import pyarrow.parquet as pq

    reference = pq.read_table(folder / "out-floor.parquet")
    other = pq.read_table(folder / f"out-{name}.parquet")
    ids, theirs = reference.column("row_id").to_numpy(), other.column("row_id").to_numpy()
    missing = np.setdiff1d(ids, theirs)
    extra = len(theirs) - len(np.unique(theirs)) + len(np.setdiff1d(theirs, ids))
    shared = reference.take(np.flatnonzero(np.isin(ids, theirs)))
    other = other.take(np.flatnonzero(np.isin(theirs, shared.column("row_id").to_numpy())))
    differing = [
        column for column in FEATURES
        if not other.column(column).cast(shared.column(column).type).equals(shared.column(column))
    ]
    problems = []
    if len(missing):
        problems.append(f"{len(missing):,} spine rows missing")
    if extra:
        problems.append(f"{extra:,} extra rows")
    if differing:
        problems.append(f"values differ in {', '.join(differing)}")
    return {"identical": not problems, "why": "; ".join(problems),
            "missing_rows": len(missing), "missing_ids": missing[:20].tolist(),
            "null_rows": reference.column("f0").null_count}


def _summary(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repeated runs of one worker."""
    return {
        "name": name,
        "seconds": median([r["seconds"] for r in runs]),
        "join_seconds": median([r["join_seconds"] for r in runs]),
        "peak_mb": median([r["peak_mb"] for r in runs]),
        "before_mb": median([r["before_mb"] for r in runs]),
        "rows": runs[0]["rows"],
        "spine_order": all(r["spine_order"] for r in runs),
    }


def measure(python: str, worker: str, folder: Path, repeats: int, name: str | None = None,
            env: dict[str, str] | None = None, threads: int | None = None) -> dict[str, Any]:
    name = name or worker
    runs = []
    error = None
    for _ in range(repeats):
        args = ["--worker", worker, "--data", str(folder), "--name", name]
        if threads is not None:
            args += ["--threads", str(threads)]
        try:
            runs.append(run_worker(python, Path(__file__), *args, timeout=3600, env=env))
        except Exception as exc:  # a peer that fails is reported, not fatal
            error = str(exc)[-2000:]
            break
    if not runs:
        return {"name": name, "error": error}
    return {**_summary(name, runs), "runs": runs, "error": error}


def run_size(size: str, repeats: int, with_feast: bool) -> list[dict[str, Any]]:
    folder = make_data(size)
    mine = modelyard_python()
    found: dict[str, dict[str, Any]] = {}
    # modelyard and the floor take turns, so both see the same machine conditions.
    for _ in range(repeats):
        for worker in ("floor", "modelyard"):
            one = measure(mine, worker, folder, 1)
            found.setdefault(worker, {"name": worker, "runs": []})["runs"].append(one)
    results = []
    for worker in ("floor", "modelyard"):
        runs = [r for r in found[worker]["runs"] if "seconds" in r]
        results.append({**_summary(worker, runs),
                        "all_seconds": [r["seconds"] for r in runs]})
    if with_feast:
        try:
            peer = ensure_feast_venv()
        except Exception as exc:
            results.append({"name": "feast", "error": f"install failed: {exc}"})
        else:
            for store in ("file", "duckdb"):
                results.append(measure(peer, f"feast-{store}", folder, 1, env=FEAST_ENV))
    for result in results:
        if result.get("seconds") is not None:
            result.update(compare(folder, result["name"]))
        result["size"] = size
    return results


def report(size: str, results: list[dict[str, Any]]) -> None:
    shape = SIZES[size]
    by_name = {r["name"]: r for r in results}
    mine = by_name["modelyard"]
    rows = []
    for r in results:
        if r.get("seconds") is None:
            rows.append([r["name"], "failed", "-", "-", "-", "-", "-", "-"])
            continue
        rows.append([
            r["name"], fmt_num(r["seconds"], "s"), fmt_num(r["join_seconds"], "s"),
            fmt_num(r["peak_mb"], "MB"), f"{r['seconds'] / mine['seconds']:.2f}x",
            f"{r['peak_mb'] / mine['peak_mb']:.2f}x",
            "yes" if r.get("identical") else f"NO {r.get('why', '')}",
            "yes" if r.get("spine_order") else "no",
        ])
    print_table(
        f"point-in-time join: {shape['entities'] * shape['events']:,} feature rows, "
        f"{shape['spine']:,} spine rows (median; ratios = other / modelyard)",
        ["engine", "read+join", "join", "peak RSS", "time ratio", "memory ratio",
         "values = floor", "spine order"],
        rows,
    )
    for r in results:
        if r.get("error"):
            print(f"{r['name']} error: {r['error']}")


def run_windows(repeats: int) -> list[dict[str, Any]]:
    """The window strategies on the sparse and the dense history; same values required."""
    results = []
    rows = []
    for size in ("1m", "dense"):
        folder = make_data(size)
        found: dict[str, list[dict[str, Any]]] = {}
        for _ in range(repeats):
            for strategy in ("join", "stream", "auto"):
                one = run_worker(modelyard_python(), Path(__file__), "--worker", "windows",
                                 "--data", str(folder), "--name", strategy, timeout=3600)
                found.setdefault(strategy, []).append(one)
        digests = {s: runs[0]["digest"] for s, runs in found.items()}
        same = all(
            all(abs(a - b) <= 1e-6 * max(1.0, abs(a)) for a, b in zip(d, digests["join"],
                                                                    strict=True))
            for d in digests.values()
        )
        shape = SIZES[size]
        for strategy, runs in found.items():
            seconds = median([r["seconds"] for r in runs])
            peak = median([r["peak_mb"] for r in runs])
            results.append({"size": size, "name": f"windows-{strategy}", "seconds": seconds,
                            "peak_mb": peak, "same_values": same})
            rows.append([f"{shape['entities']:,} x {shape['events']:,}", strategy,
                         fmt_num(seconds, "s"), fmt_num(peak, "MB"), "yes" if same else "NO"])
    print_table(
        f"{len(WINDOW_FUNCS) * len(WINDOW_HOURS)} windows ({', '.join(WINDOW_FUNCS)}; "
        f"{' and '.join(f'{h}h' for h in WINDOW_HOURS)}) for a 100,000-row spine (median)",
        ["entities x events", "strategy", "time", "peak RSS", "same values"], rows,
    )
    return results


def run(quick: bool = False, large: bool = False, with_feast: bool = True,
        windows: bool = True) -> list[dict[str, Any]]:
    repeats = 1 if quick else 3
    results = run_size("1m", repeats, with_feast)
    report("1m", results)
    if windows:
        results += run_windows(1 if quick else 3)
    if large:
        big = run_size("10m", 1 if quick else 2, with_feast=False)
        report("10m", big)
        results += big
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also 10M feature rows x 1M spine")
    parser.add_argument("--no-feast", action="store_true", help="skip Feast")
    parser.add_argument("--quick", action="store_true", help="one repetition")
    parser.add_argument("--no-windows", action="store_true", help="skip the window case")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    started = time.time()
    results = run(quick=args.quick, large=args.large, with_feast=not args.no_feast,
                  windows=not args.no_windows)
    versions = {"modelyard": package_version(modelyard_python(), "modelyard"),
                "duckdb": package_version(modelyard_python(), "duckdb")}
    if not args.no_feast and Path(feast_python()).exists():
        versions["feast"] = package_version(feast_python(), "feast")
        versions["duckdb (Feast venv)"] = package_version(feast_python(), "duckdb")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    out = WORK_DIR / "pit-results.json"
    out.write_text(json.dumps({"versions": versions, "results": results,
                               "seconds": time.time() - started, "cpus": os.cpu_count()},
                              indent=2, default=str))
    print(f"\nversions: {versions}\nraw figures: {out}")


if __name__ == "__main__":
    main()
