"""The two data sets of the drift benchmark, each a reference and two current windows of the
same number of rows: a *shifted* one with five planted changes, and an *unshifted* one drawn
from the reference's distributions with another seed.

``synthetic`` (20 columns): 15 numeric float64/int64 columns (normal, log-normal,
exponential, uniform, Poisson and other integers, gamma, a bimodal mixture, Student's t,
beta, Weibull; one with 5% missing) and 5 object columns of strings (3 to 50 categories,
one with 2% missing). Planted: a mean shift of 0.25 sd (``n00``), a standard deviation x1.5
(``n01``), a log-normal scaled by 1.2 (``n02``), a category mix moved (``c0``), a new
category in 8% of the rows (``c1``).

``realistic`` (20 columns, the dtypes pandas 3 gives a table of customers): 8 float64 (two
with missing values: 5% and 10%), 2 int64 and a nullable ``Int64`` with 3% missing, 2 bool,
2 pandas ``category``, and 5 columns of pandas 3's default string dtype (``str``, Arrow
storage) with 0-5% missing, of 3 to 10,000 distinct values (countries, colours, cities,
devices, postcodes). Planted: ``income`` (log-normal) scaled by 1.2, ``score`` shifted by
0.25 sd, the share of ``active`` from 40% to 60%, the mix of ``color`` moved, and a new
``device`` ("tv") in 8% of the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DataSet:
    name: str
    numeric: list[str]
    categorical: list[str]  # for Evidently's data definition (bools included)
    shifted: tuple[str, ...]  # the planted changes
    make: Callable[[int, int, bool], Any]  # (rows, seed, shifted) -> DataFrame


def _choice(rng: Any, values: list[str], p: Any, rows: int) -> Any:
    import numpy as np

    return np.array(values, dtype=object)[rng.choice(len(values), rows, p=p)]


def synthetic(rows: int, seed: int, shifted: bool) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {
        "n00": rng.normal(0.0, 1.0, rows) + (0.25 if shifted else 0.0),
        "n01": rng.normal(5.0, 2.0 * (1.5 if shifted else 1.0), rows),
        "n02": rng.lognormal(0.0, 0.5, rows) * (1.2 if shifted else 1.0),
        "n03": rng.exponential(1.0, rows),
        "n04": rng.uniform(0.0, 100.0, rows),
        "n05": rng.poisson(4.0, rows).astype(np.int64),
        "n06": rng.gamma(2.0, 2.0, rows),
        "n07": np.where(rng.random(rows) < 0.3, rng.normal(-2.0, 0.5, rows),
                        rng.normal(3.0, 1.0, rows)),
        "n08": rng.standard_t(5, rows),
        "n09": rng.beta(2.0, 5.0, rows),
        "n10": rng.integers(0, 10, rows).astype(np.int64),
        "n11": rng.normal(100.0, 15.0, rows),
        "n12": rng.lognormal(3.0, 1.0, rows),
        "n13": np.where(rng.random(rows) < 0.05, np.nan, rng.normal(0.0, 1.0, rows)),
        "n14": rng.weibull(1.5, rows),
    }
    mix = np.array([0.4, 0.3, 0.2, 0.1])
    if shifted:
        mix = np.array([0.25, 0.3, 0.25, 0.2])
    columns["c0"] = _choice(rng, ["red", "green", "blue", "grey"], mix, rows)
    zipf = 1.0 / np.arange(1, 11)
    c1 = _choice(rng, [f"city_{i}" for i in range(10)], zipf / zipf.sum(), rows)
    if shifted:
        c1[rng.random(rows) < 0.08] = "city_new"
    columns["c1"] = c1
    columns["c2"] = _choice(rng, ["yes", "no", "maybe"], np.array([0.5, 0.3, 0.2]), rows)
    weights = np.linspace(2.0, 1.0, 20)
    columns["c3"] = _choice(rng, [f"dept_{i:02d}" for i in range(20)], weights / weights.sum(),
                            rows)
    c4 = _choice(rng, [f"sku_{i:02d}" for i in range(50)], np.full(50, 1 / 50), rows)
    c4[rng.random(rows) < 0.02] = None
    columns["c4"] = c4
    return pd.DataFrame(columns)


def realistic(rows: int, seed: int, shifted: bool) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)

    def strings(values: list[str], weights: Any, missing: float) -> Any:
        picked = _choice(rng, values, np.asarray(weights) / np.sum(weights), rows)
        picked[rng.random(rows) < missing] = None
        return pd.Series(picked, dtype="str")  # pandas 3's default string dtype

    def with_missing(values: Any, share: float) -> Any:
        return np.where(rng.random(rows) < share, np.nan, values)

    items = pd.array(rng.poisson(2.0, rows), dtype="Int64")
    items[rng.random(rows) < 0.03] = pd.NA
    devices = ["ios", "android", "web"] + (["tv"] if shifted else [])
    colors = [0.25, 0.3, 0.25, 0.2] if shifted else [0.4, 0.3, 0.2, 0.1]
    return pd.DataFrame({
        "income": rng.lognormal(10.0, 0.8, rows) * (1.2 if shifted else 1.0),
        "score": rng.normal(0.0, 1.0, rows) + (0.25 if shifted else 0.0),
        "balance": with_missing(rng.normal(50.0, 10.0, rows), 0.05),
        "tenure": rng.exponential(5.0, rows),
        "rate": rng.beta(2.0, 5.0, rows),
        "ratio": rng.uniform(0.0, 1.0, rows),
        "temperature": rng.normal(20.0, 5.0, rows),
        "discount": with_missing(rng.gamma(2.0, 0.05, rows), 0.10),
        "age": rng.integers(18, 90, rows),
        "visits": rng.poisson(3.0, rows),
        "items": items,
        "active": rng.random(rows) < (0.6 if shifted else 0.4),
        "newsletter": rng.random(rows) < 0.1,
        "segment": pd.Categorical(rng.choice(["a", "b", "c", "d"], rows,
                                             p=[0.4, 0.3, 0.2, 0.1])),
        "tier": pd.Categorical(rng.choice(["gold", "silver", "bronze"], rows,
                                          p=[0.2, 0.3, 0.5])),
        "country": strings([f"country_{i:02d}" for i in range(30)],
                           1.0 / np.arange(1, 31), 0.02),
        "color": strings(["red", "green", "blue", "grey"], colors, 0.01),
        "city": strings([f"city_{i:03d}" for i in range(200)],
                        1.0 / np.arange(1, 201) ** 0.8, 0.05),
        "device": strings(devices, [0.3, 0.5, 0.2] + ([0.087] if shifted else []), 0.0),
        "postcode": strings([f"{i:05d}" for i in range(10_000)],
                            1.0 / np.arange(1, 10_001) ** 0.5, 0.03),
    })


SYNTHETIC_NUMERIC = [f"n{i:02d}" for i in range(15)]
REALISTIC_NUMERIC = ["income", "score", "balance", "tenure", "rate", "ratio", "temperature",
                     "discount", "age", "visits", "items"]
DATASETS = {
    "synthetic": DataSet("synthetic", SYNTHETIC_NUMERIC, [f"c{i}" for i in range(5)],
                         ("n00", "n01", "n02", "c0", "c1"), synthetic),
    "realistic": DataSet("realistic", REALISTIC_NUMERIC,
                         ["active", "newsletter", "segment", "tier", "country", "color", "city",
                          "device", "postcode"],
                         ("income", "score", "active", "color", "device"), realistic),
}
