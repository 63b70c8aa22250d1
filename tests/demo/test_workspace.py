"""The demo's calendar and its clean start: dates placed from today, folders cleared only when
the demo made them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from modelyard.demo.clock import DemoClock, parse_today
from modelyard.demo.workspace import MARKER, mark, outside_stores, prepare_folder
from modelyard.errors import InvalidInputError
from modelyard.settings import DATA_DIR, load_settings


def test_the_history_ends_at_the_start_of_todays_month() -> None:
    clock = DemoClock.for_today(date(2024, 2, 29))
    assert clock.pinned and clock.history_end == pd.Timestamp("2024-02-01", tz="UTC")
    assert clock.history_start(18) == pd.Timestamp("2022-08-01", tz="UTC")
    assert clock.now().date() == date(2024, 2, 29)  # the system's time of day, on that date


def test_the_default_today_is_the_systems_date() -> None:
    clock = DemoClock.for_today()
    assert not clock.pinned and clock.offset == timedelta(0)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize("text", ["2024-02-30", "yesterday", "", "1970-01-01"])
def test_a_bad_today_names_the_field(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        DemoClock.for_today(parse_today(text))
    assert caught.value.details["field"] == "today"


def _demo_folder(path: Path) -> None:
    (path / DATA_DIR / "artifacts").mkdir(parents=True)
    mark(path, {"seed": 1})
    (path / "modelyard.toml").write_text("[project]\n")
    (path / "data").mkdir()
    for name in ("policyholders", "claims"):
        (path / "data" / f"{name}.parquet").write_bytes(b"x")
    (path / "alerts.jsonl").write_text("{}\n")
    (path / "notes.md").write_text("mine")


def test_a_folder_the_demo_made_is_cleared_but_for_other_files(tmp_path: Path) -> None:
    _demo_folder(tmp_path)
    done = prepare_folder(tmp_path)
    assert done.cleared == [DATA_DIR, "data/policyholders.parquet", "data/claims.parquet",
                            "alerts.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "modelyard.toml",
                                                          "notes.md"]


def test_an_older_demo_folder_without_the_marker_is_known_by_its_data(tmp_path: Path) -> None:
    _demo_folder(tmp_path)
    (tmp_path / DATA_DIR / MARKER).unlink()
    assert DATA_DIR in prepare_folder(tmp_path).cleared


def test_new_empty_and_foreign_folders(tmp_path: Path) -> None:
    assert prepare_folder(tmp_path / "new").fresh
    assert prepare_folder(tmp_path).fresh
    (tmp_path / "modelyard.toml").write_text("[project]\n")
    with pytest.raises(InvalidInputError, match="did not make") as caught:
        prepare_folder(tmp_path)
    assert caught.value.details["field"] == "path"
    assert (tmp_path / "modelyard.toml").exists()


def test_stores_outside_the_folder_are_named_without_credentials(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, uri="postgresql://ann:secret@db.example/test",
                             online_uri="redis://127.0.0.1:6379/0")
    named = outside_stores(settings, tmp_path)
    assert named == ["uri postgresql://db.example/test", "online_uri redis://127.0.0.1:6379/0"]
    assert "secret" not in " ".join(named)
