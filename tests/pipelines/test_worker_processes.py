"""``modelyard worker`` as real processes on SQLite and PostgreSQL: two workers share a
queue without running a run twice, a worker killed mid-run loses its run to the next one
once its lease lapses, and two workers fire each schedule's due time once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from modelyard.backends.metadata.pipelines import ScheduleRecord
from tests.pipelines.support import MARKER, write

pytestmark = pytest.mark.slow


def _worker(uri: str, project: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["MODELYARD_CAPTURE_PACKAGES"] = "false"
    env["MODELYARD_CAPTURE_GIT"] = "false"
    code = "from modelyard.cli.app import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, "worker", "--uri", uri,
                             "--poll", "0.2", *args], cwd=project, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def test_two_workers_run_twenty_runs_once_each(yard: Any, project: Path,
                                                store_uri: str) -> None:
    write(project, MARKER)
    yard.pipelines.apply()
    out = project / "runs.txt"
    queued = [yard.pipelines.enqueue("marker", {"out": str(out)}).run_id for _ in range(20)]
    workers = [_worker(store_uri, project, "--until-idle") for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=240)
        assert w.returncode == 0, err
    starts = Counter(parts[1] for parts in _lines(out) if parts[0] == "start")
    assert sorted(starts) == sorted(queued) and set(starts.values()) == {1}
    runs = yard.pipelines.runs("marker")
    assert len(runs) == 20 and {r.status for r in runs} == {"succeeded"}
    assert {r.attempts for r in runs} == {1}
    assert all(r.worker and r.ended_at_ms for r in runs)


def test_a_killed_workers_run_is_retried_after_its_lease(yard: Any, project: Path,
                                                         store_uri: str) -> None:
    write(project, MARKER)
    yard.pipelines.apply()
    out = project / "runs.txt"
    run = yard.pipelines.enqueue("marker", {"out": str(out), "hang": True})
    doomed = _worker(store_uri, project, "--lease", "2")
    hung = Path(str(out) + ".hung")
    deadline = time.monotonic() + 120
    while not hung.exists():
        assert time.monotonic() < deadline and doomed.poll() is None, doomed.stderr
        time.sleep(0.1)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.communicate(timeout=30)
    killed_at = time.time()
    assert yard.pipelines.get_run(run.run_id).status == "running"
    rescuer = _worker(store_uri, project, "--lease", "2", "--max-runs", "1")
    _, err = rescuer.communicate(timeout=240)
    assert rescuer.returncode == 0, err
    done = yard.pipelines.get_run(run.run_id)
    assert done.status == "succeeded" and done.attempts == 2
    assert "lease lapsed; queued again" in done.error
    events = _lines(out)
    assert [e[0] for e in events] == ["start", "start", "end"]  # never two at once
    assert events[0][2] == str(doomed.pid) and events[1][2] == str(rescuer.pid)
    assert float(events[1][3]) > killed_at


def test_two_workers_fire_each_due_time_once(yard: Any, project: Path,
                                             store_uri: str) -> None:
    write(project, MARKER.replace('params={"out": "", "hang": False}',
                                  f'params={{"out": {str(project / "s.txt")!r}, '
                                  '"hang": False}'))
    yard.pipelines.apply()
    past = int((time.time() - 300) * 1000)
    yard.pipelines.store.set_schedule(ScheduleRecord("marker", "* * * * *", "UTC", {}, past,
                                                     past))
    workers = [_worker(store_uri, project, "--until-idle") for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=240)
        assert w.returncode == 0, err
    runs = yard.pipelines.runs("marker")
    due = Counter(r.run_at_ms for r in runs)
    assert runs and set(due.values()) == {1}
    assert {r.trigger for r in runs} == {"schedule"} and {r.status for r in runs} == {
        "succeeded"}
    assert len(_lines(project / "s.txt")) == 2 * len(runs)
