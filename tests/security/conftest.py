"""Fixtures of the security tests: the service on each backend, with a clock to move."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from modelyard import Yard
from modelyard.security import Principal, SecurityService

T0 = 1_800_000_000.0  # seconds


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def security(yard: Yard, clock: Clock) -> Iterator[SecurityService]:
    """The yard's security service on each backend, on a clock the test moves."""
    real = yard.security
    yield SecurityService(real.identities, real.audit, "claims", pii_key=real._pii_key,
                          clock=clock)


@pytest.fixture
def local() -> Principal:
    return Principal.local()
