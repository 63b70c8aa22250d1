"""Worker processes that write to an offline table store; one subcommand per scenario.

``append`` appends small batches (after the start barrier, see ``procs.py``) and prints the
commits it got as JSON. ``killed-append`` starts a large append and SIGKILLs its own process
as soon as the first data file of that append shows up in the table folder, so the process
dies after the writing started and before the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from _workers.track import wait_at_barrier
from modelyard.backends.offline.delta import DeltaTableStore
from modelyard.backends.offline.tables import offline_store_from_uri


def append(args: argparse.Namespace) -> None:
    store = offline_store_from_uri(args.uri)
    wait_at_barrier(args.barrier)
    commits = []
    for i in range(args.batches):
        batch = pa.table({"worker": [args.name] * args.rows,
                          "batch": [i] * args.rows,
                          "value": np.arange(args.rows, dtype=np.float64)})
        commits.append(store.append(args.table, batch).to_dict())
    print(json.dumps({"commits": commits}))


def killed_append(args: argparse.Namespace) -> None:
    store = offline_store_from_uri(args.uri)
    assert isinstance(store, DeltaTableStore)
    folder = store.root / args.table
    before = set(os.listdir(folder))

    def kill_when_writing() -> None:
        while True:
            if set(os.listdir(folder)) - before:
                Path(args.marker).write_text("writing\n")
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.0005)

    batch = pa.table({"worker": ["killed"] * args.rows,
                      "batch": [0] * args.rows,
                      "value": np.random.default_rng(0).random(args.rows)})
    threading.Thread(target=kill_when_writing, daemon=True).start()
    store.append(args.table, batch)
    print(json.dumps({"committed": True}))


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("append")
    a.add_argument("--uri", required=True)
    a.add_argument("--table", required=True)
    a.add_argument("--name", required=True)
    a.add_argument("--batches", type=int, default=10)
    a.add_argument("--rows", type=int, default=5)
    a.add_argument("--barrier")
    k = sub.add_parser("killed-append")
    k.add_argument("--uri", required=True)
    k.add_argument("--table", required=True)
    k.add_argument("--rows", type=int, default=2_000_000)
    k.add_argument("--marker", required=True)
    args = parser.parse_args()
    {"append": append, "killed-append": killed_append}[args.command](args)


if __name__ == "__main__":
    main()
