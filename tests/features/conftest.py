"""Fixtures of the online feature store tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard import (
    Yard,
)

from .online_support import (
    KEYS,
    connect,
    customer,
    day,
    event_rows,
    events,
    stats,
    table,
    totals,
)


@pytest.fixture
def oyard(project: Path, online_uri: str) -> Iterator[Yard]:
    """A project with ``stats`` and ``totals`` applied and 40 customers' events ingested;
    customer 99 has events only from day 20 on."""
    yard = connect(project, online_uri)
    yard.apply([customer, events, stats, totals])
    yard.ingest(events, event_rows(KEYS, 0, 16, 8, seed=1))
    yard.ingest(events, event_rows([99], 20, 22, 3, seed=2))
    try:
        yield yard
    finally:
        yard.close()


@pytest.fixture
def ttl_yard(project: Path, online_uri: str) -> Iterator[Yard]:
    """Customer 1 with events on days 0 and 2 (ttl 5d), materialized as of day 3."""
    yard = connect(project, online_uri)
    yard.apply([stats])
    yard.ingest(events, table([(1, day(0), 10.0, "glass", day(0).date()),
                               (1, day(2), 20.0, "fire", day(2).date())]))
    yard.materialize("stats", at=day(3))
    try:
        yield yard
    finally:
        yard.close()
