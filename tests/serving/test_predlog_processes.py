"""The prediction log in real processes: interpreter exit, SIGKILL, two writers at once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.backends.predictions import prediction_store_from_uri

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("_predlog_worker.py")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(WORKER), *args], env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.communicate()


@pytest.fixture(params=["sqlite", "parquet"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return f"file://{tmp_path / 'predictions'}"


def test_records_logged_before_a_normal_exit_are_written_once(
        uri: str, children: list[subprocess.Popen[str]]) -> None:
    proc = _start("exit", uri, "a", "1500")
    children.append(proc)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["pending"] > 0  # left for the exit flush
    store = prediction_store_from_uri(uri)
    try:
        frame = store.read("claims")
        assert len(frame) == 1500 and store.count("claims") == 1500
        assert sorted(frame.request_id) == sorted(f"a-{i}" for i in range(1500))
        assert frame["features.x"].tolist() == [i * 0.5 for i in range(1500)]
    finally:
        store.close()


def test_sigkill_after_flush_keeps_everything_flushed_and_nothing_is_corrupt(
        uri: str, tmp_path: Path, children: list[subprocess.Popen[str]]) -> None:
    side = tmp_path / "side.txt"
    proc = _start("kill", uri, "k", "500", str(side))
    children.append(proc)
    deadline = time.monotonic() + 60
    while not (side.exists() and side.read_text().endswith("\n")):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # let it write more batches, so the kill lands amid writing
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    if uri.startswith("sqlite"):
        path = uri[len("sqlite:///"):]
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = prediction_store_from_uri(uri)
    try:
        frame = store.read("claims")
        flushed = {f"k-{i}" for i in range(500)}
        assert flushed <= set(frame.request_id)  # everything flush() returned for
        assert not frame.duplicated(["request_id", "row"]).any()
        assert len(frame) == store.count("claims") > 500
        # one writer, batches in logging order, each all or nothing: what is stored is
        # exactly the first records logged, without a hole
        stored = {(r, n) for r, n in zip(frame.request_id, frame.row, strict=True)}
        logged = [(f"k-{i}", 0) for i in range(500)] + [
            (f"k-{i}", row) for i in range(500, 500 + len(frame)) for row in range(20)]
        assert stored == set(logged[:len(frame)])
    finally:
        store.close()


def test_two_processes_logging_to_one_sqlite_store_lose_nothing(
        tmp_path: Path, children: list[subprocess.Popen[str]]) -> None:
    uri = f"sqlite:///{tmp_path / 'meta.db'}"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [_start("race", uri, tag, "3000", "-", str(barrier)) for tag in ("a", "b")]
    children.extend(procs)
    deadline = time.monotonic() + 60
    while len(list(barrier.glob("ready-*"))) < 2:
        assert all(p.poll() is None for p in procs), procs[0].communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (barrier / "go").touch()
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err
        stats = json.loads(out.strip().splitlines()[-1])
        assert stats["written"] == 3000 and stats["dropped"] == stats["failures"] == 0
    store = prediction_store_from_uri(uri)
    try:
        frame = store.read("claims")
        assert len(frame) == 6000
        assert set(frame.request_id) == {f"{t}-{i}" for t in "ab" for i in range(3000)}
    finally:
        store.close()
