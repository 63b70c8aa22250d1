"""The online feature store: modelyard against Feast, on SQLite and on Redis.

    python bench/bench_online.py             # 1,000,000 rows, 10,000 entities
    python bench/bench_online.py --quick     # 20,000 rows, 1,000 entities, fewer calls
    python bench/bench_online.py --no-feast  # modelyard alone
    python bench/bench_online.py --no-http   # skip the HTTP servers

The history holds 10,000 entities x 100 events (int64 key ``entity_id``, UTC ``event_time``,
10 float64 features f0..f9), in event-time order, in one Parquet file. Three measurements:

1. **Materialization** of the latest value of every entity into the online store: Feast's
   ``FeatureStore.materialize(start, end)`` over the whole range (a FileSource over the
   Parquet file, with its ``file`` (Dask) and its ``duckdb`` offline stores) and modelyard's
   ``yard.materialize(["stats"], at=...)`` as of an instant after the last event
   (the rows were ingested into its offline table beforehand, in another process). Time,
   resident set just before (``VmRSS``) and the worker's peak (``ru_maxrss``). Both stores
   must then hold the latest row of each entity: a sample of entities is read back and
   compared, value by value, with the Parquet file.
2. **In-process lookups**: 1,000 calls after a warm-up, 1 entity x 10 features and 100
   entities x 10 features, ``.to_dict()`` included: Feast's ``get_online_features`` and
   modelyard's ``online_features``. p50 and p99 per call.
3. **HTTP**: ``modelyard serve`` (``POST /v1/features/online``) and ``feast serve``
   (``POST /get-online-features``, one worker, no periodic worker restarts) on 127.0.0.1,
   driven by a closed-loop load generator in its own process: 8 connections, each sending its
   next request only after the previous answer. Requests per second, p50 and p99.

Every measurement runs in a fresh subprocess: modelyard with the project's interpreter,
Feast with its own (``bench/.venvs/feast``, ``feast[duckdb]`` from PyPI on first use, plus
``feast[redis]`` when it installs). Redis cases use 127.0.0.1:6379 (``BENCH_REDIS_URL``),
a fresh key prefix (modelyard) or project (Feast) each, deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from common import (
    WORK_DIR,
    emit,
    fmt_num,
    fresh_dir,
    modelyard_python,
    package_version,
    print_table,
    run_worker,
)

FEAST_ENV = {"FEAST_USAGE": "False", "DO_NOT_TRACK": "true"}
FEAST_REDIS_EXTRA = "feast[redis]"
ONLINE_DIR = WORK_DIR / "online"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
FEATURES = [f"f{i}" for i in range(10)]
FEATURE_REFS = [f"stats:{f}" for f in FEATURES]
HOUR_US = 3_600_000_000
BASE_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
SIZES = {
    "full": {"entities": 10_000, "events": 100, "calls": 1_000, "warmup": 200,
             "http_seconds": 10.0, "http_warmup": 2.0, "sample": 500},
    "quick": {"entities": 1_000, "events": 20, "calls": 200, "warmup": 50,
              "http_seconds": 3.0, "http_warmup": 1.0, "sample": 100},
}
BATCHES = (1, 100)  # entities per lookup
CONCURRENCY = 8
BODY_POOL = 64  # distinct request bodies per HTTP case, cycled by the load generator
MODELYARD_MISSING = "modelyard online API not available"


# --- the Feast environment -----------------------------------------------------------------

def ensure_feast(log: bool = True) -> tuple[str, bool]:
    """The Feast interpreter (bench_pit's venv) and whether its Redis store is installed
    (``feast[redis]`` is added once, and only reported missing when pip refuses it)."""
    from bench_pit import ensure_feast_venv

    python = ensure_feast_venv(log)
    if subprocess.run([python, "-c", "import redis"], capture_output=True).returncode == 0:
        return python, True
    if log:
        print(f"installing {FEAST_REDIS_EXTRA} into the Feast venv", flush=True)
    done = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         FEAST_REDIS_EXTRA], capture_output=True, text=True,
    )
    if done.returncode != 0:
        print(f"{FEAST_REDIS_EXTRA} did not install:\n{done.stderr[-1500:]}", flush=True)
    return python, done.returncode == 0


def feast_bin(python: str) -> str:
    return str(Path(python).parent / "feast")


# --- data ----------------------------------------------------------------------------------

def make_data(size: str) -> Path:
    """Write history.parquet and meta.json (shape, time range, the sampled entities and the
    entity lists of every lookup) for ``size`` once; return their folder."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = ONLINE_DIR / size
    if (folder / "meta.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    shape = SIZES[size]
    entities, events = shape["entities"], shape["events"]
    rng = np.random.default_rng(20240601)
    rows = entities * events
    entity = np.repeat(np.arange(entities, dtype=np.int64), events)
    slot = np.tile(np.arange(events, dtype=np.int64), entities)
    # strictly increasing per entity: one event per hour slot, at a random minute of it
    event_us = BASE_US + slot * HOUR_US + rng.integers(0, HOUR_US, rows)
    columns: dict[str, Any] = {
        "entity_id": entity, "event_time": pa.array(event_us, pa.timestamp("us", "UTC")),
    }
    for name in FEATURES:
        columns[name] = rng.random(rows)
    table = pa.table(columns).take(np.argsort(event_us, kind="stable"))  # an event log
    pq.write_table(table, folder / "history.parquet", row_group_size=250_000)

    calls = shape["calls"] + shape["warmup"]
    lookups = {
        str(n): [rng.choice(entities, n, replace=False).tolist() for _ in range(calls)]
        for n in BATCHES
    }
    meta = {
        "entities": entities, "events": events, "rows": rows,
        "first_us": int(event_us.min()), "last_us": int(event_us.max()),
        "sample": sorted(rng.choice(entities, shape["sample"], replace=False).tolist()),
        "lookups": lookups, "calls": shape["calls"], "warmup": shape["warmup"],
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def load_meta(folder: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((folder / "meta.json").read_text())
    return meta


def truth(folder: Path, ids: list[int]) -> dict[int, list[float]]:
    """The latest row of each of ``ids`` in the Parquet file: what an online store holds."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(folder / "history.parquet")
    table = table.filter(pc.is_in(table.column("entity_id"), value_set=pa.array(ids, pa.int64())))
    table = table.sort_by([("entity_id", "ascending"), ("event_time", "descending")])
    found: dict[int, list[float]] = {}
    keys = table.column("entity_id").to_pylist()
    values = [table.column(f).to_pylist() for f in FEATURES]
    for row, key in enumerate(keys):
        if key not in found:
            found[key] = [column[row] for column in values]
    return found


def check_values(expected: dict[int, list[float]], got: dict[str, Any]) -> dict[str, Any]:
    """``got`` = {"entity_id": [...], "f0": [...], ...}: every value equal to the latest."""
    ids = [int(i) for i in got.get("entity_id", [])]
    wrong = missing = 0
    worst = 0.0
    for row, key in enumerate(ids):
        want = expected.get(key)
        have = [got[f][row] if f in got else None for f in FEATURES]
        if want is None or any(v is None for v in have):
            missing += 1
            continue
        diffs = [abs(float(a) - b) for a, b in zip(have, want, strict=True)]
        worst = max(worst, *diffs)
        if any(d != 0.0 for d in diffs):
            wrong += 1
    absent = len(set(expected) - set(ids))
    ok = wrong == 0 and missing == 0 and absent == 0
    why = []
    if missing or absent:
        why.append(f"{missing + absent} entities without values")
    if wrong:
        why.append(f"{wrong} entities with other values (max diff {worst:.3g})")
    return {"same_values": ok, "checked": len(ids), "why": "; ".join(why)}


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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


# --- the load generator (stdlib only, its own process) -------------------------------------

async def _read_response(reader: Any) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: status, body, whether the server closes the connection."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed by the server")
    status = int(status_line.split()[1])
    length, chunked, close = 0, False, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            close = True
    if not chunked:
        return status, await reader.readexactly(length), close
    body = b""
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            return status, body, close
        body += await reader.readexactly(size)
        await reader.readline()


async def _load(host: str, port: int, path: str, bodies: list[bytes], workers: int,
                warmup: float, seconds: float) -> dict[str, Any]:
    import asyncio

    requests = [
        (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
         f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        for body in bodies
    ]
    begin = time.perf_counter()
    measure_from, stop_at = begin + warmup, begin + warmup + seconds
    latencies: list[float] = []
    errors: list[str] = []
    finished: list[float] = []

    async def worker(index: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        turn = index
        while True:
            sent = time.perf_counter()
            if sent >= stop_at:
                break
            writer.write(requests[turn % len(requests)])
            turn += workers
            try:
                await writer.drain()
                status, body, close = await _read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(repr(exc))
                status, body, close = 0, b"", True
            done = time.perf_counter()
            if sent >= measure_from:
                if status == 200:
                    latencies.append(done - sent)
                elif status:
                    errors.append(f"HTTP {status}: {body[:200]!r}")
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
        finished.append(time.perf_counter())
        writer.close()

    await asyncio.gather(*(worker(i) for i in range(workers)))
    window = max(finished) - measure_from
    return {
        "requests": len(latencies), "errors": len(errors), "error_sample": errors[:3],
        "seconds": window, "rps": len(latencies) / window if window > 0 else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else None,
    }


def worker_loadgen(url: str, bodies_file: Path, workers: int, warmup: float,
                   seconds: float) -> None:
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    bodies = [b.encode() for b in json.loads(bodies_file.read_text())]
    emit(asyncio.run(_load(parts.hostname or "127.0.0.1", parts.port or 80, parts.path,
                           bodies, workers, warmup, seconds)))


# --- worker dispatch -----------------------------------------------------------------------

def worker_main(args: argparse.Namespace) -> None:
    folder = Path(args.data).resolve() if args.data else Path()
    kind = args.worker
    if kind == "feast-materialize":
        worker_feast_materialize(folder, Path(args.repo), args.store, args.offline,
                                 args.project)
    elif kind == "feast-lookup":
        worker_feast_lookup(folder, Path(args.repo), args.batch)
    elif kind == "feast-teardown":
        worker_feast_teardown(Path(args.repo))
    elif kind == "modelyard-probe":
        emit({"missing": modelyard_missing()})
    elif kind == "modelyard-prepare":
        worker_modelyard_prepare(folder, Path(args.repo), args.online_uri)
    elif kind == "modelyard-materialize":
        worker_modelyard_materialize(folder, Path(args.repo), args.online_uri)
    elif kind == "modelyard-lookup":
        worker_modelyard_lookup(folder, Path(args.repo), args.online_uri, args.batch)
    elif kind == "loadgen":
        worker_loadgen(args.url, Path(args.bodies), args.concurrency, args.warmup,
                       args.seconds)
    else:
        raise SystemExit(f"unknown worker {kind}")


def call_worker(python: str, *args: str, env: dict[str, str] | None = None,
                timeout: float = 3600) -> dict[str, Any]:
    """A worker's result, or {"error": ...} when it failed (reported, not fatal)."""
    try:
        result: dict[str, Any] = run_worker(python, Path(__file__), *args, timeout=timeout,
                                            env=env)
    except Exception as exc:
        return {"error": str(exc)[-2500:]}
    return result


# --- the parent: Redis clean-up ------------------------------------------------------------

def redis_delete(pattern: bytes) -> int | None:
    """Delete the keys matching ``pattern``; None when redis-py or the server is missing."""
    try:
        import redis
    except ImportError:
        return None
    try:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=pattern, count=10_000))
        for start in range(0, len(keys), 5_000):
            client.delete(*keys[start:start + 5_000])
        client.close()
    except redis.RedisError:
        return None
    return len(keys)


def redis_available() -> bool:
    host, port, _ = _redis_host_port_db()
    try:
        with socket.create_connection((host, port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# --- the parent: HTTP servers --------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def post_json(url: str, body: bytes, timeout: float = 30) -> Any:
    request = urllib.request.Request(url, data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())


def as_columns(answer: Any) -> dict[str, Any]:
    """A server's answer as {"entity_id": [...], "f0": [...], ...}: Feast's
    ``{"metadata": {"feature_names": [...]}, "results": [{"values": [...]}, ...]}`` or a
    column mapping (possibly under "features" / "data" / "results")."""
    if isinstance(answer, dict) and "metadata" in answer and "results" in answer:
        names = answer["metadata"]["feature_names"]
        return {name.split(":")[-1].split("__")[-1]: r["values"]
                for name, r in zip(names, answer["results"], strict=True)}
    if isinstance(answer, dict):
        for key in ("features", "data", "results"):
            if isinstance(answer.get(key), dict):
                return {**answer[key], **{k: v for k, v in answer.items()
                                          if k == "entity_id"}}
        return answer
    return {}


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_rss_mb(pid: int) -> float | None:
    """Resident set of a server and every process it started."""
    total = 0
    for one in _descendants(pid):
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024 if total else None


class Server:
    """A server process in its own session, so that it and its workers stop together."""

    def __init__(self, name: str, command: list[str], url: str, probe: bytes,
                 cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.name, self.url = name, url
        ONLINE_DIR.mkdir(parents=True, exist_ok=True)
        self.log = ONLINE_DIR / f"server-{name}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=str(cwd) if cwd else None,
                env={**os.environ, **(env or {})}, start_new_session=True,
            )
        deadline = time.time() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({self.proc.returncode}):\n"
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            try:
                self.first = post_json(url, probe, timeout=10)
                return
            except OSError as exc:
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name} did not answer within 180 s:\n"
                                       f"{self.log.read_text(errors='replace')[-3000:]}"
                                       ) from exc
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


def http_case(server: Server, folder: Path, batch: int, quick: bool) -> dict[str, Any]:
    meta = load_meta(folder)
    shape = SIZES["quick" if quick else "full"]
    bodies = [json.dumps({"features": FEATURE_REFS, "entities": {"entity_id": ids}})
              for ids in meta["lookups"][str(batch)][:BODY_POOL]]
    bodies_file = ONLINE_DIR / f"bodies-{batch}.json"
    bodies_file.write_text(json.dumps(bodies))
    result = call_worker(
        modelyard_python(), "--worker", "loadgen", "--url", server.url, "--bodies",
        str(bodies_file), "--concurrency", str(CONCURRENCY), "--warmup",
        str(shape["http_warmup"]), "--seconds", str(shape["http_seconds"]), timeout=600,
    )
    result["server_rss_mb"] = tree_rss_mb(server.proc.pid)
    return result


# --- the run -------------------------------------------------------------------------------

class Bench:
    def __init__(self, size: str, with_feast: bool, with_http: bool) -> None:
        self.size, self.quick = size, size == "quick"
        self.with_feast, self.with_http = with_feast, with_http
        self.folder = make_data(size)
        self.meta = load_meta(self.folder)
        self.mine = modelyard_python()
        self.tag = uuid.uuid4().hex[:8]
        self.redis = redis_available()
        self.feast_python: str | None = None
        self.feast_redis = False
        self.notes: list[str] = []
        self.results: list[dict[str, Any]] = []
        self.feast_repos: dict[str, Path] = {}  # online store -> a materialized repo
        self.mine_projects: dict[str, tuple[Path, str]] = {}  # online store -> (folder, uri)
        self.redis_patterns: list[bytes] = []
        self.feast_redis_repos: list[Path] = []

    # -- set-up
    def setup(self) -> None:
        probe = call_worker(self.mine, "--worker", "modelyard-probe")
        self.modelyard_missing = probe.get("missing") or probe.get("error")
        if self.modelyard_missing:
            print(self.modelyard_missing, flush=True)
        if not self.redis:
            self.notes.append(f"Redis at {REDIS_URL} is not answering: Redis cases skipped")
        if self.with_feast:
            try:
                self.feast_python, self.feast_redis = ensure_feast()
            except Exception as exc:
                self.notes.append(f"Feast install failed: {exc}")
                self.with_feast = False
            if self.with_feast and not self.feast_redis:
                self.notes.append(f"Feast Redis: not installed ({FEAST_REDIS_EXTRA} failed)")

    def feast_stores(self) -> list[tuple[str, str]]:
        """(online store, offline store) pairs to materialize with Feast."""
        cases = [("sqlite", "file"), ("sqlite", "duckdb")]
        if self.redis and self.feast_redis:
            cases.append(("redis", "best"))
        return cases

    # -- 1. materialization
    def materialize(self) -> None:
        expected = truth(self.folder, self.meta["sample"])
        if self.with_feast:
            assert self.feast_python is not None
            timed: dict[str, float] = {}
            for store, offline in self.feast_stores():
                if offline == "best":
                    offline = min(timed, key=lambda k: timed[k]) if timed else "duckdb"
                repo = fresh_dir("online", self.size, f"feast-{store}-{offline}")
                project = f"online_bench_{self.tag}" if store == "redis" else "online_bench"
                if store == "redis":
                    self.feast_redis_repos.append(repo)
                result = call_worker(
                    self.feast_python, "--worker", "feast-materialize", "--data",
                    str(self.folder), "--repo", str(repo), "--store", store, "--offline",
                    offline, "--project", project, env=FEAST_ENV)
                if "seconds" in result:
                    if store == "sqlite":
                        timed[offline] = result["seconds"]
                    self.feast_repos.setdefault(store, repo)
                self._record_materialize("feast", store, offline, result, expected)
        if self.modelyard_missing:
            self.results.append({"kind": "materialize", "tool": "modelyard",
                                 "store": "sqlite", "error": self.modelyard_missing})
            return
        stores = ["sqlite", "redis"] if self.redis else ["sqlite"]
        for store in stores:
            project = fresh_dir("online", self.size, f"modelyard-{store}")
            if store == "sqlite":
                uri = f"sqlite:///{project / 'online.db'}"
            else:
                prefix = f"bench_online_{self.tag}"
                uri = f"{REDIS_URL}?prefix={prefix}"
                self.redis_patterns.append(prefix.encode() + b"*")
            prepared = call_worker(self.mine, "--worker", "modelyard-prepare", "--data",
                                   str(self.folder), "--repo", str(project), "--online-uri",
                                   uri)
            if "error" in prepared:
                self._record_materialize("modelyard", store, "delta", prepared, expected)
                continue
            result = call_worker(self.mine, "--worker", "modelyard-materialize", "--data",
                                 str(self.folder), "--repo", str(project), "--online-uri", uri)
            result["ingest_seconds"] = prepared["ingest_seconds"]
            if "seconds" in result:
                self.mine_projects[store] = (project, uri)
            self._record_materialize("modelyard", store, "delta", result, expected)

    def _record_materialize(self, tool: str, store: str, offline: str,
                            result: dict[str, Any], expected: dict[int, list[float]]) -> None:
        record = {"kind": "materialize", "tool": tool, "store": store, "offline": offline,
                  **{k: v for k, v in result.items() if k != "sample"}}
        if "sample" in result:
            record.update(check_values(expected, result["sample"]))
        self.results.append(record)
        label = f"{tool} {store} ({offline})"
        if "error" in result:
            print(f"materialize {label}: FAILED\n{result['error']}", flush=True)
        else:
            print(f"materialize {label}: {result['seconds']:.2f} s, peak "
                  f"{result['peak_mb']:.0f} MB, same values: {record.get('same_values')}",
                  flush=True)

    # -- 2. in-process lookups
    def lookups(self) -> None:
        for batch in BATCHES:
            for store in ("sqlite", "redis"):
                if self.with_feast and store in self.feast_repos:
                    assert self.feast_python is not None
                    result = call_worker(
                        self.feast_python, "--worker", "feast-lookup", "--data",
                        str(self.folder), "--repo", str(self.feast_repos[store]), "--batch",
                        str(batch), env=FEAST_ENV)
                    self.results.append({"kind": "lookup", "tool": "feast", "store": store,
                                         "batch": batch, **result})
                if store in self.mine_projects:
                    project, uri = self.mine_projects[store]
                    result = call_worker(
                        self.mine, "--worker", "modelyard-lookup", "--data", str(self.folder),
                        "--repo", str(project), "--online-uri", uri, "--batch", str(batch))
                    self.results.append({"kind": "lookup", "tool": "modelyard",
                                         "store": store, "batch": batch, **result})

    # -- 3. HTTP
    def http(self) -> None:
        expected = truth(self.folder, self.meta["lookups"]["100"][0])
        probe = json.dumps({"features": FEATURE_REFS, "entities": {
            "entity_id": self.meta["lookups"]["100"][0]}}).encode()
        servers: list[tuple[str, str, Any]] = []
        serve_missing = modelyard_serve_missing(self.mine)
        if serve_missing and "sqlite" in self.mine_projects:
            self.results.append({"kind": "http", "tool": "modelyard", "store": "sqlite",
                                 "batch": 1, "error": serve_missing})
        elif "sqlite" in self.mine_projects:
            project, uri = self.mine_projects["sqlite"]
            command = [str(Path(self.mine).parent / "modelyard"), "serve", "--host",
                       "127.0.0.1", "--port", "{port}"]
            servers.append(("modelyard", "/v1/features/online",
                            (command, project, {"MODELYARD_ONLINE_URI": uri})))
        if self.with_feast and "sqlite" in self.feast_repos:
            assert self.feast_python is not None
            command = [feast_bin(self.feast_python), "-c", str(self.feast_repos["sqlite"]),
                       "serve", "-h", "127.0.0.1", "-p", "{port}", "--no-access-log",
                       "-w", "1", "--max-requests", "0"]
            servers.append(("feast", "/get-online-features",
                            (command, self.feast_repos["sqlite"], FEAST_ENV)))
        for tool, path, (command, cwd, env) in servers:
            port = free_port()
            url = f"http://127.0.0.1:{port}{path}"
            try:
                server = Server(tool, [c.replace("{port}", str(port)) for c in command], url,
                                probe, cwd=cwd, env=env)
            except Exception as exc:
                self.results.append({"kind": "http", "tool": tool, "store": "sqlite",
                                     "batch": 1, "error": str(exc)[-2500:]})
                print(f"{tool} server did not start:\n{exc}", flush=True)
                continue
            try:
                check = check_values(expected, as_columns(server.first))
                for batch in BATCHES:
                    result = http_case(server, self.folder, batch, self.quick)
                    self.results.append({"kind": "http", "tool": tool, "store": "sqlite",
                                         "batch": batch, **check, **result})
            finally:
                server.stop()

    # -- clean-up
    def cleanup(self) -> None:
        for repo in self.feast_redis_repos:
            done = call_worker(self.feast_python or sys.executable, "--worker",
                               "feast-teardown", "--repo", str(repo), env=FEAST_ENV)
            if "error" in done:
                self.notes.append(f"Feast teardown failed: {done['error'][-500:]}")
        patterns = [*self.redis_patterns, f"*online_bench_{self.tag}".encode()]
        for pattern in patterns if self.redis else []:
            redis_delete(pattern)
            left = redis_delete(pattern)
            if left:
                self.notes.append(f"{left} Redis keys matching {pattern!r} were left behind")


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def _find(results: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for r in results:
        if all(r.get(k) == v for k, v in match.items()) and "error" not in r:
            return r
    return None


def report(bench: Bench) -> None:
    results, meta = bench.results, bench.meta
    rows = []
    for r in (x for x in results if x["kind"] == "materialize"):
        label = f"{r['tool']} {r['store']}"
        offline = r.get("offline", "")
        if "error" in r:
            rows.append([label, offline, "failed", "-", "-", "-", "-", "-", "-"])
            continue
        mine = _find(results, kind="materialize", tool="modelyard", store=r["store"])
        rows.append([
            label, offline, fmt_num(r["seconds"], "s"), fmt_num(r["before_mb"], "MB"),
            fmt_num(r["peak_mb"], "MB"), fmt_num(r["peak_mb"] - r["before_mb"], "MB"),
            ratio(r["seconds"], mine["seconds"]) if mine else "-",
            ratio(r["peak_mb"], mine["peak_mb"]) if mine else "-",
            "yes" if r.get("same_values") else f"NO {r.get('why', '')}",
        ])
    print_table(
        f"materialization: {meta['rows']:,} rows, {meta['entities']:,} entities, 10 float64 "
        "features (ratios = this / modelyard on the same online store)",
        ["tool, online store", "offline", "time", "RSS before", "peak RSS", "growth",
         "time ratio",
         "peak ratio", f"latest values ({len(meta['sample'])} entities)"],
        rows,
    )
    for r in results:
        if r["kind"] == "materialize" and r.get("ingest_seconds") is not None:
            print(f"(modelyard {r['store']}: ingesting the history into the offline table, "
                  f"not timed above, took {r['ingest_seconds']:.2f} s)")

    rows = []
    for batch in BATCHES:
        for store in ("sqlite", "redis"):
            feast = _find(results, kind="lookup", tool="feast", store=store, batch=batch)
            mine = _find(results, kind="lookup", tool="modelyard", store=store, batch=batch)
            if not feast and not mine:
                continue
            rows.append([
                f"{batch} x 10", store,
                fmt_num(feast and feast["p50_us"], "us"), fmt_num(feast and feast["p99_us"], "us"),
                fmt_num(mine and mine["p50_us"], "us"), fmt_num(mine and mine["p99_us"], "us"),
                ratio(feast and feast["p50_us"], mine and mine["p50_us"]),
                ratio(feast and feast["p99_us"], mine and mine["p99_us"]),
            ])
    print_table(
        f"in-process lookups, {meta['calls']:,} calls after {meta['warmup']} warm-up "
        "(.to_dict() included; ratio = Feast / modelyard)",
        ["entities x features", "store", "Feast p50", "Feast p99", "modelyard p50",
         "modelyard p99", "p50 ratio", "p99 ratio"],
        rows,
    )

    rows = []
    for batch in BATCHES:
        mine = _find(results, kind="http", tool="modelyard", batch=batch)
        for tool in ("modelyard", "feast"):
            r = _find(results, kind="http", tool=tool, batch=batch)
            if not r:
                continue
            rows.append([
                f"{batch} x 10", tool, fmt_num(r["rps"], "req/s"), fmt_num(r["p50_ms"], "ms"),
                fmt_num(r["p99_ms"], "ms"), str(r["errors"]),
                fmt_num(r.get("server_rss_mb"), "MB"),
                ratio(mine["rps"], r["rps"]) if mine else "-",
                ratio(r["p50_ms"], mine["p50_ms"]) if mine else "-",
                "yes" if r.get("same_values") else f"NO {r.get('why', '')}",
            ])
    if rows:
        print_table(
            f"HTTP, SQLite online store, {CONCURRENCY} closed-loop connections on 127.0.0.1 "
            "(throughput ratio = modelyard / this; p50 ratio = this / modelyard)",
            ["entities x features", "server", "throughput", "p50", "p99", "errors",
             "server RSS", "throughput ratio", "p50 ratio", "values"],
            rows,
        )
    for r in results:
        if "error" in r:
            print(f"{r['kind']} {r['tool']} {r.get('store', '')}: {r['error'][-1500:]}")
    for note in bench.notes:
        print(note)


def run(quick: bool = False, with_feast: bool = True, with_http: bool = True
        ) -> list[dict[str, Any]]:
    bench = Bench("quick" if quick else "full", with_feast, with_http)
    bench.setup()
    try:
        bench.materialize()
        bench.lookups()
        if with_http:
            bench.http()
    finally:
        bench.cleanup()
    report(bench)
    versions = {"modelyard": package_version(bench.mine, "modelyard")}
    if bench.feast_python:
        versions["feast"] = package_version(bench.feast_python, "feast")
        versions["redis-py (Feast venv)"] = package_version(bench.feast_python, "redis")
    versions["redis-py (modelyard venv)"] = package_version(bench.mine, "redis")
    print(f"versions: {versions}")
    for r in bench.results:
        r["versions"] = versions
    return bench.results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, fewer calls")
    parser.add_argument("--no-feast", action="store_true", help="modelyard only")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP servers")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--offline", help=argparse.SUPPRESS)
    parser.add_argument("--project", help=argparse.SUPPRESS)
    parser.add_argument("--online-uri", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    started = time.time()
    results = run(quick=args.quick, with_feast=not args.no_feast, with_http=not args.no_http)
    ONLINE_DIR.mkdir(parents=True, exist_ok=True)
    out = WORK_DIR / "online-results.json"
    out.write_text(json.dumps({"results": results, "seconds": time.time() - started,
                               "cpus": os.cpu_count()}, indent=2, default=str))
    print(f"raw figures: {out}")


if __name__ == "__main__":
    main()
