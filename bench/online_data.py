"""The data, constants and Feast environment of bench_online.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from common import (
    WORK_DIR,
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
