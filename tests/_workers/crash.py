"""The crash harness: kill a write path at seeded random moments, then check what is left.

For each kill point: the write runs in a worker process (see ``writes.py``) that is killed
with SIGKILL a random fraction of the way through the write (fractions drawn from a seeded
generator, scaled by the duration of an uninterrupted run of the same path); the project is
opened again (which repairs what the crash left half-done) and checked for anything half
visible; then the write is retried in this process with the same idempotency key and checked
to have landed exactly once. After each path's kill points a garbage collection with no
grace period must free what the kills left behind and nothing referenced.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _workers.writes import (
    BATCH_ROWS,
    MODEL,
    PATHS,
    WorkerPool,
    connect,
    perform,
    prepare,
)
from modelyard import Yard


@dataclass
class Report:
    """What the kill points of one path did."""

    path: str
    killed: int = 0
    finished: int = 0
    repairs: list[str] = field(default_factory=list)
    collected: int = 0  # items the collection after the kills freed


def run_crash_points(pool: WorkerPool, uri: str, project: Path, paths: tuple[str, ...] = PATHS,
                     *, points: int = 2, seed: int = 0) -> list[Report]:
    """Prepare the project, then ``points`` kill points per path; raises AssertionError on
    the first thing found half-done or written twice."""
    rng = random.Random(seed)
    with connect(uri, project) as yard:
        prepare(yard)
    reports = []
    for path in paths:
        report = Report(path)
        calibration = pool.run(uri, project, path, 900, f"{path}-calibration",
                               _arg(uri, project, path))
        assert not calibration.killed
        with connect(uri, project) as yard:
            check_whole(yard)
        for i in range(points):
            key = f"{path}-{seed}-{i}"
            arg = _arg(uri, project, path)
            with connect(uri, project) as yard:
                before = counts(yard, path, i)
            outcome = pool.run(uri, project, path, i, key, arg,
                               kill_after=calibration.seconds * rng.uniform(0.0, 1.1))
            report.killed += outcome.killed
            report.finished += not outcome.killed
            with connect(uri, project) as yard:  # opening repairs what the kill left
                report.repairs += [f"{r.kind}: {r.action}" for r in yard.repairs]
                check_whole(yard)
                check_after_kill(yard, path, i, before)
                perform(yard, path, i, key, arg)
                check_once(yard, path, i, key, before)
        with connect(uri, project) as yard:
            report.collected = check_collected(yard)
        reports.append(report)
    return reports


def check_collected(yard: Yard) -> int:
    """A garbage collection with no grace period after the kills: it removes what they left
    unreferenced (blobs, partial writes, unlisted table files) and nothing referenced, so
    that afterwards every referenced blob exists and verifies and a second collection finds
    nothing more. Returns how many items the first one freed."""
    from modelyard.backends.metadata.sql.blob_references import SqlBlobReferences

    artifacts = yard.tracking.artifacts
    # the references include every 64-hex string of the specs, some of which name no blob
    referenced = [sha for sha in SqlBlobReferences(yard._engine).referenced_blobs()
                  if artifacts.exists(sha)]
    freed = yard.gc(older_than=0)
    for sha in referenced:
        artifacts.get_bytes(sha)  # raises unless still present and whole
    check_whole(yard)
    again = yard.gc(older_than=0, dry_run=True)
    assert again.freed == [], f"left unreferenced after a collection: {again.freed}"
    return freed.count


def _arg(uri: str, project: Path, path: str) -> int:
    """The version a promotion moves production to: the one not holding it."""
    if path != "promote":
        return 0
    with connect(uri, project) as yard:
        return 2 if yard.models.aliases(MODEL).get("production") == 1 else 1


def counts(yard: Yard, path: str, i: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if path == "ingest":
        found["rows"] = yard.features.tables.read("events", columns=["customer_id"]).num_rows
    elif path == "log_model":
        found["versions"] = len(yard.models.versions(MODEL))
    elif path == "promote":
        found["events"] = len(yard.models.history(MODEL, "production"))
    elif path == "monitor":
        found["results"] = len(yard.monitoring.history(MODEL, limit=None))
    elif path == "forget":
        found["logged"] = len(yard.features.store.forget_log("customer"))
        found["present"] = _present(yard, i)
    return found


def check_after_kill(yard: Yard, path: str, i: int, before: dict[str, Any]) -> None:
    """Right after the open that followed a kill: the write is all there or not at all."""
    after = counts(yard, path, i)
    if path == "forget":  # logged and gone, or neither
        logged = after["logged"] - before["logged"]
        assert (logged, after["present"]) in ((0, before["present"]), (1, 0)), (before, after)
    elif path == "ingest":
        assert after["rows"] - before["rows"] in (0, BATCH_ROWS), (before, after)
    elif path == "log_model":
        assert after["versions"] - before["versions"] in (0, 1), (before, after)
    elif path == "promote":
        assert after["events"] - before["events"] in (0, 1), (before, after)


def _present(yard: Yard, i: int) -> int:
    import pyarrow.compute as pc

    table = yard.features.tables.read("events", columns=["customer_id"])
    return int(pc.sum(pc.is_in(table["customer_id"], value_set=_keys(i))).as_py() or 0)


def check_whole(yard: Yard) -> None:
    """Nothing half-visible: no dead writer's intent survives an open; every ingestion has
    its profile; every version's and artifact's blobs exist and verify; the alias points at
    a whole version, as its history says."""
    left = [i for i in yard.writes.list_intents() if not i.owner_alive()]
    assert left == [], f"intents of dead writers survived the open: {left}"
    features = yard.features
    for commit in features.commits("events"):
        if commit.operation == "ingest":
            assert features.store.get_profile("events", commit.commit_id) is not None, \
                f"commit {commit.commit_id} has no profile after open"
    artifacts = yard.tracking.artifacts
    for version in yard.models.versions(MODEL):
        artifacts.get_bytes(version.artifact_sha256)  # raises unless whole and verified
        for name in ("background_sha256", "reference_sha256"):
            if version.spec.get(name):
                artifacts.get_bytes(version.spec[name])
    holder = yard.models.aliases(MODEL).get("production")
    history = yard.models.history(MODEL, "production")
    assert holder is not None and history and history[-1].to_version == holder
    yard.models.get_version(MODEL, holder)
    for run in yard.tracking.find_runs("crash") if _has(yard, "crash") else []:
        for entry in yard.tracking.list_artifacts(run.info.run_id):
            artifacts.get_bytes(entry.sha256)


def check_once(yard: Yard, path: str, i: int, key: str, before: dict[str, Any]) -> None:
    """After the retry, the write happened exactly once."""
    check_whole(yard)
    after = counts(yard, path, i)
    if path == "ingest":
        assert after["rows"] == before["rows"] + BATCH_ROWS, (before, after)
        assert yard.writes.lookup(key) is not None
    elif path == "log_model":
        assert after["versions"] == before["versions"] + 1, (before, after)
    elif path == "promote":
        assert after["events"] == before["events"] + 1, (before, after)
    elif path == "log_artifact":
        found = yard.writes.lookup(key)
        assert found is not None
        run_id = found.result["run_id"]
        paths = [e.path for e in yard.tracking.list_artifacts(run_id)
                 if e.path.startswith(f"data-{i}/")]
        assert len(paths) == 3, paths
    elif path == "forget":
        assert after["present"] == 0 and after["logged"] > before["logged"], (before, after)
    elif path == "monitor":
        assert after["results"] in (before["results"] + 1, before["results"] + 2)
    elif path == "materialize":
        found = yard.online_features(["stats:amount"], {"customer_id": [5]})
        assert found.to_pandas()["amount"].notna().all()


def _keys(i: int) -> Any:
    import pyarrow as pa

    return pa.array([3 * i + 1, 3 * i + 2, 3 * i + 3], pa.int64())


def _has(yard: Yard, experiment: str) -> bool:
    return any(e.name == experiment for e in yard.list_experiments())
