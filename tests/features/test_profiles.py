"""Profiles against pandas/NumPy on random data; expectations and report flags on built data."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelyard.errors import InvalidInputError
from modelyard.features.expectations import Expectation, check_expectations
from modelyard.features.profiles import (
    HISTOGRAM_BINS,
    QUANTILES,
    TOP_VALUES,
    Profile,
    ProfileReport,
    profile,
    report,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture
def random_table() -> pa.Table:
    rng = np.random.default_rng(7)
    n = 5_000
    amount = rng.lognormal(3.0, 1.0, n)
    amount[rng.random(n) < 0.05] = np.nan
    visits = rng.poisson(4, n).astype(np.int64)
    tier = rng.choice([f"t{i}" for i in range(30)], n, p=np.arange(30, 0, -1) / 465)
    mask = rng.random(n) < 0.1
    return pa.table({
        "amount": amount,
        "visits": pa.array(visits, mask=rng.random(n) < 0.02),
        "tier": pa.array(tier, mask=mask),
        "active": rng.random(n) < 0.3,
        "seen": pa.array([T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 10**5, n)],
                         pa.timestamp("us", tz="UTC")),
        "day": pa.array([date(2024, 1, 1) + timedelta(days=int(d))
                         for d in rng.integers(0, 365, n)]),
    }, schema=None)


def test_numeric_profiles_match_pandas(random_table: pa.Table) -> None:
    frame = random_table.to_pandas()
    summary = profile(random_table)
    assert summary.rows == len(frame)
    for name in ("amount", "visits"):
        col = summary[name]
        series = frame[name].astype(float)
        assert col.kind == "numeric"
        assert col.count == series.count() and col.nulls == series.isna().sum()
        assert col.distinct == series.nunique()
        assert col.min == pytest.approx(series.min()) and col.max == pytest.approx(series.max())
        assert col.mean == pytest.approx(series.mean(), rel=1e-12)
        assert col.std == pytest.approx(series.std(), rel=1e-9)  # sample std, as pandas
        expected_q = np.nanpercentile(series.to_numpy(), [q * 100 for q in QUANTILES.values()])
        assert col.quantiles is not None
        assert list(col.quantiles) == list(QUANTILES)
        assert list(col.quantiles.values()) == pytest.approx(list(expected_q), rel=1e-12)
        counts, edges = np.histogram(series.dropna().to_numpy(), bins=HISTOGRAM_BINS)
        assert col.histogram is not None
        assert list(col.histogram.counts) == counts.tolist()
        assert list(col.histogram.edges) == pytest.approx(edges.tolist())
        assert sum(col.histogram.counts) == col.count


def test_text_bool_and_time_profiles_match_pandas(random_table: pa.Table) -> None:
    frame = random_table.to_pandas()
    summary = profile(random_table, ["tier", "active", "seen", "day"])
    assert list(summary.columns) == ["tier", "active", "seen", "day"]

    tier = summary["tier"]
    counts = frame["tier"].value_counts()
    assert tier.kind == "string"
    assert (tier.count, tier.nulls, tier.distinct) == (counts.sum(), frame["tier"].isna().sum(),
                                                        frame["tier"].nunique())
    assert tier.top_values is not None and len(tier.top_values) == TOP_VALUES
    assert dict(tier.top_values) == {k: counts[k] for k, _ in tier.top_values}
    assert [n for _, n in tier.top_values] == sorted(counts.to_numpy(), reverse=True)[:20]
    assert tier.other_values == counts.sum() - sum(n for _, n in tier.top_values)
    assert (tier.min, tier.max) == (frame["tier"].min(), frame["tier"].max())

    active = summary["active"]
    assert active.kind == "bool" and active.mean == pytest.approx(frame["active"].mean())
    assert dict(active.top_values or ()) == frame["active"].value_counts().to_dict()

    seen = summary["seen"]
    assert seen.kind == "temporal"
    assert seen.min == frame["seen"].min().isoformat()
    assert seen.max == frame["seen"].max().isoformat()
    assert summary["day"].min == min(frame["day"]).isoformat()


def test_a_profile_round_trips_through_json(random_table: pa.Table) -> None:
    summary = profile(random_table)
    text = summary.to_json()
    json.loads(text)  # strict JSON: no NaN
    assert Profile.from_json(text) == summary
    assert Profile.from_dict(json.loads(json.dumps(summary.to_dict()))) == summary


def test_empty_nan_and_infinite_columns() -> None:
    table = pa.table({"none": pa.array([None, None], pa.float64()),
                      "odd": [np.nan, np.inf], "one": [1.0, None],
                      "list": [[1], [2, 3]]})
    summary = profile(table)
    assert (summary["none"].count, summary["none"].nulls, summary["none"].mean) == (0, 2, None)
    odd = summary["odd"]
    assert (odd.nulls, odd.infinite, odd.count, odd.mean) == (1, 1, 1, None)
    one = summary["one"]
    assert (one.mean, one.std, one.quantiles) == (1.0, None, dict.fromkeys(QUANTILES, 1.0))
    assert summary["list"].kind == "other" and summary["list"].count == 2
    assert Profile.from_json(summary.to_json()) == summary
    with pytest.raises(InvalidInputError, match="no column"):
        profile(table, ["nope"])


# --- expectations ---------------------------------------------------------------------------


def test_expectations_report_counts_and_examples() -> None:
    table = pa.table({"age": [25, -1, 40, 130, None, 200],
                      "score": [0.5, np.nan, 0.2, 0.9, 1.5, 0.1],
                      "tier": ["gold", "silver", "tin", "gold", None, "lead"],
                      "id": [1, 2, 2, 3, 3, 3]})
    violations = check_expectations(table, [
        Expectation.range("age", 0, 120),
        Expectation.range("score", max=1.0),
        Expectation.not_null("age"),
        Expectation.not_null("score"),
        Expectation.allowed_values("tier", ["gold", "silver"]),
        Expectation.unique("id"),
        Expectation.unique("tier"),
        Expectation.not_null("missing_column"),
    ])
    got = {(v.expectation.kind, v.expectation.column): v for v in violations}
    assert set(got) == {("range", "age"), ("range", "score"), ("not_null", "age"),
                        ("not_null", "score"), ("allowed_values", "tier"), ("unique", "id"),
                        ("unique", "tier"), ("not_null", "missing_column")}
    age = got[("range", "age")]
    assert age.rows == 3 and age.examples == ((1, "-1"), (3, "130"), (5, "200"))
    assert got[("range", "score")].rows == 2  # 1.5 and NaN
    assert got[("not_null", "age")].examples == ((4, "None"),)
    assert got[("not_null", "score")].rows == 1  # NaN counts as missing
    assert got[("allowed_values", "tier")].examples == ((2, "'tin'"), (5, "'lead'"))
    assert got[("unique", "id")].rows == 5
    assert got[("unique", "tier")].examples == ((0, "'gold'"), (3, "'gold'"))
    assert got[("not_null", "missing_column")].rows == 6
    assert "age in [0, 120]: 3 rows are out of range, e.g. row 1: -1" in age.to_text()
    assert json.loads(json.dumps([v.to_dict() for v in violations]))


def test_kept_expectations_give_no_violation_and_rules_round_trip() -> None:
    table = pa.table({"t": [T0, T0 + timedelta(days=1)], "x": [1, 2]})
    rules = [Expectation.range("t", T0, T0 + timedelta(days=2)), Expectation.unique("x"),
             Expectation.range("x", min=0.5), Expectation.allowed_values("x", [1, 2, 3])]
    assert check_expectations(table, rules) == []
    assert [Expectation.from_dict(r.to_dict()) for r in rules] == rules


def test_malformed_expectations_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="needs a min, a max"):
        Expectation.range("x")
    with pytest.raises(InvalidInputError, match="unknown expectation"):
        Expectation.from_dict({"kind": "positive", "column": "x"})
    with pytest.raises(InvalidInputError, match="does not apply to column 'x'"):
        check_expectations(pa.table({"x": [1]}), [Expectation.allowed_values("x", ["a"])])


# --- report ---------------------------------------------------------------------------------


def test_report_flags_outliers_scales_correlations_and_constants() -> None:
    rng = np.random.default_rng(3)
    n = 1_000
    base = rng.normal(0, 1, n)
    spiked = base.copy()
    spiked[:5] = [50, -40, 35, 60, -55]
    table = pa.table({
        "spiked": spiked,
        "twin": 2 * spiked + rng.normal(0, 0.01, n),  # ~ perfectly correlated with spiked
        "mirror": -spiked + rng.normal(0, 0.01, n),
        "salary": rng.normal(50_000, 10_000, n) * 100,  # scale ~1e6 vs ~1
        "constant": np.full(n, 7.0),
        "label": ["x"] * n,
        "noise": rng.uniform(0, 1, n),
    })
    found = report(table)
    assert isinstance(found, ProfileReport) and found.flagged
    outliers = {o.column: o for o in found.outliers}
    assert outliers["spiked"].iqr >= 5 and outliers["spiked"].robust_z >= 5
    assert outliers["noise"].iqr == 0 and outliers["noise"].robust_z == 0
    assert outliers["constant"].iqr == 0 and outliers["constant"].robust_z == 0
    assert found.scale_gap is not None
    assert (found.scale_gap.largest, found.scale_gap.smallest) == ("salary", "noise")
    iqr = {k: np.subtract(*np.percentile(table[k].to_numpy(), [75, 25]))
           for k in ("salary", "noise")}
    assert found.scale_gap.ratio == pytest.approx(iqr["salary"] / iqr["noise"])
    pairs = {(c.a, c.b): c.pearson for c in found.correlated}
    assert pairs[("spiked", "twin")] > 0.95
    assert pairs[("spiked", "mirror")] < -0.95 and pairs[("twin", "mirror")] < -0.95
    assert set(pairs) == {("spiked", "twin"), ("spiked", "mirror"), ("twin", "mirror")}
    assert "noise" not in {c for pair in pairs for c in pair}
    assert set(found.constant) == {"constant", "label"}

    text = found.to_text()
    assert "spiked" in text and "salary" in text and "constant: constant, label" in text
    assert json.loads(json.dumps(found.to_dict()))["constant"] == ["constant", "label"]


def test_report_correlation_matches_numpy_and_skips_missing_pairs() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1, 500)
    y = x + rng.normal(0, 0.05, 500)
    y_missing = y.copy()
    y_missing[::10] = np.nan
    found = report(pa.table({"x": x, "y": y_missing}))
    (pair,) = found.correlated
    keep = ~np.isnan(y_missing)
    assert pair.pearson == pytest.approx(np.corrcoef(x[keep], y_missing[keep])[0, 1])


def test_a_clean_batch_flags_nothing() -> None:
    rng = np.random.default_rng(5)
    table = pa.table({"a": rng.uniform(0, 1, 300), "b": rng.uniform(0, 10, 300),
                      "c": rng.choice(["x", "y"], 300)})
    found = report(table)
    assert not found.flagged
    assert found.to_text().endswith("nothing flagged")


def test_robust_z_falls_back_when_most_values_are_equal() -> None:
    values = np.zeros(100)
    values[:3] = [5.0, 6.0, 100.0]
    (outliers,) = report(pa.table({"v": values})).outliers
    assert outliers.robust_z == 3 and outliers.iqr == 3
    frame = pd.DataFrame({"v": values})
    assert frame["v"].median() == 0.0  # the MAD is 0 here, hence the fallback
