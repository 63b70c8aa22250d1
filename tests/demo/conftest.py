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
    base = tmp_path_factory.mktemp("small-demo")
    config = DemoConfig(path=base / "project", customers=SMALL.customers, seed=SMALL.seed,
                        today=SMALL.today)
    console = Console(file=io.StringIO(), width=80)  # as when the output is piped
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
