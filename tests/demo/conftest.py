"""One small demo run, shared by the tests that read what it left behind."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from rich.console import Console

from modelyard.demo import (
    ClaimsData,
    DemoConfig,
    DemoResult,
    DemoState,
    Step,
    default_steps,
    generate,
    run_demo,
)

#: Today pinned so the claims run from 2024-01-01 to 2025-07-01, the dates the tests name.
SMALL = DemoConfig(customers=500, seed=9, today=date(2025, 7, 20))
#: The demo at its default size and seed, on the same calendar (its figures then hold on any
#: day the tests run).
FULL = DemoConfig(today=SMALL.today)


@dataclass(frozen=True)
class SmallDemo:
    result: DemoResult
    data: ClaimsData
    config: DemoConfig
    output: str
    state: DemoState  # as the last step left it


def keeping_state(seen: list[DemoState]) -> list[Step]:
    """The demo's steps and one more that keeps the state they leave in ``seen``."""
    return [*default_steps(), Step("keep", "Keeping the state", lambda s, p: seen.append(s),
                                   lambda s, c: None)]


@pytest.fixture(scope="package")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallDemo]:
    """The demo at 500 customers in its own project, with no MODELYARD_* from outside, on
    the calendar of :data:`SMALL`."""
    yield from _demo(tmp_path_factory, "small-demo", SMALL, width=80)  # as when piped


@pytest.fixture(scope="package")
def full_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallDemo]:
    """The demo at its default size (:data:`FULL`), for the slow tests of its figures."""
    yield from _demo(tmp_path_factory, "full-demo", FULL, width=160)


def _demo(tmp_path_factory: pytest.TempPathFactory, name: str, wanted: DemoConfig, *,
          width: int) -> Iterator[SmallDemo]:
    base = tmp_path_factory.mktemp(name)
    config = DemoConfig(path=base / "project", customers=wanted.customers, seed=wanted.seed,
                        today=wanted.today)
    console = Console(file=io.StringIO(), width=width)
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("MODELYARD_"):
                patch.delenv(key)
        patch.setenv("XDG_CONFIG_HOME", str(base / "xdg-config"))
        seen: list[DemoState] = []
        result = run_demo(config, console=console, steps=keeping_state(seen))
        output = console.file.getvalue()  # type: ignore[attr-defined]
        start = config.clock().history_start(config.months)
        yield SmallDemo(result, generate(config.customers, config.seed, start=start), config,
                        output, seen[0])
