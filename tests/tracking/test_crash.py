"""A training process killed with SIGKILL: what is kept, and how its run is shown."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from _workers import procs

import modelyard
from modelyard.backends.metadata.sql import tables as t

pytestmark = pytest.mark.slow

FLUSH_INTERVAL = 0.2
ONE_FLUSH = 0.3  # scheduling delay plus one commit, with room for a busy machine
HEARTBEAT_TIMEOUT = 2.0


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.communicate()


def _counter(children: list[subprocess.Popen[str]], project: Path, uri: str, side: Path,
             *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = procs.start(
        ["counter", "--project", str(project), "--uri", uri, "--side", str(side),
         "--flush-interval", str(FLUSH_INTERVAL), *extra],
        cwd=project,
    )
    children.append(proc)
    first = procs.wait_for_line(side, proc)[0]
    assert first.startswith("run ")
    return proc, first.split()[1]


def test_kill_9_loses_at_most_the_last_flush_interval(
    store_uri: str, project: Path, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    """What a kill -9 can lose: the metric points logged in the last ``flush_interval``
    seconds (plus the time one flush takes), which were still in the process's memory.
    Everything flushed before is committed, and a flush is one transaction, so the store
    never holds part of a batch: the steps kept are a prefix 0..n without holes."""
    side = tmp_path / "side.txt"
    proc, run_id = _counter(children, project, store_uri, side)
    start = time.time()
    procs.wait_for_line(side, proc, predicate=lambda line: (
        not line.startswith("run") and float(line.split()[1]) > start + 2.0))
    killed_at = time.time()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    logged = [(int(s), float(w)) for s, w in
              (line.split() for line in procs.read_lines(side)[1:])]
    assert [s for s, _ in logged] == list(range(len(logged)))
    deadline = killed_at - (FLUSH_INTERVAL + ONE_FLUSH)
    must_keep = max(s for s, when in logged if when <= deadline)
    assert must_keep > 100  # the test really covered a stretch of logging

    with modelyard.connect(store_uri) as yard:
        history = yard.tracking.store.metric_history(run_id, "counter")
        steps = [p.step for p in history]
        assert steps == list(range(len(steps))), "a hole or a duplicate: a partial batch"
        assert all(p.value == float(p.step) for p in history)
        assert steps[-1] >= must_keep, (
            f"lost step {must_keep}, logged {killed_at - dict(logged)[must_keep]:.2f}s "
            "before the kill")
        assert steps[-1] <= logged[-1][0] + 1  # at most the point being logged at the kill
        record = yard.get_run(run_id)
        assert record.metrics["counter"].step == steps[-1]
        assert record.info.status == "killed"  # same host, its pid is gone
        assert record.info.end_time is not None


def test_dead_process_on_this_host_is_shown_killed_at_once(
    store_uri: str, project: Path, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    proc, run_id = _counter(children, project, store_uri, tmp_path / "side.txt", "--idle")
    with modelyard.connect(store_uri) as yard:  # heartbeat_timeout stays at 60 s
        assert yard.get_run(run_id).info.status == "running"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        record = yard.get_run(run_id)
        assert record.info.status == "killed"
        assert record.info.end_time == record.info.heartbeat
        df = yard.search_runs("crash")
        assert df.loc[df.run_id == run_id, "status"].tolist() == ["killed"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_unreaped_child_is_dead_too(
    store_uri: str, project: Path, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    """A killed child whose parent has not waited for it yet (a zombie) is dead."""
    proc, run_id = _counter(children, project, store_uri, tmp_path / "side.txt", "--idle")
    with modelyard.connect(store_uri) as yard:
        proc.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert yard.get_run(run_id).info.status == "killed"
    proc.wait()


def test_stale_heartbeat_of_another_host_is_shown_killed(
    store_uri: str, project: Path, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    proc, run_id = _counter(children, project, store_uri, tmp_path / "side.txt", "--idle",
                            "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT))
    with modelyard.connect(store_uri, heartbeat_timeout=HEARTBEAT_TIMEOUT) as yard:
        with yard.tracking.store.engine.begin() as conn:  # as if it ran on another machine
            conn.execute(t.runs.update().where(t.runs.c.run_id == run_id)
                         .values(host="elsewhere.example"))
        time.sleep(HEARTBEAT_TIMEOUT + 0.5)
        alive = yard.get_run(run_id).info
        assert alive.status == "running"  # its heartbeat kept coming

        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert yard.get_run(run_id).info.status == "running"  # no pid check across hosts
        while True:
            info = yard.get_run(run_id).info
            now_ms = time.time() * 1000
            if info.status != "running":
                break
            assert now_ms < info.heartbeat + HEARTBEAT_TIMEOUT * 1000 + 2000
            time.sleep(0.1)
        assert info.status == "killed"
        assert now_ms >= info.heartbeat + HEARTBEAT_TIMEOUT * 1000
        assert info.end_time == info.heartbeat
        with yard.tracking.store.engine.connect() as conn:
            host = conn.execute(sa.select(t.runs.c.host).where(t.runs.c.run_id == run_id))
            assert host.scalar_one() == "elsewhere.example"
