"""Point-in-time training sets at scale: the DuckDB engine against the Spark engine (Spark
Connect on a Sail server in its own process), on the same Delta table in local files.

    python bench/bench_scale.py --rows 1000000 --spine 100000

Each engine runs in a fresh child process, which reports its wall time and its peak resident
memory (the driver's: the modelyard process, not the Spark server's). Prints both and their
ratio. Feast's Spark offline store, and S3, come next.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENTITIES = 100_000
FEATURES = ["f0", "f1", "f2", "f3"]


def write_history(folder: Path, rows: int, seed: int = 7) -> str:
    import numpy as np
    import pyarrow as pa
    from deltalake import write_deltalake

    rng = np.random.default_rng(seed)
    start = 1_700_000_000_000_000
    uri = str(folder / "history")
    chunk = 1_000_000
    for first in range(0, rows, chunk):
        n = min(chunk, rows - first)
        event = start + rng.integers(0, 365 * 86_400_000_000, n)
        table = pa.table({
            "entity_id": rng.integers(0, ENTITIES, n),
            "event_time": pa.array(event, pa.timestamp("us", "UTC")),
            "_ingested_at": pa.array(event + 3_600_000_000, pa.timestamp("us", "UTC")),
            **{f: rng.normal(size=n) for f in FEATURES},
        })
        write_deltalake(uri, table, mode="append")
    return uri


def write_spine(folder: Path, rows: int, seed: int = 11) -> str:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    start = 1_700_000_000_000_000
    spine = pa.table({
        "entity_id": rng.integers(0, ENTITIES, rows),
        "ts": pa.array(start + rng.integers(0, 365 * 86_400_000_000, rows),
                       pa.timestamp("us", "UTC")),
    })
    path = str(folder / "spine.parquet")
    pq.write_table(spine, path)
    return path


def run_engine(engine: str, uri: str, spine_path: str) -> dict[str, float]:
    """In the child: one training set from the Delta table at ``uri``; time and peak RSS."""
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    from modelyard.backends.offline import engine_from_setting
    from modelyard.backends.offline.engine import GroupInput, TableInput, WindowSpec
    from modelyard.backends.offline.tables import TableRef

    spine = pq.read_table(spine_path)
    table = DeltaTable(uri)
    schema = table.to_pyarrow_dataset().schema
    names = ["entity_id", "event_time", "ingested_at", *FEATURES]
    exprs = ["entity_id", "event_time", "_ingested_at", *FEATURES]
    import pyarrow as pa

    computed = pa.schema([schema.field(e).with_name(n) for n, e in zip(names, exprs, strict=True)])
    rows = TableInput(TableRef(uri), table.version(),
                      tuple((n, f'"{e}"') for n, e in zip(names, exprs, strict=True)), computed)
    windows = (WindowSpec("f0_mean_7d", "mean", "f0", 7 * 86_400_000_000),
               WindowSpec("rows_30d", "count", None, 30 * 86_400_000_000))
    group = GroupInput("stats", ("entity_id",), rows, tuple(FEATURES), windows)
    chosen = engine_from_setting(engine)
    began = time.perf_counter()
    result = chosen.point_in_time(spine, "ts", [group])
    seconds = time.perf_counter() - began
    assert result.num_rows == spine.num_rows
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_rss_mb": peak_kb / 1024,
            "null_f0": float(result.column("f0").null_count)}


def start_sail() -> tuple[subprocess.Popen[str], str]:
    code = ("from pysail.spark import SparkConnectServer; import sys; "
            "s = SparkConnectServer(); s.start(); print(s.listening_address[1], flush=True); "
            "sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    return proc, f"sc://127.0.0.1:{port}"


def child(engine: str, uri: str, spine_path: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", engine, uri, spine_path],
                         check=True, capture_output=True, text=True, env=os.environ.copy())
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--spine", type=int, default=100_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_engine(*args.child)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        uri = write_history(folder, args.rows)
        spine_path = write_spine(folder, args.spine)
        duck = child("duckdb", uri, spine_path)
        sail, remote = start_sail()
        try:
            spark = child(remote, uri, spine_path)
        finally:
            sail.terminate()
            sail.wait()
    print(f"PIT {args.rows:,} history rows x {args.spine:,} spine rows (local Delta files)")
    for name, got in (("duckdb", duck), ("spark (Sail)", spark)):
        print(f"  {name:<13} {got['seconds']:8.2f} s   "
              f"driver peak RSS {got['peak_rss_mb']:7.0f} MB")
    print(f"  spark / duckdb time ratio: {spark['seconds'] / duck['seconds']:.2f}")
    if duck["null_f0"] != spark["null_f0"]:
        raise SystemExit("the engines disagree on the number of rows without features")


if __name__ == "__main__":
    main()
