"""Every write path killed with SIGKILL at seeded random moments, on SQLite and PostgreSQL:
after the next open nothing is half-visible, a retry under the same idempotency key lands
exactly once, and a garbage collection then removes what the kills left and nothing else
(see ``_workers/crash.py``; ``bench/bench_crash.py`` runs many more kill points)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _workers.crash import run_crash_points
from _workers.writes import PATHS, WorkerPool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    yield WorkerPool()


def test_killed_writes_leave_nothing_half_done(pool: WorkerPool, store_uri: str,
                                               project: Path) -> None:
    reports = run_crash_points(pool, store_uri, project, PATHS, points=3, seed=11)
    assert [r.path for r in reports] == list(PATHS)
    # the seeded moments kill most writes part-way (some finish first: that is checked too)
    assert sum(r.killed for r in reports) >= len(PATHS)
    # after each path, run_crash_points collects with no grace period and checks that
    # nothing referenced was lost and nothing unreferenced is left (check_collected)
