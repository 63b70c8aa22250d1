"""Shared plumbing of the benchmarks: the peer's virtual environment, subprocess workers,
PostgreSQL scratch databases, and the tables every benchmark prints.

Only the standard library is imported here, so the peer's interpreter can load this module
too: a worker for MLflow and a worker for modelyard are the same script run by two
interpreters, and the two packages never share a process.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
VENVS_DIR = BENCH_DIR / ".venvs"
PEER_VENV = VENVS_DIR / "mlflow"
PEER_REQUIREMENTS = ["mlflow", "psycopg[binary]"]  # SQLAlchemy 2.1 speaks psycopg 3
PG_ADMIN_URI = os.environ.get("BENCH_PG_URI", "postgresql://postgres@127.0.0.1:5432/postgres")
RESULT_PREFIX = "BENCH-RESULT "
# MLflow 3 sends usage telemetry from a background thread; turned off so it costs nothing.
PEER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


# --- interpreters --------------------------------------------------------------------------

def modelyard_python() -> str:
    """The interpreter that runs modelyard: the project's .venv, else the current one."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def peer_python() -> str:
    return str(PEER_VENV / "bin" / "python")


def ensure_venv(venv: Path, requirements: Sequence[str], probe: str, log: bool = True) -> str:
    """Create ``venv`` with ``requirements`` from PyPI unless ``import <probe>`` already works
    there; return its interpreter."""
    python = str(venv / "bin" / "python")
    if Path(python).exists():
        found = subprocess.run([python, "-c", f"import {probe}"], capture_output=True)
        if found.returncode == 0:
            return python
    if log:
        print(f"creating {venv} and installing {' '.join(requirements)} from PyPI "
              "(once; a few minutes)", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    base = shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for args in (["--upgrade", "pip"], list(requirements)):
        done = subprocess.run([*pip, *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pip install {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return python


def ensure_peer_venv(log: bool = True) -> str:
    """Create bench/.venvs/mlflow with MLflow from PyPI unless it already imports."""
    return ensure_venv(PEER_VENV, PEER_REQUIREMENTS, "mlflow, psycopg", log)


def package_version(python: str, dist: str) -> str:
    out = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True, text=True,
    )
    return out.stdout.strip() or "not installed"


# --- workers -------------------------------------------------------------------------------

def emit(result: Any) -> None:
    """Called by a worker: hand one JSON result back to the parent."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_worker(python: str, script: Path, *args: str, timeout: float = 600,
               env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    """Run ``python script args`` in a fresh process and return what it emitted."""
    proc = subprocess.run(
        [python, str(script), *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, cwd=str(cwd) if cwd else None,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise RuntimeError(
        f"worker {script.name} {' '.join(args)} failed (exit {proc.returncode}):\n"
        f"{proc.stderr[-3000:]}"
    )


class WorkerSession:
    """A long-lived worker that answers one request per line on stdin, so that measurements
    of the two packages can alternate under the same machine conditions."""

    def __init__(self, python: str, script: Path, *args: str,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = f"{script.name} {' '.join(args)}"
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        self.log = WORK_DIR / f"{script.stem}-{'-'.join(args[:2])}.stderr"
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(
                [python, str(script), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err, text=True, env={**os.environ, **(env or {})},
                cwd=str(cwd) if cwd else None,
            )

    def read(self) -> Any:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(RESULT_PREFIX):
                return json.loads(line[len(RESULT_PREFIX):])
        raise RuntimeError(f"worker {self.name} ended (exit {self.proc.wait()}):\n"
                           f"{self.log.read_text(errors='replace')[-3000:]}")

    def request(self, command: str) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def serve(handlers: dict[str, Any]) -> None:
    """The worker side of :class:`WorkerSession`: one handler call per request line."""
    for line in sys.stdin:
        command = line.strip()
        if command:
            emit(handlers[command]())


def fresh_dir(*parts: str) -> Path:
    path = WORK_DIR.joinpath(*parts)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# --- PostgreSQL scratch databases ----------------------------------------------------------

def _pg_exec(sql: str) -> None:
    import sqlalchemy as sa  # the modelyard interpreter has it; the peer never calls this

    url = sa.engine.make_url(PG_ADMIN_URI)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()


def create_pg_database(prefix: str) -> str:
    """A brand-new database; returns its postgresql:// URI."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URI.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_pg_database(uri: str) -> None:
    name = uri.rsplit("/", 1)[1]
    _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_available() -> bool:
    try:
        _pg_exec("SELECT 1")
    except Exception:
        return False
    return True


# --- numbers and tables --------------------------------------------------------------------

def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``). Not ``ru_maxrss``: Linux keeps that
    across ``execve``, so a worker would report its parent's peak whenever that is higher."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def fmt_num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if value >= 100:
        text = f"{value:,.0f}"
    elif value >= 10:
        text = f"{value:.1f}"
    elif value >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join("-" * w for w in widths)
    print()
    print(title)
    print(line)
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(line, flush=True)


def machine_summary() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "os": f"{platform.system()} {platform.release()}",
        "cpu": f"{cpu} ({os.cpu_count()} cores)",
        "memory": mem,
        "python": platform.python_version(),
    }
