"""Many real processes writing to one project at once, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from _workers import procs, track

import modelyard
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.migrations import HEAD, SCHEMA_REVISIONS, VERSION_TABLE

WORKERS = 8

pytestmark = pytest.mark.slow


def _args(command: str, project: Path, uri: str | None, *extra: str) -> list[str]:
    return [command, "--project", str(project), *(["--uri", uri] if uri else []), *extra]


def _all_ok(results: list[procs.Result]) -> None:
    for i, r in enumerate(results):
        assert r.returncode == 0, f"worker {i} failed:\n{r.stderr}"
        assert r.stderr == "", f"worker {i} reported problems:\n{r.stderr}"


def test_eight_processes_log_everything_and_lose_nothing(
    store_uri: str, project: Path, tmp_path: Path
) -> None:
    with modelyard.connect(store_uri) as yard:  # the project exists before the workers start
        yard.list_experiments()
    results = procs.run_together(
        [_args("log", project, store_uri, "--worker", str(i)) for i in range(WORKERS)],
        cwd=project, barrier=tmp_path / "barrier",
    )
    _all_ok(results)
    run_ids = {r.payload()["run_id"]: i for i, r in enumerate(results)}

    with modelyard.connect(store_uri) as yard:
        assert [e.name for e in yard.list_experiments()] == ["shared"]
        records = yard.tracking.find_runs("shared")
        assert {r.info.run_id for r in records} == set(run_ids)
        per_call_keys = 2 + track.BATCH_KEYS  # loss, acc, m0..m9
        for rec in records:
            i = run_ids[rec.info.run_id]
            assert rec.info.status == "finished"
            assert rec.info.name == f"worker-{i}"
            assert rec.params == {"worker": str(i), "lr": str(0.01 * (i + 1)),
                                  "layers": json.dumps([i, i + 1])}
            assert rec.tags["worker"] == str(i)
            assert rec.tags["phase"] == "train"
            assert rec.tags["modelyard.note"] == f"note of worker {i}"

            loss = yard.tracking.store.metric_history(rec.info.run_id, "loss")
            assert [p.step for p in loss] == list(range(track.PER_CALL))
            assert [p.value for p in loss] == [i + 1 / (s + 1) for s in range(track.PER_CALL)]
            acc = yard.tracking.store.metric_history(rec.info.run_id, "acc")
            assert sorted(p.step for p in acc) == list(range(track.REVERSED))
            for k in range(track.BATCH_KEYS):
                hist = yard.tracking.store.metric_history(rec.info.run_id, f"m{k}")
                assert [(p.step, p.value) for p in hist] == [
                    (s, float(i * 1000 + s * 10 + k)) for s in range(track.BATCHES)
                ]

            assert len(rec.metrics) == per_call_keys
            last = track.PER_CALL - 1
            assert (rec.metrics["loss"].step, rec.metrics["loss"].value) == (
                last, i + 1 / (last + 1))
            top = track.REVERSED - 1  # logged first, still the latest by step
            assert (rec.metrics["acc"].step, rec.metrics["acc"].value) == (
                top, top / track.REVERSED + i)
            assert rec.metrics["m3"].step == track.BATCHES - 1

            paths = {a.path for a in yard.tracking.list_artifacts(rec.info.run_id)}
            assert {"model/weights.bin", "config.json", "notes/hello.txt",
                    "modelyard/requirements.txt"} <= paths
            assert yard.tracking.read_artifact(rec.info.run_id, "model/weights.bin") == (
                bytes([i]) * 50_000)
            assert json.loads(yard.tracking.read_artifact(rec.info.run_id, "config.json")) == (
                track.SHARED_CONFIG)
            assert yard.tracking.read_artifact(rec.info.run_id, "notes/hello.txt") == (
                f"worker {i} was here".encode())

        # Raw row counts: no point lost, none written twice.
        expected = track.PER_CALL + track.REVERSED + track.BATCHES * track.BATCH_KEYS
        with yard.tracking.store.engine.connect() as conn:
            counts = dict(conn.execute(
                sa.select(t.metrics.c.run_id, sa.func.count()).group_by(t.metrics.c.run_id)
            ).all())
            latest = conn.execute(sa.select(sa.func.count()).select_from(t.latest_metrics))
            assert latest.scalar_one() == WORKERS * per_call_keys
        assert counts == dict.fromkeys(run_ids, expected)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str | None]:
    """A brand-new project folder (SQLite, no database file yet) or an empty PostgreSQL db."""
    root = modelyard.init_project(tmp_path / "fresh", "fresh")
    if request.param == "sqlite":
        assert not (root / ".modelyard" / "modelyard.db").exists()
        return root, None
    return root, str(request.getfixturevalue("pg_uri"))


def test_eight_processes_open_a_brand_new_store_and_migrate_it_once(
    fresh_store: tuple[Path, str | None], tmp_path: Path
) -> None:
    root, uri = fresh_store
    if uri is not None:
        engine = sa.create_engine(uri.replace("postgresql://", "postgresql+psycopg://"),
                                  poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []  # really empty
        engine.dispose()
    results = procs.run_together(
        [_args("open", root, uri) for _ in range(WORKERS)],
        cwd=root, barrier=tmp_path / "barrier",
    )
    _all_ok(results)
    # one process ran every migration step, once each; the others found the schema at HEAD
    steps = [r.payload()["upgrades"] for r in results]
    assert sorted(steps) == [0] * (len(steps) - 1) + [len(SCHEMA_REVISIONS)]

    with modelyard.connect(uri, project=root) as yard:
        with yard.tracking.store.engine.connect() as conn:
            versions = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
        assert versions == [(HEAD,)]
        records = yard.tracking.find_runs("opened")
        assert {r.info.run_id for r in records} == {r.payload()["run_id"] for r in results}
        assert all(r.info.status == "finished" and r.metrics["x"].value == 1.0
                   for r in records)


def test_two_processes_racing_on_one_param_key_one_wins(
    store_uri: str, project: Path, tmp_path: Path
) -> None:
    keys = 20
    with modelyard.connect(store_uri, capture_packages=False, capture_git=False) as yard:
        with yard.start_run("params", name="contested") as run:
            results = procs.run_together(
                [_args("param", project, store_uri, "--run-id", run.run_id,
                       "--worker", str(w), "--keys", str(keys)) for w in (0, 1)],
                cwd=project, barrier=tmp_path / "barrier",
            )
            _all_ok(results)
        outcomes = [r.payload()["outcome"] for r in results]
        stored = yard.get_run(run.run_id).params
    assert stored["same"] == "agreed"  # the same value from both is no conflict
    for k in range(keys):
        key = f"p{k}"
        won = [w for w in (0, 1) if outcomes[w][key] == "ok"]
        lost = [w for w in (0, 1) if outcomes[w][key] != "ok"]
        assert len(won) == 1, f"{key}: {outcomes[0][key]!r} / {outcomes[1][key]!r}"
        assert stored[key] == f"from-{won[0]}"
        message = outcomes[lost[0]][key]
        assert message.startswith("conflict: ")
        assert f"'{key}'" in message and f"'from-{won[0]}'" in message
        assert f"'from-{lost[0]}'" in message
