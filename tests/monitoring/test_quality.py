"""Data quality of production inputs against the reference profile."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelyard.errors import InvalidInputError
from modelyard.monitoring import QualityOptions, ReferenceProfile, build_profile, check_quality

ROWS = 4_000


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.uniform(10.0, 90.0, rows)
    amount[rng.random(rows) < 0.02] = np.nan
    return pd.DataFrame({
        "amount": amount,
        "city": rng.choice(["paris", "lyon", "nice"], rows, p=[0.5, 0.3, 0.2]),
        "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 30, rows), "D"),
        "vip": rng.random(rows) < 0.1,
    })


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return build_profile(frame(ROWS, 0))


def test_data_like_the_reference_has_no_issue(profile: ReferenceProfile) -> None:
    report = check_quality(profile, frame(1_000, 1))
    assert report.ok and report.issues == ()
    amount = report["amount"]
    assert amount.reference_missing_share == pytest.approx(profile["amount"].nulls / ROWS)
    assert amount.missing == int(frame(1_000, 1)["amount"].isna().sum())


def test_more_missing_values_are_flagged(profile: ReferenceProfile) -> None:
    current = frame(1_000, 2)
    current.loc[:199, "amount"] = np.nan
    current.loc[:9, "city"] = None
    report = check_quality(profile, current)
    amount = report["amount"]
    assert amount.missing_share == pytest.approx(current["amount"].isna().mean())
    expected = f"of values are missing; the reference had {amount.reference_missing_share:.1%}"
    assert any(expected in i for i in amount.issues)
    assert report["city"].missing == 10
    assert report["city"].issues == ()  # 1% more, within tolerance and noise


def test_out_of_range_values_are_counted_and_flagged(profile: ReferenceProfile) -> None:
    current = frame(1_000, 3)
    current.loc[:29, "amount"] = 150.0
    current.loc[30:39, "amount"] = -5.0
    row = check_quality(profile, current)["amount"]
    low, high = profile["amount"].min, profile["amount"].max
    assert (row.below_min, row.above_max) == (
        int((current["amount"] < low).sum()), int((current["amount"] > high).sum()))
    assert row.below_min >= 10 and row.above_max >= 30
    present = int(current["amount"].notna().sum())
    assert row.out_of_range_share == pytest.approx((row.below_min + row.above_max) / present)
    assert any("outside the reference's range" in i for i in row.issues)
    lenient = check_quality(profile, current, QualityOptions(out_of_range_tolerance=0.1))
    assert lenient["amount"].issues == ()


def test_timestamps_out_of_range(profile: ReferenceProfile) -> None:
    current = frame(500, 4)
    current["when"] = current["when"] + pd.Timedelta(days=60)
    row = check_quality(profile, current)["when"]
    assert row.above_max == 500 and row.out_of_range_share == 1.0


def test_unseen_categories_with_examples(profile: ReferenceProfile) -> None:
    current = frame(1_000, 5)
    current.loc[:49, "city"] = "lille"
    current.loc[50:54, "city"] = "brest"
    row = check_quality(profile, current)["city"]
    assert row.unseen == 55 and row.unseen_share == pytest.approx(0.055)
    assert row.unseen_examples == ("lille", "brest") and row.unseen_conclusive
    assert row.issues == ("5.5% of values are in 2 categories the reference never had "
                          "(e.g. 'lille', 'brest')",)


def test_unseen_is_not_conclusive_when_the_profile_kept_only_the_top(
        profile: ReferenceProfile) -> None:
    short = build_profile(frame(ROWS, 0), top_k=2)
    current = frame(1_000, 6)
    row = check_quality(short, current)["city"]
    assert not row.unseen_conclusive and row.unseen_examples == ("nice",)
    assert "most frequent categories" in row.issues[0]


def test_type_mismatch_names_unreadable_values(profile: ReferenceProfile) -> None:
    current = frame(100, 7)
    current["amount"] = current["amount"].astype(object)
    current.loc[:2, "amount"] = "n/a"
    current["vip"] = current["vip"].astype(int)
    report = check_quality(profile, current)
    amount = report["amount"]
    assert amount.type_mismatch is not None
    assert "expected numeric values" in amount.type_mismatch
    assert "3 value(s) cannot be read as numeric (e.g. 'n/a', 'n/a', 'n/a')" in (
        amount.type_mismatch)
    assert "expected boolean values" in (report["vip"].type_mismatch or "")
    assert not report.ok


def test_schema_changes(profile: ReferenceProfile) -> None:
    current = frame(100, 8).drop(columns=["vip"]).assign(channel="web")
    report = check_quality(profile, current)
    assert report.missing_columns == ("vip",) and report.extra_columns == ("channel",)
    assert "column 'vip' is missing (the reference has it)" in report.issues
    assert "column 'channel' is new (the reference does not have it)" in report.issues


def test_infinite_and_all_null_columns(profile: ReferenceProfile) -> None:
    current = frame(100, 9)
    current.loc[:4, "amount"] = np.inf
    current["city"] = None
    report = check_quality(profile, current)
    assert report["amount"].infinite == 5
    assert any("5 infinite value(s)" in i for i in report["amount"].issues)
    assert report["city"].issues == ("every value is missing",)


def test_bad_inputs(profile: ReferenceProfile) -> None:
    with pytest.raises(InvalidInputError, match="no rows"):
        check_quality(profile, frame(0, 1))
    with pytest.raises(InvalidInputError, match="missing_tolerance must be a share"):
        QualityOptions(missing_tolerance=2)


def test_report_is_json_safe(profile: ReferenceProfile) -> None:
    current = frame(200, 10)
    current.loc[:9, "city"] = "lille"
    data = json.loads(json.dumps(check_quality(profile, current).to_dict(), allow_nan=False))
    assert not data["ok"] and data["issues"][0].startswith("city: ")
    assert data["columns"][1]["unseen_examples"] == ["lille"]


def test_integer_categories_survive_missing_values_in_production() -> None:
    reference = pd.DataFrame({"store": np.tile([101, 102, 103], 200)})
    profile = build_profile(reference, kinds={"store": "categorical"})
    current = pd.DataFrame({"store": [101.0, 102.0, np.nan, 103.0] * 50})  # ints became floats
    row = check_quality(profile, current)["store"]
    assert row.unseen == 0 and row.type_mismatch is None


def test_unused_pandas_categories_are_not_unseen(profile: ReferenceProfile) -> None:
    current = frame(300, 11)
    current["city"] = pd.Categorical(current["city"], categories=["paris", "lyon", "nice",
                                                                  "lille"])
    row = check_quality(profile, current)["city"]
    assert row.unseen == 0 and row.issues == ()


def test_a_timestamp_range_is_reported_as_times() -> None:
    days = pd.date_range("2025-01-01", periods=200, freq="D", tz="UTC")
    profile = build_profile(pd.DataFrame({"when": days}))
    later = pd.DataFrame({"when": days + pd.Timedelta(days=400)})
    [issue] = check_quality(profile, later)["when"].issues
    assert "[2025-01-01T00:00:00+00:00, 2025-07-19T00:00:00+00:00]" in issue
