"""A fleet of model servers: each reports what it serves (heartbeats in the metadata store),
answers with the version in a header, and a promotion can wait until all serve it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelyard import Yard
from modelyard.backends.metadata.replicas import ReplicaRecord, ServedSlot
from modelyard.cli.app import app
from modelyard.serving.fleet import live_replicas, wait_for_version

from .conftest import open_client
from .support import MODEL, NUMERIC, linear, register, setup

Make = Callable[..., Any]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _record(replica_id: str, beat_ms: int, version: int | None = 1,
            reference: str = f"{MODEL}@production") -> ReplicaRecord:
    return ReplicaRecord(replica_id, "node-a", 4242, "http://node-a:8000", beat_ms - 10_000,
                         beat_ms, (ServedSlot(MODEL, "primary", reference, version),))


def test_the_replica_list_keeps_one_record_per_server_and_forgets_the_silent(
        yard: Yard) -> None:
    store = yard.replicas
    now = _now_ms()
    store.beat(_record("a" * 32, now, version=None))
    store.beat(_record("a" * 32, now + 5, version=3))  # the same replica, later
    store.beat(_record("b" * 32, now - 60_000))  # silent for a minute
    assert [r.replica_id for r in store.replicas()] == ["b" * 32, "a" * 32]
    [alive] = live_replicas(store)
    assert alive.replica_id == "a" * 32 and alive.version_of(MODEL) == 3
    assert alive.follows(MODEL, f"{MODEL}@production")
    assert not alive.follows(MODEL, f"{MODEL}@staging")
    assert store.prune(now - 30_000) == 1
    store.retire("a" * 32)
    store.retire("unknown")
    assert store.replicas() == []


@pytest.fixture
def served(yard: Yard, make_server: Make) -> tuple[Yard, Any, Any]:
    training = setup(yard, materialize=False)
    register(yard, linear(training), training, features=NUMERIC)
    register(yard, linear(training, scale=2.0), training, features=NUMERIC, alias=None)
    server, _ = make_server(yard, poll_interval=0.1, replicas=yard.replicas,
                            address="http://127.0.0.1:8000", heartbeat=0.2)
    return yard, server, training


def test_a_server_reports_what_it_serves_and_leaves_the_list_when_it_stops(
        served: tuple[Yard, Any, Any]) -> None:
    yard, server, _ = served
    server.start()
    [record] = live_replicas(yard.replicas)
    assert record.address == "http://127.0.0.1:8000"
    assert record.serving == (ServedSlot(MODEL, "primary", f"{MODEL}@production", 1),)

    yard.models.promote(MODEL, 2, "production", reason="test")
    rollout = wait_for_version(yard.replicas, MODEL, "production", 2, timeout=20)
    assert rollout.done and [r.replica_id for r in rollout.replicas] == [record.replica_id]
    assert server.deployment(MODEL).primary.current.version == 2

    server.close()
    assert yard.replicas.replicas() == []


def test_every_answer_names_the_version_that_gave_it(served: tuple[Yard, Any, Any]) -> None:
    from modelyard.server.app import create_app

    yard, server, _ = served
    with open_client(create_app(yard, models=server)) as http:
        v1 = http.post(f"/v1/models/{MODEL}/predict",
                       json={"instances": [{"age": 30, "vehicle_value": 9000.0}]})
        assert v1.status_code == 200 and v1.headers["Modelyard-Model-Version"] == "1"
        explained = http.post(f"/v1/models/{MODEL}/explain",
                              json={"instances": [{"age": 30, "vehicle_value": 9000.0}]})
        assert explained.headers["Modelyard-Model-Version"] == "1"
        v2 = http.post(f"/v2/models/{MODEL}/infer", json={"inputs": [
            {"name": "age", "shape": [1], "datatype": "FP64", "data": [30.0]},
            {"name": "vehicle_value", "shape": [1], "datatype": "FP64", "data": [9000.0]}]})
        assert v2.status_code == 200, v2.text
        assert v2.headers["Modelyard-Model-Version"] == "1"
        # the server is in the replica list while it runs
        assert [s.version for r in live_replicas(yard.replicas) for s in r.serving] == [1]


def test_promote_and_rollback_wait_for_the_fleet_from_the_cli(
        served: tuple[Yard, Any, Any], store_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelyard.cli import render

    monkeypatch.setattr(render.console, "_width", 200)
    _, server, _ = served
    server.start()
    runner = CliRunner()
    listed = runner.invoke(app, ["deployments", "--uri", store_uri])
    assert listed.exit_code == 0, listed.output
    assert f"{MODEL}@production" in listed.output and "http://127.0.0.1:8000" in listed.output

    moved = runner.invoke(app, ["models", "promote", f"{MODEL}:2", "--wait", "20",
                                "--uri", store_uri])
    assert moved.exit_code == 0, moved.output
    assert "1 model server serves version 2" in moved.output
    back = runner.invoke(app, ["models", "rollback", MODEL, "--wait", "20", "--uri", store_uri])
    assert back.exit_code == 0, back.output
    assert "1 model server serves version 1" in back.output
    assert server.deployment(MODEL).primary.current.version == 1


def test_a_server_that_does_not_follow_in_time_fails_the_wait(
        served: tuple[Yard, Any, Any], store_uri: str) -> None:
    yard, _, _ = served  # loaded, not started: it does not report itself
    stuck = _record("c" * 32, _now_ms() + 60_000)  # beats, and keeps serving version 1
    yard.replicas.beat(stuck)
    result = CliRunner().invoke(app, ["models", "promote", f"{MODEL}:2", "--wait", "0.5",
                                      "--uri", store_uri])
    assert result.exit_code == 1
    assert "node-a pid 4242" in result.output and "still serves version 1" in result.output
    assert "1 of 1" in result.output
    alone = CliRunner().invoke(app, ["models", "promote", f"{MODEL}:2", "--alias", "staging",
                                     "--wait", "1", "--uri", store_uri])
    assert alone.exit_code == 0 and "No running model server follows" in alone.output


def test_no_server_running_is_said_plainly(project: Path, store_uri: str) -> None:
    result = CliRunner().invoke(app, ["deployments", "--uri", store_uri])
    assert result.exit_code == 0
    assert "No model server is running" in result.output
