"""Reference profiles: every field against pandas/NumPy, JSON round trips, bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelyard.errors import InvalidInputError
from modelyard.monitoring import ReferenceProfile, build_profile
from modelyard.monitoring.calibration import MIN_CHUNK_ROWS
from modelyard.monitoring.profile import ColumnProfile
from modelyard.monitoring.stats import TAIL_POINTS, sketch_grid

ROWS = 5_000


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    amount = rng.lognormal(3.0, 1.0, ROWS)
    amount[rng.random(ROWS) < 0.05] = np.nan
    amount[:3] = [np.inf, -np.inf, np.inf]
    visits = pd.array(rng.poisson(4, ROWS), dtype="Int64")
    visits[rng.random(ROWS) < 0.02] = pd.NA
    tier = pd.Series(rng.choice([f"t{i}" for i in range(30)], ROWS,
                                p=np.arange(30, 0, -1) / 465), dtype=object)
    tier[rng.random(ROWS) < 0.1] = None
    return pd.DataFrame({
        "amount": amount,
        "visits": visits,
        "tier": tier,
        "region": pd.Categorical(rng.choice(["north", "south"], ROWS, p=[0.7, 0.3])),
        "active": rng.random(ROWS) < 0.25,
        "seen": pd.Timestamp("2024-01-01", tz="UTC")
        + pd.to_timedelta(rng.integers(0, 86_400 * 90, ROWS), unit="s"),
        "flat": np.full(ROWS, 7.5),
        "empty": pd.Series([None] * ROWS, dtype=object),
    })


@pytest.fixture(scope="module")
def profile(frame: pd.DataFrame) -> ReferenceProfile:
    return build_profile(frame, frame["amount"].fillna(0).clip(0, 100) / 100)


def test_numeric_column_matches_numpy(frame: pd.DataFrame, profile: ReferenceProfile) -> None:
    col = profile["amount"]
    raw = frame["amount"].to_numpy()
    finite = raw[np.isfinite(raw)]
    assert (col.kind, col.count, col.nulls, col.infinite) == (
        "numeric", len(finite), int(np.isnan(raw).sum()), 3)
    assert col.min == finite.min() and col.max == finite.max()
    assert col.mean == pytest.approx(finite.mean()) and col.std == pytest.approx(finite.std())
    np.testing.assert_allclose(col.quantiles, np.quantile(finite, sketch_grid(1001)),
                               rtol=1e-12)
    edges = np.unique(np.quantile(finite, np.arange(1, 10) / 10))
    np.testing.assert_allclose(col.bin_edges, edges, rtol=1e-12)
    expected = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=10)
    assert col.bin_counts == tuple(expected.tolist())
    assert sum(col.bin_counts) == col.count


def test_integer_column_with_ties_keeps_them_as_atoms(profile: ReferenceProfile,
                                                      frame: pd.DataFrame) -> None:
    col = profile["visits"]
    present = frame["visits"].dropna().to_numpy(dtype=float)
    assert (col.kind, col.count, col.nulls) == ("numeric", len(present),
                                                int(frame["visits"].isna().sum()))
    assert len(col.bin_edges) < 9  # decile edges repeat on integers and are kept once
    assert sum(col.bin_counts) == col.count
    assert col.quantiles[0] == present.min() and col.quantiles[-1] == present.max()


def test_categorical_columns(profile: ReferenceProfile, frame: pd.DataFrame) -> None:
    tier = profile["tier"]
    counts = frame["tier"].value_counts()
    assert (tier.kind, tier.count, tier.nulls, tier.distinct) == (
        "categorical", int(counts.sum()), int(frame["tier"].isna().sum()), 30)
    assert tier.categories[0] == counts.index[0]
    assert dict(zip(tier.categories, tier.bin_counts, strict=False)) == counts.to_dict()
    assert tier.bin_counts[-1] == 0 and tier.complete
    region = profile["region"]
    assert region.kind == "categorical" and region.categories == ("north", "south")
    active = profile["active"]
    assert active.kind == "boolean" and active.categories == (False, True)
    assert active.bin_counts[:2] == (int((~frame["active"]).sum()), int(frame["active"].sum()))


def test_top_k_keeps_the_most_frequent_and_counts_the_rest(frame: pd.DataFrame) -> None:
    col = build_profile(frame, columns=["tier"], top_k=5)["tier"]
    counts = frame["tier"].value_counts()
    assert col.categories == tuple(counts.index[:5])
    assert col.bin_counts == (*counts.iloc[:5].tolist(), int(counts.iloc[5:].sum()))
    assert col.distinct == 30 and not col.complete


def test_timestamps_are_seconds_since_the_epoch(profile: ReferenceProfile,
                                                frame: pd.DataFrame) -> None:
    col = profile["seen"]
    seconds = (frame["seen"] - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
    assert col.kind == "timestamp"
    assert col.min == seconds.min() and col.max == seconds.max()


def test_constant_and_all_null_columns(profile: ReferenceProfile) -> None:
    flat, empty = profile["flat"], profile["empty"]
    assert flat.constant and flat.std == 0.0 and set(flat.quantiles) == {7.5}
    assert empty.all_null and empty.count == 0 and empty.nulls == ROWS and not empty.quantiles


def test_calibration_cuts_the_reference_into_chunks(profile: ReferenceProfile) -> None:
    col = profile["amount"]
    assert len(col.calibration.chunk_rows) == 20
    assert sum(col.calibration.chunk_rows) == col.count
    assert set(col.calibration.statistics) == {"ks", "wasserstein", "jensenshannon", "psi",
                                               "chi2"}
    assert all(len(v) == 20 and min(v) >= 0 for v in col.calibration.statistics.values())
    assert set(profile["tier"].calibration.statistics) == {"jensenshannon", "psi", "chi2"}
    assert "wasserstein" not in profile["flat"].calibration.statistics  # std of zero


def test_small_references_have_no_calibration() -> None:
    small = pd.DataFrame({"x": np.arange(5 * MIN_CHUNK_ROWS - 1, dtype=float)})
    assert build_profile(small)["x"].calibration.chunk_rows == ()
    enough = pd.DataFrame({"x": np.arange(5 * MIN_CHUNK_ROWS, dtype=float)})
    assert build_profile(enough)["x"].calibration.chunk_rows == (MIN_CHUNK_ROWS,) * 5


def test_predictions_are_profiled(profile: ReferenceProfile, frame: pd.DataFrame) -> None:
    assert list(profile.predictions) == ["prediction"]
    assert profile.predictions["prediction"].count == ROWS
    labels = np.where(frame["active"], "yes", "no")
    probabilities = np.column_stack([np.linspace(0, 1, ROWS), np.linspace(1, 0, ROWS)])
    assert list(build_profile(frame[["amount"]], probabilities).predictions) == [
        "prediction_0", "prediction_1"]
    named = build_profile(frame[["amount"]], pd.DataFrame({"label": labels}))
    assert named.predictions["label"].kind == "categorical"


def test_json_round_trip_is_exact(profile: ReferenceProfile) -> None:
    text = profile.to_json()
    assert ReferenceProfile.from_json(text) == profile
    again = ReferenceProfile.from_dict(json.loads(json.dumps(profile.to_dict(), allow_nan=False)))
    assert again == profile
    assert again.to_dict() == profile.to_dict()


def test_profile_is_a_few_kb_per_column(profile: ReferenceProfile) -> None:
    sizes = {c.name: len(json.dumps(c.to_dict())) for c in profile.columns.values()}
    assert sizes["amount"] < 14_000  # 1,001 quantiles are 10.7 KB of it
    assert sizes["tier"] < 4_000


def test_pyarrow_table_gives_the_same_profile(frame: pd.DataFrame) -> None:
    part = frame[["amount", "tier", "active"]]
    from_arrow = build_profile(pa.Table.from_pandas(part, preserve_index=False))
    from_pandas = build_profile(part)
    assert from_arrow.columns["amount"] == from_pandas.columns["amount"]
    assert from_arrow.columns["tier"].bin_counts == from_pandas.columns["tier"].bin_counts
    assert from_arrow.columns["active"].categories == from_pandas.columns["active"].categories


def test_declared_kinds_override(frame: pd.DataFrame) -> None:
    zips = pd.DataFrame({"zip": np.tile([10115, 20095, 80331], 50)})
    col = build_profile(zips, kinds={"zip": "categorical"})["zip"]
    assert col.kind == "categorical" and set(col.categories) == {10115, 20095, 80331}
    assert build_profile(zips)["zip"].kind == "numeric"


@pytest.mark.parametrize(("call", "match"), [
    (lambda f: build_profile([1, 2, 3]), "pandas DataFrame or a pyarrow Table"),
    (lambda f: build_profile(f.iloc[:0]), "no rows"),
    (lambda f: build_profile(f, columns=["nope"]), "no column.*'nope'"),
    (lambda f: build_profile(f, columns="amount"), "list of column names"),
    (lambda f: build_profile(f, kinds={"nope": "numeric"}), "unknown column.*'nope'"),
    (lambda f: build_profile(f, kinds={"amount": "float"}), "unknown kind"),
    (lambda f: build_profile(f, sketch_size=2), "sketch_size must be an integer >= 3"),
    (lambda f: build_profile(f, bins=1), "bins must be an integer >= 2"),
    (lambda f: build_profile(f, bins=20, sketch_size=11), "fewer than sketch_size"),
    (lambda f: build_profile(f, predictions=np.zeros(3)), "predictions has 3 rows"),
    (lambda f: build_profile(f, predictions=np.zeros((ROWS, 2, 2))), "3 dimensions"),
])
def test_bad_inputs_are_refused(frame: pd.DataFrame, call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError, match=match):
        call(frame)


def test_duplicated_column_names_are_refused() -> None:
    twice = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(InvalidInputError, match=r"duplicated column name.*'a'"):
        build_profile(twice)


def test_unhashable_values_are_refused_with_the_column_name() -> None:
    lists = pd.DataFrame({"tags": [[1], [2], [3]]})
    with pytest.raises(InvalidInputError, match=r"'tags'.*cannot be compared as categories"):
        build_profile(lists)


@pytest.mark.parametrize(("data", "match"), [
    ({"format": 99}, "format 1"),
    ([], "format 1"),
    ({"format": 1, "rows": 1}, "malformed"),
])
def test_malformed_profiles_are_refused(data: object, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        ReferenceProfile.from_dict(data)  # type: ignore[arg-type]


def test_malformed_column_is_refused(profile: ReferenceProfile) -> None:
    data = profile.to_dict()
    data["columns"][0]["quantiles"] = "not base64!"
    with pytest.raises(InvalidInputError, match="'amount' is malformed"):
        ReferenceProfile.from_dict(data)
    data["columns"][0]["quantiles"] = [1.0, 2.0]
    with pytest.raises(InvalidInputError, match="at least 35 quantiles, not 2"):
        ReferenceProfile.from_dict(data)
    plain = [float(v) for v in range(3 + 2 * TAIL_POINTS)]  # plain lists are read too
    data["columns"][0]["quantiles"] = plain
    assert ReferenceProfile.from_dict(data)["amount"].quantiles == tuple(plain)
    with pytest.raises(InvalidInputError, match="not JSON"):
        ReferenceProfile.from_json("{")
    data["columns"][0]["kind"] = "float"
    with pytest.raises(InvalidInputError, match="unknown kind"):
        ColumnProfile.from_dict(data["columns"][0])


def test_importing_monitoring_loads_no_heavy_library() -> None:
    probe = ("import json, sys, modelyard.monitoring as m; m.__all__; "
             "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    loaded = {m.split(".")[0] for m in json.loads(out.stdout)}
    assert not loaded & {"numpy", "pandas", "scipy", "pyarrow"}
