"""String, null and categorical columns through the public API: every way pandas holds the
same strings (object, pandas 3's ``str`` with Arrow or Python storage, ``string``,
``category``, a pyarrow Table) gives the same profile and the same drift, nulls counted the
same; the raw Wasserstein distance of compare_frames equals SciPy's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.monitoring import DriftOptions, build_profile, compare_frames, detect_drift
from modelyard.monitoring import stats as drift_stats
from modelyard.monitoring.columns import category_codes, category_counts, counts_by_category
from modelyard.monitoring.quality import check_quality

ROWS = 3_000
STRING_DTYPES = {
    "str": "str",  # pandas 3's default: Arrow storage, NaN as missing
    "str-python": pd.StringDtype("python", na_value=np.nan),
    "string": pd.StringDtype("pyarrow"),  # pd.NA as missing
    "string-python": pd.StringDtype("python"),
    "category": "category",
}


def strings(rows: int, seed: int, *, cities: int = 150, new: float = 0.0) -> np.ndarray:
    """Object strings of a skewed city column, with None and NaN as missing values."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, cities + 1)
    names = np.array([f"city_{i:03d}" for i in range(cities)], dtype=object)
    values = names[rng.choice(cities, rows, p=weights / weights.sum())]
    values[rng.random(rows) < new] = "city_new"
    values[rng.random(rows) < 0.04] = None
    values[rng.random(rows) < 0.02] = np.nan
    return values


