"""How bench_serving.py talks to each tool: request bodies, answers, the servers'
environments, and the check of predictions against the model's own."""

from __future__ import annotations

import os
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import package_version
from serving_workers import FEATURES, KEY, MODEL_NAME

Rows = list[list[float]]


def mlflow_body(rows: Rows) -> dict[str, Any]:
    return {"dataframe_split": {"columns": FEATURES, "data": rows}}


def bento_body(rows: Rows) -> dict[str, Any]:
    return {"input": rows}


def instances_body(rows: Rows) -> dict[str, Any]:
    return {"instances": [dict(zip(FEATURES, row, strict=True)) for row in rows]}


def entities_body(ids: list[int]) -> dict[str, Any]:
    return {"entities": [{KEY: i} for i in ids]}


def predictions_of(answer: Any) -> list[Any]:
    """``{"predictions": [...]}`` (MLflow, modelyard) or a bare list (BentoML)."""
    if isinstance(answer, dict):
        return list(answer.get("predictions") or [])
    return list(answer) if isinstance(answer, list) else []


@dataclass
class Tool:
    """One server set-up: how to start it and how to talk to it."""

    tool: str  # "mlflow", "bentoml", "modelyard"
    workers: int
    command: list[str]  # "{port}" stands for the port
    path: str  # the predict endpoint
    body: Callable[[Rows], dict[str, Any]]
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    ready: tuple[str, bytes] | None = None  # (path, body) answered 200 once up, if not predict
    started_line: str | None = None  # logged once per worker process when it serves

    @property
    def label(self) -> str:
        return f"{self.tool} ({self.workers} worker{'s' if self.workers > 1 else ''})"


def activated(python: str, env: dict[str, str]) -> dict[str, str]:
    """``env`` as with the venv of ``python`` activated: ``mlflow models serve`` starts
    ``uvicorn`` by name, from the PATH."""
    bin_dir = Path(python).parent
    return {**env, "VIRTUAL_ENV": str(bin_dir.parent),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def pin_sklearn(python: str, version: str) -> str | None:
    """Install the project's scikit-learn version in a peer's venv; why not, or None."""
    if package_version(python, "scikit-learn") == version:
        return None
    done = subprocess.run([python, "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", f"scikit-learn=={version}"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"scikit-learn=={version} did not install: {done.stderr[-800:]}"
    return None


def compare(expected: list[float], got: list[Any]) -> dict[str, Any]:
    """Largest relative difference, and whether the answers look like float32 values."""
    if len(got) != len(expected) or not all(isinstance(v, (int, float)) for v in got):
        return {"same": False, "why": f"{len(got)} predictions for {len(expected)} rows: "
                                      f"{got[:3]!r}..."}
    worst = max(abs(g - e) / max(abs(e), 1e-300) for g, e in zip(got, expected, strict=True))
    float32 = all(struct.unpack("f", struct.pack("f", v))[0] == v for v in got)
    return {"same": worst <= 1e-9, "max_rel": worst, "float32": float32, "why": ""}


def contract_problem(answer: dict[str, Any]) -> str:
    """What the modelyard answer lacks of ``{"predictions", "model", "version",
    "request_id"}``; empty when it has everything."""
    problems = [key for key in ("predictions", "model", "version", "request_id")
                if key not in answer]
    if answer.get("model") != MODEL_NAME:
        problems.append(f"model={answer.get('model')!r}")
    if answer.get("version") != 1:
        problems.append(f"version={answer.get('version')!r}")
    return ", ".join(problems)
