"""Benchmark 3: start-up cost, each package in a fresh interpreter.

* ``import X``: wall time of ``python -c "import X"`` minus that of ``python -c "pass"``
  with the same interpreter (each package has its own virtual environment), median of
  ``REPEATS`` runs, the two packages alternating so that the machine's state is shared.
* tracking client loaded: ``from modelyard import connect`` (modelyard loads its client and
  SQLAlchemy on first use of the facade) vs ``from mlflow import MlflowClient``.
* first metric: a whole fresh process that connects to an existing SQLite store, starts a
  run, logs one metric and ends the run (not minus the bare interpreter): what a short
  script pays before its first point is stored.
* ``--help``: the installed command line, ``modelyard --help`` vs ``mlflow --help``, whole
  process (what shell completion pays on every Tab, too).

Run alone: ``python bench/bench_import.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    PEER_ENV,
    ensure_peer_venv,
    fmt_num,
    fresh_dir,
    median,
    modelyard_python,
    print_table,
)

REPEATS = 5
TARGET = 5.0

MLFLOW_FIRST_METRIC = """
import mlflow
mlflow.set_tracking_uri("sqlite:///{db}")
mlflow.set_experiment("startup")
with mlflow.start_run():
    mlflow.log_metric("loss", 0.5)
"""
MODELYARD_FIRST_METRIC = """
import modelyard
yard = modelyard.connect("sqlite:///{db}", artifact_uri="file://{art}")
with yard.start_run("startup") as run:
    run.log_metric("loss", 0.5)
"""


def wall(python: str, code: str, env: dict[str, str] | None = None) -> float:
    return wall_command([python, "-c", code], env)


def wall_command(args: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)!r} failed:\n{done.stderr[-2000:]}")
    return seconds


def command_beside(python: str, name: str) -> str:
    """The console script ``name`` installed beside the interpreter ``python``."""
    return str(Path(python).parent / name)


def run(quick: bool = False) -> list[dict[str, Any]]:
    peer = ensure_peer_venv()
    mine = modelyard_python()
    repeats = 3 if quick else REPEATS
    folder = fresh_dir("import")
    mlflow_db, my_db = folder / "mlflow.db", folder / "modelyard.db"
    cases = {
        "import": ("import X", "import mlflow", "import modelyard", True),
        "client": ("tracking client loaded", "from mlflow import MlflowClient",
                   "from modelyard import connect", True),
        "first-metric": (
            "fresh process: connect, start run, log 1 metric, end",
            MLFLOW_FIRST_METRIC.format(db=mlflow_db),
            MODELYARD_FIRST_METRIC.format(db=my_db, art=folder / "artifacts"), False,
        ),
        "help": ("command line: `modelyard --help` vs `mlflow --help`", "", "", False),
    }
    commands = {"mlflow": [command_beside(peer, "mlflow"), "--help"],
                "modelyard": [command_beside(mine, "modelyard"), "--help"]}
    # create both stores (and warm the OS file cache) before timing
    wall(peer, cases["first-metric"][1], PEER_ENV)
    wall(mine, cases["first-metric"][2])
    samples: dict[str, dict[str, list[float]]] = {
        c: {"mlflow": [], "modelyard": [], "bare-mlflow": [], "bare-modelyard": []}
        for c in cases
    }
    for _ in range(repeats):
        for case, (_, mlflow_code, my_code, _minus_bare) in cases.items():
            s = samples[case]
            s["bare-mlflow"].append(wall(peer, "pass"))
            s["mlflow"].append(wall_command(commands["mlflow"], PEER_ENV) if case == "help"
                               else wall(peer, mlflow_code, PEER_ENV))
            s["bare-modelyard"].append(wall(mine, "pass"))
            s["modelyard"].append(wall_command(commands["modelyard"]) if case == "help"
                                  else wall(mine, my_code))
    rows, table = [], []
    for case, (label, _, _, minus_bare) in cases.items():
        s = samples[case]
        mlf, my = median(s["mlflow"]), median(s["modelyard"])
        if minus_bare:
            mlf -= median(s["bare-mlflow"])
            my -= median(s["bare-modelyard"])
        ratio = mlf / my
        target = TARGET if case == "import" else None
        rows.append({"case": case, "label": label, "mlflow_s": mlf, "modelyard_s": my,
                     "ratio": ratio, "target": target, "samples": s})
        table.append([label, fmt_num(my * 1000, "ms"), fmt_num(mlf * 1000, "ms"),
                      f"{ratio:,.1f}x",
                      f">= {target:g}x, {'met' if ratio >= target else 'NOT met'}"
                      if target else "reference"])
    print_table(f"3. Start-up time, fresh interpreter (median of {repeats})",
                ["case", "modelyard", "MLflow", "ratio", "target"], table)
    return rows


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
