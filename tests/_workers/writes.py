"""Crash workers: one write path per process, killed with SIGKILL at chosen moments.

Each write path (``PATHS``) is a function ``perform(yard, path, i, key, arg)`` that both the
worker process and the retrying test call with the same arguments, so a retry repeats the
exact write the killed process was doing. Workers are forked from a forkserver that has
imported modelyard and its libraries once (``WorkerPool``), so a kill point costs a fork,
not an interpreter start; each worker opens its own connection. Started as
``python -m _workers.writes PATH I KEY ARG --project P --uri U`` it runs one write in the
foreground instead (for manual use).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import modelyard
from modelyard import Entity, Feature, FeatureGroup, Source, Yard

PATHS = ("ingest", "materialize", "log_model", "log_artifact", "promote", "forget",
         "monitor")
MODEL = "crash-model"
BATCH_ROWS = 5_000
BASE_CUSTOMERS = 300

customer = Entity("customer", key="customer_id")
events = Source.frame("events", timestamp="ts")
stats = FeatureGroup("stats", entity=customer, source=events,
                     features=[Feature("amount", "amount"), Feature("y", "y")])


def rows(n: int, seed: int, first_id: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.uniform(0, 100, n).round(3)
    return pd.DataFrame({"customer_id": np.arange(first_id, first_id + n, dtype=np.int64),
                         "ts": pd.Timestamp("2025-01-01", tz="UTC")
                         + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
                         "amount": amount, "y": (amount * 2 + seed).round(3)})


def model(seed: int) -> Any:
    from sklearn.linear_model import LinearRegression

    frame = rows(50, seed)
    return LinearRegression().fit(frame[["amount"]], frame["y"])


def connect(uri: str, project: Path) -> Yard:
    return modelyard.connect(uri, project=project, capture_packages=False, capture_git=False)


def prepare(yard: Yard) -> None:
    """The state every path starts from: data ingested and materialized, two versions of
    the model with the first in production."""
    yard.apply([customer, events, stats])
    yard.ingest("events", rows(BASE_CUSTOMERS, seed=1))
    yard.materialize("stats")
    for seed in (0, 1):
        yard.models.register(model(seed), MODEL, input_example=rows(20, 0)[["amount"]],
                             onnx=False)
    yard.models.promote(MODEL, 1, "production")


def artifact_folder(project: Path, i: int) -> Path:
    """Three files of seeded bytes, made whole or not at all (a worker may be killed while
    making them): written in a scratch folder, then renamed into place."""
    folder = project / "crash-files" / f"data-{i}"
    if not folder.is_dir():
        scratch = project / "crash-files" / f".new-{i}-{os.getpid()}"
        scratch.mkdir(parents=True)
        rng = np.random.default_rng(i)
        for n in range(3):
            (scratch / f"part-{n}.bin").write_bytes(rng.bytes(300_000))
        with contextlib.suppress(OSError):  # made meanwhile by another process
            scratch.rename(folder)
    return folder


def perform(yard: Yard, path: str, i: int, key: str, arg: int) -> dict[str, Any]:
    """Write ``i`` of ``path``; what it returned, as JSON-able values."""
    if path == "ingest":
        commit = yard.ingest("events", rows(BATCH_ROWS, seed=100 + i, first_id=10_000 * (i + 1)),
                             idempotency_key=key)
        return {"commit_id": commit.commit_id, "rows": commit.rows}
    if path == "materialize":
        return {"records": len(yard.materialize("stats"))}
    if path == "log_model":
        with yard.start_run("crash") as run:
            version = run.log_model(model(10 + i), MODEL, onnx=False,
                                    input_example=rows(20, 0)[["amount"]],
                                    idempotency_key=key)
        return {"version": version.version}
    if path == "log_artifact":
        folder = artifact_folder(Path(yard.settings.project_root or "."), i)
        with yard.start_run("crash") as run:
            entries = run.log_artifact(folder, f"data-{i}", idempotency_key=key)
        return {"entries": [e.path for e in entries]}
    if path == "promote":
        done = yard.models.promote(MODEL, arg, "production", idempotency_key=key)
        return {"version": done.version, "event_id": done.event.id}
    if path == "forget":
        return {"removed": yard.features.forget("customer", [3 * i + 1, 3 * i + 2,
                                                              3 * i + 3])}
    if path == "monitor":
        frame = rows(200, seed=7)
        result = yard.monitoring.check(MODEL, data=frame[["amount", "y"]], version=1,
                                       label="y", send=False)
        return {"status": str(getattr(result, "status", ""))}
    raise ValueError(f"unknown write path {path!r}")


# --- the worker process ----------------------------------------------------------------------

def _child(conn: Connection, uri: str, project: str, env: dict[str, str], path: str,
           i: int, key: str, arg: int) -> None:
    for name in [k for k in os.environ if k.startswith("MODELYARD_")]:
        del os.environ[name]
    os.environ.update(env)
    os.chdir(project)
    yard = connect(uri, Path(project))
    conn.send(("ready", time.monotonic()))
    result = perform(yard, path, i, key, arg)
    conn.send(("done", result))
    yard.close()


@dataclass
class Outcome:
    killed: bool
    result: dict[str, Any] | None
    seconds: float  # from the start of the write to its end or its kill


class WorkerPool:
    """Forks workers from a forkserver that has imported everything once."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload([
            "modelyard.client", "modelyard.features.service", "modelyard.registry.service",
            "modelyard.monitoring.service", "pyarrow", "pandas", "sklearn.linear_model",
            "deltalake", "duckdb", "_workers.writes"])

    def run(self, uri: str, project: Path, path: str, i: int, key: str, arg: int = 0, *,
            kill_after: float | None = None, timeout: float = 120.0) -> Outcome:
        """Run one write in a fresh process; SIGKILL it ``kill_after`` seconds after the
        write started (None: let it finish)."""
        mine, theirs = self.ctx.Pipe()
        env = {k: v for k, v in os.environ.items() if k == "XDG_CONFIG_HOME"}
        proc = self.ctx.Process(target=_child,
                                args=(theirs, uri, str(project), env, path, i, key, arg))
        proc.start()
        theirs.close()
        try:
            if not mine.poll(timeout):
                raise AssertionError(f"the {path} worker did not start")
            tag, _ = mine.recv()
            assert tag == "ready"
            started = time.monotonic()
            wait = timeout if kill_after is None else kill_after
            if mine.poll(wait):
                tag, result = mine.recv()
                proc.join(timeout)
                return Outcome(False, result, time.monotonic() - started)
            assert kill_after is not None, f"the {path} worker did not finish"
            os.kill(proc.pid or 0, signal.SIGKILL)
            proc.join(timeout)
            return Outcome(True, None, time.monotonic() - started)
        except EOFError as exc:
            proc.join(timeout)
            raise AssertionError(f"the {path} worker died (exit code {proc.exitcode})") \
                from exc
        finally:
            mine.close()
            if proc.is_alive():
                proc.kill()
                proc.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", choices=PATHS)
    parser.add_argument("i", type=int)
    parser.add_argument("key")
    parser.add_argument("arg", type=int, nargs="?", default=0)
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--uri", required=True)
    args = parser.parse_args()
    with connect(args.uri, args.project) as yard:
        print(json.dumps(perform(yard, args.path, args.i, args.key, args.arg)))


if __name__ == "__main__":
    main()
