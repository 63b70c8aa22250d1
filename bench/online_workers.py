"""The workers of bench_online.py, each run in a fresh process: Feast's with the Feast
interpreter, modelyard's with the project's."""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path
from typing import Any

from common import (
    emit,
    peak_rss_mb,
)
from online_data import (
    FEATURE_REFS,
    FEATURES,
    MODELYARD_MISSING,
    REDIS_URL,
    load_meta,
)

# --- process helpers (stdlib only: both interpreters run them) -----------------------------

def _rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _peak_mb() -> float:
    return peak_rss_mb()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def time_calls(call: Any, batches: list[Any], warmup: int) -> dict[str, Any]:
    """Run ``call`` on each batch; the first ``warmup`` are not timed."""
    for batch in batches[:warmup]:
        call(batch)
    timings = []
    for batch in batches[warmup:]:
        start = time.perf_counter_ns()
        call(batch)
        timings.append((time.perf_counter_ns() - start) / 1000)
    return {"p50_us": percentile(timings, 50), "p99_us": percentile(timings, 99),
            "mean_us": sum(timings) / len(timings), "calls": len(timings),
            "rss_mb": _rss_mb(), "peak_mb": _peak_mb()}


# --- Feast workers (the Feast interpreter) -------------------------------------------------

FEAST_YAML = """project: {project}
registry: {repo}/registry.db
provider: local
online_store:
{online}
offline_store:
  type: {offline}
entity_key_serialization_version: 3
"""


def _redis_host_port_db() -> tuple[str, int, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    db = int(parts.path.strip("/") or 0)
    return parts.hostname or "127.0.0.1", parts.port or 6379, db


def feast_online_block(store: str, repo: Path) -> str:
    if store == "sqlite":
        return f"  type: sqlite\n  path: {repo}/online.db"
    host, port, db = _redis_host_port_db()
    return f'  type: redis\n  connection_string: "{host}:{port},db={db}"'


def feast_store(repo: Path) -> Any:
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


def worker_feast_materialize(folder: Path, repo: Path, store: str, offline: str,
                             project: str) -> None:
    from datetime import UTC, datetime, timedelta

    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    meta = load_meta(folder)
    (repo / "feature_store.yaml").write_text(FEAST_YAML.format(
        project=project, repo=repo, online=feast_online_block(store, repo), offline=offline))
    entity = Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64)
    source = FileSource(path=str(folder / "history.parquet"), timestamp_field="event_time")
    stats = FeatureView(name="stats", entities=[entity], ttl=timedelta(0), source=source,
                        online=True,
                        schema=[Field(name=f, dtype=Float64) for f in FEATURES])
    fs = feast_store(repo)
    fs.apply([entity, stats])

    start_at = datetime.fromtimestamp(meta["first_us"] / 1e6, UTC) - timedelta(seconds=1)
    end_at = datetime.fromtimestamp(meta["last_us"] / 1e6, UTC) + timedelta(hours=1)
    before, before_peak = _rss_mb(), _peak_mb()
    start = time.perf_counter()
    fs.materialize(start_at, end_at)
    seconds = time.perf_counter() - start
    peak = _peak_mb()
    sample = fs.get_online_features(
        features=FEATURE_REFS, entity_rows=[{"entity_id": i} for i in meta["sample"]],
    ).to_dict()
    emit({"seconds": seconds, "before_mb": before, "before_peak_mb": before_peak,
          "peak_mb": peak, "sample": sample})


def worker_feast_lookup(folder: Path, repo: Path, batch: int) -> None:
    meta = load_meta(folder)
    fs = feast_store(repo)
    rows = [[{"entity_id": i} for i in ids] for ids in meta["lookups"][str(batch)]]
    first = fs.get_online_features(features=FEATURE_REFS, entity_rows=rows[0]).to_dict()
    if len(first["f0"]) != batch or any(v is None for v in first["f0"]):
        raise SystemExit(f"Feast answered {first!r} for {rows[0]!r}")

    def call(entity_rows: list[dict[str, int]]) -> None:
        fs.get_online_features(features=FEATURE_REFS, entity_rows=entity_rows).to_dict()

    emit(time_calls(call, rows, meta["warmup"]))


