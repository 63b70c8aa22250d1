"""Worker processes that log to a modelyard project; one subcommand per scenario.

Each prints one JSON object as its last stdout line. Commands taking ``--barrier`` wait
there (see ``procs.py``) so that all workers start at the same moment.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import modelyard
import modelyard.client  # loaded before any barrier, not after it

PER_CALL = 1_000  # log_metric calls on "loss"
BATCHES = 100  # log_metrics calls of BATCH_KEYS keys each
BATCH_KEYS = 10
REVERSED = 200  # "acc" logged with explicit steps, newest step first
SHARED_CONFIG = {"dataset": "claims", "folds": 5}  # the same blob from every worker


def wait_at_barrier(barrier: str | None) -> None:
    if barrier is None:
        return
    folder = Path(barrier)
    (folder / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while not (folder / "go").exists():
        if time.monotonic() > deadline:
            raise SystemExit("barrier never opened")
        time.sleep(0.001)


def connect(args: argparse.Namespace, **settings: Any) -> modelyard.Yard:
    return modelyard.connect(args.uri, project=args.project, capture_git=False, **settings)


def cmd_log(args: argparse.Namespace) -> dict[str, Any]:
    """Everything a training script does, at once with the other workers."""
    i = args.worker
    wait_at_barrier(args.barrier)
    yard = connect(args, flush_interval=0.05)
    with yard.start_run("shared", name=f"worker-{i}", tags={"worker": i}) as run:
        run.log_params({"worker": i, "lr": 0.01 * (i + 1), "layers": [i, i + 1]})
        run.set_tags({"phase": "train", "host.slot": str(i % 2)})
        for s in range(PER_CALL):
            run.log_metric("loss", i + 1 / (s + 1))
            if s % 100 == 99:
                run.flush()
        for s in range(BATCHES):
            run.log_metrics({f"m{k}": i * 1000 + s * 10 + k for k in range(BATCH_KEYS)})
            if s % 10 == 9:
                run.flush()
        for s in reversed(range(REVERSED)):  # older steps arrive in later transactions
            run.log_metric("acc", s / REVERSED + i, step=s)
            if s % 50 == 0:
                run.flush()
        own = Path(args.project) / f"weights-{i}.bin"
        own.write_bytes(bytes([i]) * 50_000)
        run.log_artifact(own, "model/weights.bin")
        run.log_dict(SHARED_CONFIG, "config.json")
        run.log_text(f"worker {i} was here", "notes/hello.txt")
        run.set_note(f"note of worker {i}")
    yard.close()
    return {"run_id": run.run_id}


class _UpgradeCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Running upgrade"):
            self.count += 1


def cmd_open(args: argparse.Namespace) -> dict[str, Any]:
    """Open a store that may have no schema yet; report how many migrations this process ran."""
    import alembic.runtime.migration  # noqa: F401  (its logger reports each migration step)

    counter = _UpgradeCounter()
    logger = logging.getLogger("alembic.runtime.migration")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(counter)
    wait_at_barrier(args.barrier)
    yard = connect(args, capture_packages=False)
    with yard.start_run("opened", name=f"opener-{os.getpid()}") as run:
        run.log_metric("x", 1.0)
    yard.close()
    return {"upgrades": counter.count, "run_id": run.run_id}


def _append_synced(fh: Any, line: str) -> None:
    fh.write(line + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def cmd_counter(args: argparse.Namespace) -> dict[str, Any]:
    """Log 0, 1, 2, ... on "counter" until killed; the side file gets "<step> <time>" after
    each point is handed to modelyard (so the time is never earlier than the logging)."""
    yard = connect(args, flush_interval=args.flush_interval,
                   heartbeat_timeout=args.heartbeat_timeout, capture_packages=False)
    run = yard.start_run("crash", name="counter")
    with open(args.side, "a") as side:
        _append_synced(side, f"run {run.run_id}")
        step = 0
        while args.max_steps is None or step < args.max_steps:
            if args.idle:
                time.sleep(0.05)
                continue
            run.log_metric("counter", float(step), step=step)
            _append_synced(side, f"{step} {time.time():.6f}")
            step += 1
            time.sleep(0.001)
    run.end()
    return {"run_id": run.run_id, "steps": step}


def cmd_param(args: argparse.Namespace) -> dict[str, Any]:
    """Write params into an existing run at the same time as another worker."""
    from modelyard.errors import ParamConflictError
    from modelyard.tracking.run import Run

    yard = connect(args, capture_packages=False)
    run = Run(yard.tracking, yard.tracking.store.get_run(args.run_id).info)
    wait_at_barrier(args.barrier)
    outcome: dict[str, str] = {}
    for k in range(args.keys):
        try:
            run.log_param(f"p{k}", f"from-{args.worker}")
            outcome[f"p{k}"] = "ok"
        except ParamConflictError as exc:
            outcome[f"p{k}"] = f"conflict: {exc}"
    run.log_param("same", "agreed")
    yard.close()
    return {"outcome": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m _workers.track")
    parser.add_argument("command", choices=["log", "open", "counter", "param"])
    parser.add_argument("--project", required=True)
    parser.add_argument("--uri")
    parser.add_argument("--barrier")
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--side")
    parser.add_argument("--flush-interval", type=float, default=0.2)
    parser.add_argument("--heartbeat-timeout", type=float, default=60.0)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--idle", action="store_true")
    parser.add_argument("--run-id")
    parser.add_argument("--keys", type=int, default=20)
    args = parser.parse_args()
    commands = {"log": cmd_log, "open": cmd_open, "counter": cmd_counter, "param": cmd_param}
    print(json.dumps(commands[args.command](args)), flush=True)


if __name__ == "__main__":
    main()