def frame(rows: int, seed: int, dtype: object = object, *, new: float = 0.0,
          shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 100)
    colors = np.array(["red", "green", "blue"], dtype=object)[rng.choice(3, rows)]
    colors[rng.random(rows) < new * 2] = "purple"
    colors[rng.random(rows) < 0.1] = None
    x = rng.normal(shift, 1.0, rows)
    x[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame({
        "city": pd.Series(strings(rows, seed, new=new), dtype=dtype),  # type: ignore[call-overload]
        "color": pd.Series(colors, dtype=dtype),  # type: ignore[call-overload]
        "x": x,
        "n": pd.array(np.where(rng.random(rows) < 0.03, None, rng.integers(0, 9, rows)),
                      dtype="Int64"),
        "flag": rng.random(rows) < 0.3,
    })


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return frame(ROWS, 1)


@pytest.fixture(scope="module")
def current() -> pd.DataFrame:
    return frame(ROWS // 2, 2, new=0.06, shift=0.3)


def _as(data: pd.DataFrame, dtype: object) -> pd.DataFrame:
    return data.assign(city=data["city"].astype(dtype), color=data["color"].astype(dtype))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(STRING_DTYPES))
def test_every_string_dtype_gives_the_object_profile(reference: pd.DataFrame,
                                                     name: str) -> None:
    expected = build_profile(reference)
    found = build_profile(_as(reference, STRING_DTYPES[name]))
    for column in ("city", "color"):
        mine, theirs = found[column], expected[column]
        assert mine.kind == theirs.kind == "categorical"
        assert mine.categories == theirs.categories  # same order, ties included
        assert all(type(c) is str for c in mine.categories)
        assert (mine.count, mine.nulls, mine.distinct) == (theirs.count, theirs.nulls,
                                                           theirs.distinct)
        assert mine.bin_counts == theirs.bin_counts
        assert mine.calibration == theirs.calibration
    assert found["city"].distinct == 150 and len(found["city"].categories) == 100  # top_k


@pytest.mark.parametrize("name", list(STRING_DTYPES))
def test_every_string_dtype_gives_the_same_drift(reference: pd.DataFrame,
                                                 current: pd.DataFrame, name: str) -> None:
    dtype = STRING_DTYPES[name]
    expected = compare_frames(reference, current)
    found = compare_frames(_as(reference, dtype), _as(current, dtype))
    assert found.to_dict() == expected.to_dict()
    # either side alone in the new dtype, through the profile path too
    profile = build_profile(reference)
    assert (detect_drift(profile, _as(current, dtype)).to_dict()
            == detect_drift(profile, current).to_dict())
    assert found.drifted_columns == ("color", "x")


def test_nulls_are_counted_in_profile_and_window(reference: pd.DataFrame,
                                                 current: pd.DataFrame) -> None:
    for dtype in (object, *STRING_DTYPES.values()):
        profile = build_profile(_as(reference, dtype))
        city = profile["city"]
        missing = int(reference["city"].isna().sum())
        assert missing > 100
        assert (city.nulls, city.count) == (missing, ROWS - missing)
        assert sum(city.bin_counts) == city.count
        row = detect_drift(profile, _as(current, dtype))["city"]
        assert row.current is not None
        assert row.current.nulls == int(current["city"].isna().sum())
        assert sum(row.current.counts) == row.current.count == len(current) - row.current.nulls
    numbers = build_profile(reference)
    assert numbers["x"].nulls == int(reference["x"].isna().sum())
    assert numbers["n"].nulls == int(reference["n"].isna().sum())


def test_category_counts_equal_pandas_value_counts(current: pd.DataFrame) -> None:
    city = current["city"]
    expected = city.value_counts()
    for dtype in (object, *STRING_DTYPES.values()):
        keys, counts = category_counts(city.astype(dtype))
        assert dict(zip(keys, counts.tolist(), strict=True)) == expected.to_dict()
        codes, distinct = category_codes(city.astype(dtype))
        assert len(distinct) == len(expected) and (codes == -1).sum() == city.isna().sum()
        assert distinct.keys([0, 1]) == list(pd.unique(city.dropna()))[:2]  # first appearance


def test_a_string_window_against_categories_that_are_not_strings() -> None:
    # a reference of integer codes declared categorical, a window where they arrive as text
    reference = pd.DataFrame({"code": np.tile([1, 2, 3], 100)})
    profile = build_profile(reference, kinds={"code": "categorical"})
    assert profile["code"].categories == (1, 2, 3)
    text = pd.Series(["1", "2", None, "x"] * 25, dtype="str")
    counts = counts_by_category(text, profile["code"].categories)
    assert counts.tolist() == [0, 0, 0, 75]  # "1" is not the category 1
    mixed = pd.Series([1, "1", 2, None] * 25, dtype=object)  # the general path
    assert counts_by_category(mixed, (1, "1", 3)).tolist() == [25, 25, 0, 25]


def test_a_pyarrow_table_with_string_columns_gives_the_same_report(
        reference: pd.DataFrame, current: pd.DataFrame) -> None:
    str_reference, str_current = _as(reference, "str"), _as(current, "str")
    expected = compare_frames(str_reference, str_current)
    found = compare_frames(pa.Table.from_pandas(str_reference, preserve_index=False),
                           pa.Table.from_pandas(str_current, preserve_index=False))
    assert found.to_dict() == expected.to_dict()


def test_unseen_categories_in_a_string_window_are_reported(reference: pd.DataFrame,
                                                           current: pd.DataFrame) -> None:
    profile = build_profile(_as(reference, "str"))
    quality = check_quality(profile, _as(current, "str"))
    color = next(c for c in quality.columns if c.column == "color")
    assert color.missing == int(current["color"].isna().sum())
    assert color.unseen == int((current["color"] == "purple").sum()) > 0
    assert color.unseen_examples == ("purple",) and color.unseen_conclusive
    city = next(c for c in quality.columns if c.column == "city")
    assert "city_new" in city.unseen_examples


def test_compare_frames_wasserstein_equals_scipy_with_nulls(reference: pd.DataFrame,
                                                            current: pd.DataFrame) -> None:
    report = compare_frames(reference, current, options=DriftOptions(numeric_test="wasserstein"))
    for column in ("x", "n"):
        ref = reference[column].dropna().to_numpy(dtype=float)
        cur = current[column].dropna().to_numpy(dtype=float)
        assert len(ref) != 2 * len(cur)  # unequal sizes after the nulls
        expected = scipy.stats.wasserstein_distance(ref, cur) / ref.std()
        assert report[column].statistic == pytest.approx(expected, rel=1e-12)


@given(a=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60),
       b=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60),
       rounded=st.booleans())
@settings(max_examples=200, deadline=None)
def test_wasserstein_samples_equals_scipy(a: list[float], b: list[float],
                                          rounded: bool) -> None:
    left, right = np.sort(a), np.sort(b)
    if rounded:  # many ties
        left, right = np.round(left, -5), np.round(right, -5)
    expected = scipy.stats.wasserstein_distance(left, right)
    assert drift_stats.wasserstein_samples(left, right) == pytest.approx(
        expected, rel=1e-9, abs=1e-6)