def worker_feast_teardown(repo: Path) -> None:
    fs = feast_store(repo)
    fs.teardown()
    emit({"torn_down": True})


# --- modelyard workers (the project's interpreter) -----------------------------------------

def modelyard_missing() -> str | None:
    """Why modelyard's online API cannot be benchmarked, or None when it can."""
    try:
        from modelyard.client import Yard
    except ImportError as exc:
        return f"{MODELYARD_MISSING}: {exc}"
    missing = [name for name in ("materialize", "online_features") if not hasattr(Yard, name)]
    if missing:
        return f"{MODELYARD_MISSING}: Yard has no {', '.join(missing)}"
    return None


def modelyard_serve_missing(python: str) -> str | None:
    """Why ``modelyard serve`` cannot be started, or None when it can."""
    done = subprocess.run([str(Path(python).parent / "modelyard"), "serve", "--help"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"modelyard serve not available: {(done.stderr or done.stdout)[-500:]}"
    return None


def _modelyard_definitions() -> tuple[Any, Any]:
    from modelyard import Entity, Feature, FeatureGroup, Source

    entity = Entity("entity", "entity_id")
    source = Source.frame("stats_source", timestamp="event_time")
    group = FeatureGroup("stats", entity=entity, source=source,
                         features=[Feature(f, f) for f in FEATURES])
    return source, group


def _connect(project: Path, online_uri: str) -> Any:
    import modelyard

    return modelyard.connect(project=project, online_uri=online_uri)


def worker_modelyard_prepare(folder: Path, project: Path, online_uri: str) -> None:
    """A fresh project whose offline table holds the history (not part of the clock)."""
    import pyarrow.parquet as pq

    import modelyard

    why = modelyard_missing()
    if why:
        raise SystemExit(why)
    modelyard.init_project(project, "online-bench", exist_ok=True)
    yard = _connect(project, online_uri)
    source, group = _modelyard_definitions()
    yard.apply([group])
    table = pq.read_table(folder / "history.parquet")
    start = time.perf_counter()
    yard.ingest(source, table)
    seconds = time.perf_counter() - start
    yard.close()
    emit({"ingest_seconds": seconds, "peak_mb": _peak_mb()})


def worker_modelyard_materialize(folder: Path, project: Path, online_uri: str) -> None:
    from datetime import UTC, datetime, timedelta

    meta = load_meta(folder)
    yard = _connect(project, online_uri)
    yard.features.online  # noqa: B018  (the libraries load here, as Feast's load in apply)
    import deltalake  # noqa: F401
    import duckdb  # noqa: F401
    import pyarrow.dataset  # noqa: F401

    at = datetime.fromtimestamp(meta["last_us"] / 1e6, UTC) + timedelta(hours=1)
    before, before_peak = _rss_mb(), _peak_mb()
    start = time.perf_counter()
    records = yard.materialize(["stats"], at=at)
    seconds = time.perf_counter() - start
    peak = _peak_mb()
    sample = yard.online_features(FEATURE_REFS, {"entity_id": meta["sample"]}).to_dict()
    yard.close()
    emit({"seconds": seconds, "before_mb": before, "before_peak_mb": before_peak,
          "peak_mb": peak, "sample": sample, "records": repr(records)[:300]})


def worker_modelyard_lookup(folder: Path, project: Path, online_uri: str, batch: int) -> None:
    meta = load_meta(folder)
    yard = _connect(project, online_uri)
    batches = [{"entity_id": ids} for ids in meta["lookups"][str(batch)]]
    first = yard.online_features(FEATURE_REFS, batches[0]).to_dict()
    if len(first["f0"]) != batch or any(v is None for v in first["f0"]):
        raise SystemExit(f"modelyard answered {first!r} for {batches[0]!r}")

    def call(entities: dict[str, list[int]]) -> None:
        yard.online_features(FEATURE_REFS, entities).to_dict()

    result = time_calls(call, batches, meta["warmup"])
    yard.close()
    emit(result)
