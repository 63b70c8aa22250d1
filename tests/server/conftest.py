"""Fixtures for the server tests: a project with materialized features, and a test client."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest

import modelyard
from modelyard import Entity, Feature, FeatureGroup, Source, Yard

if TYPE_CHECKING:
    from starlette.testclient import TestClient

# Events a few days old, so that looking up "now" is within the group's 10-day TTL.
T0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
MATERIALIZED_AT = T0 + timedelta(days=2)
ONLINE = "/v1/features/online"

customer = Entity("customer", "customer_id")
events = Source.frame("events", timestamp="ts")
stats = FeatureGroup("stats", entity=customer, source=events, ttl="10d", features=[
    Feature("amount", "amount"),
    Feature("city", "city"),
    Feature("seen", "ts"),
    Feature("amount_sum_7d", "sum(amount)", window="7d"),
])


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def events_table() -> pa.Table:
    """Customer 1: two events, the last one's amount NaN; customer 2: one event."""
    return pa.table({
        "customer_id": pa.array([1, 1, 2], pa.int64()),
        "ts": pa.array([day(0), day(1), day(0.5)], pa.timestamp("us", tz="UTC")),
        "amount": pa.array([1.5, float("nan"), 3.0], pa.float64()),
        "city": pa.array(["Oslo", "Oslo", "Lyon"], pa.string()),
    })


def feature_yard(project: Path, online_uri: str, *, materialize: bool = True) -> Yard:
    """A Yard on ``project`` with the stats group applied, ingested and materialized."""
    yard = modelyard.connect(project=project, online_uri=online_uri, capture_git=False,
                             capture_packages=False)
    yard.apply([customer, events, stats])
    yard.ingest(events, events_table())
    if materialize:
        yard.materialize(at=MATERIALIZED_AT)
    return yard


@pytest.fixture
def served_yard(project: Path, online_uri: str) -> Iterator[Yard]:
    """A Yard on each online store (SQLite, Redis) with materialized features."""
    yard = feature_yard(project, online_uri)
    try:
        yield yard
    finally:
        yard.close()


def open_client(app: Any) -> TestClient:
    """A TestClient over ``app`` (httpx and its successor httpx2 both do)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`",
                                category=UserWarning)
        from starlette.testclient import TestClient

    return TestClient(app)


@pytest.fixture
def make_client() -> Iterator[Callable[[Yard], TestClient]]:
    """Build the app over a Yard and a client for it (closed afterwards)."""
    from modelyard.server.app import create_app

    clients: list[TestClient] = []

    def make(yard: Yard) -> TestClient:
        client = open_client(create_app(yard))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(served_yard: Yard, make_client: Callable[[Yard], TestClient]) -> TestClient:
    return make_client(served_yard)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
