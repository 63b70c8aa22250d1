"""Real processes: checks run at the same time all land whole, and a check killed mid-way
leaves either all of itself or nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import modelyard
from tests.monitoring.support import DAY0, MODEL, claims, log_window, register_regressor

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "modelyard")
WINDOW = ["--start", "2025-03-01", "--end", "2025-03-02"]


@pytest.fixture
def served(project: Path) -> Path:
    with modelyard.connect(capture_git=False, capture_packages=False) as yard:
        version = register_regressor(yard, rows=1_500, evaluate=False)
        log_window(yard, version, claims(1_000, 5, shift=2.0, south=0.6), DAY0)
        yard.monitoring.set_rules(MODEL, ["dataset_drift", "drift(region)",
                                          "drift(vehicle_value)"], notify=["log"])
    return project


def _consistent(project: Path) -> tuple[int, int]:
    """Checks stored and alerts stored; every stored check has exactly the alerts its
    summary counts, and no alert lacks its check."""
    with modelyard.connect(capture_git=False, capture_packages=False) as yard:
        results = yard.monitoring.store.results(MODEL)
        alerts = yard.monitoring.alerts(MODEL, limit=None)
    ids = {r.result_id for r in results}
    assert all(a.result_id in ids for a in alerts)
    for r in results:
        assert sum(a.result_id == r.result_id for a in alerts) == r.summary["alerts"]
    return len(results), len(alerts)


def test_concurrent_checks_all_land_whole(served: Path) -> None:
    procs = [subprocess.Popen([CLI, "monitor", "report", MODEL, *WINDOW], cwd=served,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert "DRIFT" in out
    assert _consistent(served) == (3, 9)


def test_a_killed_check_leaves_all_of_itself_or_nothing(served: Path) -> None:
    for delay in (0.5, 1.5, 3.0):
        proc = subprocess.Popen([CLI, "monitor", "report", MODEL, *WINDOW], cwd=served,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        _consistent(served)
    done = subprocess.run([CLI, "monitor", "report", MODEL, *WINDOW], cwd=served,
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    stored, _ = _consistent(served)
    assert stored >= 1
