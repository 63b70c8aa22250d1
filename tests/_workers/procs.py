"""The parent side: start worker processes, release them together, collect their results.

Workers are started as ``python -m _workers.track <command> ...`` with the tests folder on
``PYTHONPATH``. A start barrier is a folder: each worker drops a ``ready-<pid>`` file once
it has imported everything, then waits for a ``go`` file, which the parent creates when
all workers are ready, so they hit the store at the same moment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def payload(self) -> dict[str, Any]:
        """The JSON object the worker printed as its last line."""
        lines = self.stdout.strip().splitlines()
        assert lines, f"worker printed nothing; stderr:\n{self.stderr}"
        return dict(json.loads(lines[-1]))


def worker_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(TESTS_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env.update(extra)
    return env


def start(args: list[str], *, cwd: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "_workers.track", *args],
        cwd=cwd, env=worker_env(**env), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def run_together(arg_lists: list[list[str]], *, cwd: Path, barrier: Path,
                 timeout: float = 60.0) -> list[Result]:
    """Start one worker per argument list, release them at once, wait for all of them."""
    barrier.mkdir(parents=True, exist_ok=True)
    procs = [start([*args, "--barrier", str(barrier)], cwd=cwd) for args in arg_lists]
    try:
        deadline = time.monotonic() + timeout
        while len(list(barrier.glob("ready-*"))) < len(procs):
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                out, err = dead[0].communicate()
                raise AssertionError(f"a worker exited before the start: {err or out}")
            assert time.monotonic() < deadline, "workers did not get ready in time"
            time.sleep(0.01)
        (barrier / "go").touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append(Result(p.returncode, out, err))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def wait_for_line(path: Path, proc: subprocess.Popen[str], *, timeout: float = 30.0,
                  predicate: Any = None) -> list[str]:
    """Complete lines of ``path`` once one satisfies ``predicate`` (default: any line)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = read_lines(path)
        if lines and (predicate is None or any(predicate(line) for line in lines)):
            return lines
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"worker exited with {proc.returncode}: {err or out}")
        assert time.monotonic() < deadline, f"nothing suitable in {path} in time"
        time.sleep(0.02)


def read_lines(path: Path) -> list[str]:
    """Complete (newline-terminated) lines only: a writer killed mid-line leaves a stub."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return text.split("\n")[:-1]
