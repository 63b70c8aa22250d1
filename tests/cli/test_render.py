"""The small formatting helpers behind the CLI's tables."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from rich.console import Console
from rich.table import Table

from modelyard.cli.project import hide_password
from modelyard.cli.render import (
    fits,
    format_number,
    format_seconds,
    format_size,
    format_value,
    listing,
    show,
)
from modelyard.cli.runs import lower_is_better


@pytest.mark.parametrize(("seconds", "text"), [
    (0.0042, "4ms"), (0.85, "850ms"), (4.24, "4.2s"), (185, "3m 05s"), (8040, "2h 14m"),
    (273600, "3d 04h"),
])
def test_durations_read_like_people_write_them(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(("value", "text"), [
    (3.0, "3"), (0.93456, "0.9346"), (2.1, "2.1"), (12345.678, "12346"), (919.6321, "919.6"),
    (10248.444999999998, "10248"), (0.1 + 0.2, "0.3"), (0.0012345, "0.001234"),
    (1.2e-5, "1.2e-05"), (-0.5, "-0.5"), (25_000_000.5, "25000000"), (25_000_000.0, "25000000"),
    (2e16 + 0.5, "2e+16"), (None, "-"), (float("nan"), "-"), (float("inf"), "inf"),
])
def test_numbers_are_rounded_to_significant_digits(value: float | None, text: str) -> None:
    assert format_number(value) == text


def test_more_digits_on_request_and_values_of_any_type() -> None:
    assert format_number(10248.444999999998, digits=7) == "10248.44"
    assert format_number(0.6895342197943448, digits=6) == "0.689534"
    assert [format_value(v) for v in (None, True, 7392, 2.50, "a b")] == [
        "-", "true", "7392", "2.5", "a b"]
    moment = datetime(2025, 1, 31, 12, 0, 5, 123456, tzinfo=UTC)
    assert format_value(moment) == "2025-01-31 12:00:05"


def _printed(table: Table, width: int) -> list[str]:
    out = Console(width=width, file=io.StringIO(), color_system=None)
    show(table, out)
    return [line.rstrip() for line in out.file.getvalue().splitlines()]  # type: ignore[attr-defined]


def _wide_table() -> Table:
    table = listing("Online values", ["customer_id", "amount_90d_sum", "amount_365d_mean",
                                      "claim_type", "police_report", "status"],
                    right=("amount_90d_sum", "amount_365d_mean"))
    table.add_row("7392", "10248.44", "919.6", "collision", "1", "found")
    return table


def test_a_table_that_fits_is_printed_as_it_is() -> None:
    lines = _printed(_wide_table(), 120)
    assert lines[1].split() == ["customer_id", "amount_90d_sum", "amount_365d_mean",
                                "claim_type", "police_report", "status"]
    assert lines[3].split() == ["7392", "10248.44", "919.6", "collision", "1", "found"]


def test_a_table_too_wide_becomes_one_block_per_row_with_nothing_broken() -> None:
    lines = _printed(_wide_table(), 80)
    assert lines[0] == "Online values"
    pairs = [line.split() for line in lines[1:]]
    assert ["customer_id", "7392"] in pairs and ["amount_90d_sum", "10248.44"] in pairs
    assert ["amount_365d_mean", "919.6"] in pairs and ["status", "found"] in pairs
    assert all(len(line) <= 80 for line in lines)


def test_free_text_wraps_between_words_and_numbers_stay_whole() -> None:
    table = listing(None, ["gate", "measured", "bound", "detail"],
                    wrap=("gate", "detail"))
    table.add_row("fairness (age_band) on validation", "error_gap_mae = 640.3",
                  "error_gap_mae <= 450", "across age_band groups: error_gap_mae = 640.305 "
                  "exceeds 450, so the candidate is refused")
    lines = _printed(table, 80)
    text = "\n".join(lines)
    assert "error_gap_mae = 640.3" in text and "error_gap_mae <= 450" in text
    assert all(len(line) <= 80 for line in lines)
    words = {w for line in lines for w in line.split()}
    assert {"640.305", "fairness", "(age_band)", "validation", "refused"} <= words
    assert fits(table, Console(width=80)) and not fits(_wide_table(), Console(width=80))


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


def test_paths_fold_rather_than_push_a_table_into_blocks() -> None:
    table = listing("Settings", ["setting", "value", "from"], wrap=("value", "from"))
    table.add_row("serving.prediction_flush_interval", "0.5", "default")
    table.add_row("store.uri", "sqlite:////home/someone/projects/claims/.modelyard/modelyard.db",
                  "default (project folder)")
    lines = _printed(table, 80)
    assert lines[1].split() == ["setting", "value", "from"]  # still a table
    assert ["serving.prediction_flush_interval", "0.5", "default"] in [
        line.split() for line in lines]
