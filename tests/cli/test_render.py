"""The small formatting helpers behind the CLI's tables."""

from __future__ import annotations

import pytest

from modelyard.cli.project import hide_password
from modelyard.cli.render import format_number, format_seconds, format_size
from modelyard.cli.runs import lower_is_better


@pytest.mark.parametrize(("seconds", "text"), [
    (0.0042, "4ms"), (0.85, "850ms"), (4.24, "4.2s"), (185, "3m 05s"), (8040, "2h 14m"),
    (273600, "3d 04h"),
])
def test_durations_read_like_people_write_them(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(("value", "text"), [
    (3.0, "3"), (0.93456, "0.9346"), (2.1, "2.1"), (12345.678, "12345.68"),
    (1.2e-5, "1.2e-05"), (-0.5, "-0.5"), (25_000_000.5, "2.5e+07"), (25_000_000.0, "25000000"),
    (None, "-"), (float("nan"), "-"),
])
def test_numbers_are_compact(value: float | None, text: str) -> None:
    assert format_number(value) == text


def test_sizes_use_binary_units() -> None:
    assert [format_size(n) for n in (5, 2048, 3 * 1024**3)] == ["5 B", "2.0 KiB", "3.0 GiB"]


@pytest.mark.parametrize(("metric", "lower"), [
    ("loss", True), ("val_loss", True), ("rmse", True), ("mean_absolute_error", True),
    ("fit_time", True), ("logloss", True), ("r2", False), ("accuracy", False),
    ("roc_auc", False), ("neg_mean_squared_error", False),
])
def test_metric_direction_is_guessed_from_the_name(metric: str, lower: bool) -> None:
    assert lower_is_better(metric) is lower


def test_passwords_are_hidden_in_uris() -> None:
    assert hide_password("postgresql://me:pa55@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert hide_password("sqlite:////tmp/a:b@c.db") == "sqlite:////tmp/a:b@c.db"
