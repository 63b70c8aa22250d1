"""The generated claims: promised columns and types, UTC period, the drift, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from modelyard.demo.data import (
    CLAIM_COLUMNS,
    CLAIM_TYPES,
    PERIOD_START,
    POLICYHOLDER_COLUMNS,
    REGIONS,
    SEVERITIES,
    ClaimsData,
    generate,
    hidden_risk,
)
from modelyard.demo.files import fingerprint, sha256_file, write_table


@pytest.fixture(scope="module")
def small() -> ClaimsData:
    return generate(customers=800, seed=3)


def test_policyholders_have_the_promised_columns_and_types(small: ClaimsData) -> None:
    people = small.policyholders
    assert tuple(people.columns) == POLICYHOLDER_COLUMNS
    assert len(people) == 800
    assert people["customer_id"].is_unique
    for col in ("customer_id", "age", "vehicle_age", "annual_mileage_km",
                "policy_tenure_years"):
        assert people[col].dtype == np.int64, col
    assert people["vehicle_value"].dtype == np.float64
    for col in ("gender", "region", "vehicle_type", "credit_band"):
        assert pd.api.types.is_string_dtype(people[col]), col
    assert set(people["gender"]) == {"female", "male"}
    assert set(people["region"]) <= set(REGIONS)
    assert people["age"].between(18, 85).all()
    assert (people["policy_tenure_years"] <= people["age"] - 18).all()
    assert (people["vehicle_value"] > 0).all()
    assert str(people["policy_start"].dt.tz) == "UTC"
    assert (people["policy_start"] <= PERIOD_START).all()


def test_claims_have_the_promised_columns_and_types(small: ClaimsData) -> None:
    claims = small.claims
    assert tuple(claims.columns) == CLAIM_COLUMNS
    assert claims["claim_id"].is_unique
    assert set(claims["customer_id"]) <= set(small.policyholders["customer_id"])
    assert isinstance(claims["event_time"].dtype, pd.DatetimeTZDtype)
    assert str(claims["event_time"].dt.tz) == "UTC"
    assert claims["event_time"].is_monotonic_increasing
    assert claims["police_report"].dtype == bool
    assert set(claims["claim_type"]) == set(CLAIM_TYPES)
    assert set(claims["incident_severity"]) <= set(SEVERITIES)
    assert claims["claim_value"].dtype == np.float64
    assert (claims["claim_value"] > 0).all()
    assert (claims["days_to_report"] >= 0).all()
    assert (claims["vehicles_involved"] >= 1).all()
    assert 2.5 < len(claims) / len(small.policyholders) < 5.5


def test_claims_span_eighteen_months_in_utc(small: ClaimsData) -> None:
    times = small.claims["event_time"]
    assert small.start == pd.Timestamp("2024-01-01", tz="UTC")
    assert small.end == pd.Timestamp("2025-07-01", tz="UTC")
    assert times.min() >= small.start and times.max() < small.end
    assert times.min() < small.start + pd.Timedelta(days=7)
    assert times.max() > small.end - pd.Timedelta(days=7)
    months = times.dt.tz_localize(None).dt.to_period("M").nunique()
    assert months == 18


def test_value_depends_on_the_claim(small: ClaimsData) -> None:
    by_severity = small.claims.groupby("incident_severity")["claim_value"].median()
    assert by_severity["minor"] < by_severity["moderate"] < by_severity["major"]
    by_type = small.claims.groupby("claim_type")["claim_value"].median()
    assert by_type["glass"] < by_type["collision"] < by_type["theft"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_last_months_drift(seed: int) -> None:
    data = generate(customers=4000, seed=seed)
    claims = data.claims
    early = claims[claims["event_time"] < data.start + pd.DateOffset(months=12)]
    late = claims[claims["event_time"] >= data.end - pd.DateOffset(months=3)]
    assert late["claim_value"].mean() > 1.08 * early["claim_value"].mean()
    assert late["claim_value"].median() > 1.15 * early["claim_value"].median()
    share = {name: frame["claim_type"].value_counts(normalize=True)
             for name, frame in (("early", early), ("late", late))}
    assert share["late"]["weather"] > 1.4 * share["early"]["weather"]
    assert share["late"]["glass"] < share["early"]["glass"]
    assert len(late) / 3 > 1.2 * len(early) / 12  # more claims a month
    south = {name: (frame["customer_id"].map(
        data.policyholders.set_index("customer_id")["region"]) == "south").mean()
        for name, frame in (("early", early), ("late", late))}
    assert south["late"] > south["early"]


def test_a_hidden_riskiness_shows_only_through_the_claims() -> None:
    data = generate(customers=3000, seed=4)
    risk = pd.Series(np.log(hidden_risk(3000, seed=4)),
                     index=data.policyholders["customer_id"])
    per_customer = data.claims.groupby("customer_id").agg(
        claims=("claim_id", "size"), value=("claim_value", "median"))
    claims = per_customer["claims"].reindex(risk.index, fill_value=0)
    assert np.corrcoef(risk, claims)[0, 1] > 0.3  # risky drivers claim more often
    value = np.log(per_customer["value"])
    assert np.corrcoef(risk.loc[value.index], value)[0, 1] > 0.2  # and their claims cost more
    assert np.allclose(hidden_risk(3000, seed=4), np.exp(risk.to_numpy()))  # deterministic


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = generate(500, seed=11), generate(500, seed=11), generate(500, seed=12)
    pdt.assert_frame_equal(a.policyholders, b.policyholders)
    pdt.assert_frame_equal(a.claims, b.claims)
    assert not a.claims["claim_value"].head(50).equals(c.claims["claim_value"].head(50))


def test_parquet_files_round_trip_with_a_stable_fingerprint(small: ClaimsData,
                                                            tmp_path: Path) -> None:
    first = [write_table(small.policyholders, tmp_path / "a", "policyholders"),
             write_table(small.claims, tmp_path / "a", "claims")]
    again = [write_table(generate(800, seed=3).claims, tmp_path / "b", "claims")]
    assert first[1].sha256 == again[0].sha256 == sha256_file(tmp_path / "a" / "claims.parquet")
    assert first[1].rows == len(small.claims)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "claims.parquet", "policyholders.parquet"]  # no partial file left behind
    back = pd.read_parquet(first[1].path)
    pdt.assert_frame_equal(back, small.claims, check_dtype=False)
    assert str(back["event_time"].dt.tz) == "UTC"
    version = fingerprint(first)
    assert len(version) == 64 and version == fingerprint(list(reversed(first)))
    assert version != fingerprint([first[0]])
