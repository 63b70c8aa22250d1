"""``modelyard gc`` and the reclaimable space ``modelyard doctor`` shows."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import modelyard
from modelyard.backends.artifacts.local import LocalArtifactStore

from .conftest import Invoke, run_main


def _old_orphan(project: Path, size: int) -> str:
    """A blob no record refers to, three hours old, stored by a store since closed."""
    store = LocalArtifactStore(project / ".modelyard" / "artifacts")
    sha, _ = store.put_bytes(os.urandom(size))
    store._marks.close()  # its writer is gone: nothing holds it in flight
    old = time.time() - 3 * 3600
    os.utime(store._path(sha), (old, old))
    return sha


def test_gc_reports_then_frees(invoke: Invoke, project: Path) -> None:
    modelyard.connect(capture_packages=False, capture_git=False).close()  # makes the store
    sha = _old_orphan(project, 5000)
    doctor = invoke("doctor")
    assert "reclaimable" in doctor.output and "1 blob (4.9 KiB)" in doctor.output

    dry = invoke("gc", "--dry-run", "--json")
    report = json.loads(dry.output)
    assert report["dry_run"] and report["kinds"]["blob"] == {"count": 1, "bytes": 5000}
    assert report["freed"][0]["name"] == sha
    assert (project / ".modelyard" / "artifacts" / "objects" / sha[:2] / sha[2:]).exists()

    done = invoke("gc", "--older-than", "2h")
    assert "freed" in done.output and "4.9 KiB" in done.output
    assert not (project / ".modelyard" / "artifacts" / "objects" / sha[:2] / sha[2:]).exists()
    again = json.loads(invoke("gc", "--json").output)
    assert again["count"] == 0
    assert "nothing (no unreferenced data" in invoke("doctor").output


def test_gc_refuses_a_bad_age(project: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(monkeypatch, capsys, "gc", "--older-than", "soon")
    assert code == 1 and "older_than must be an age" in err
