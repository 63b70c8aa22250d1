"""Data drift: modelyard's reference profile and drift against Evidently's DataDriftPreset.

    python bench/bench_drift.py                      # 100,000 and 1,000,000 rows
    python bench/bench_drift.py --rows 100000        # one size
    python bench/bench_drift.py --no-evidently       # modelyard only
    python bench/bench_drift.py --no-unshifted-peer  # Evidently on the shifted window only

Synthetic data, 20 columns: 15 numeric (normal, log-normal, exponential, uniform, Poisson
and other integers, gamma, a bimodal mixture, Student's t, beta, Weibull; one with 5%
missing) and 5 categorical (3 to 50 categories, one with 2% missing). The reference and
two current windows have the same number of rows: a *shifted* one, where five columns
changed (a mean shift of 0.25 sd, a standard deviation x1.5, a log-normal scaled by 1.2, a
category mix moved, a new category in 8% of the rows), and an *unshifted* one drawn from
the reference's distributions with another seed. The three are written to Parquet once
(``bench/.work/drift/<rows>/``) and every worker reads the same files.

Each measurement runs in a fresh subprocess: modelyard with the project's interpreter,
Evidently with its own (``bench/.venvs/evidently``, installed from PyPI on first use with a
pandas it can import). The clock starts with the frames in memory and the libraries
imported: for modelyard, ``build_profile(reference)`` and ``detect_drift(profile,
current)`` (timed separately and together); for Evidently, ``Report([DataDriftPreset()])
.run(current, reference)`` with the numeric and categorical columns declared. Memory is the
worker's peak resident set (``VmHWM``, which includes the frames themselves; the resident
set after loading them is shown too). After the clock stops, the modelyard worker checks its
statistics against SciPy on the raw data: ``scipy.stats.wasserstein_distance`` divided by
the reference's standard deviation for numeric columns, and
``scipy.spatial.distance.jensenshannon`` (base 2) on pandas' category counts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from common import (
    VENVS_DIR,
    WORK_DIR,
    emit,
    ensure_venv,
    fmt_num,
    modelyard_python,
    package_version,
    peak_rss_mb,
    print_table,
    run_worker,
)

EVIDENTLY_VENV = VENVS_DIR / "evidently"
# Evidently 0.7 imports pandas internals that pandas 3 removed: pin a pandas it supports.
EVIDENTLY_REQUIREMENTS = ["evidently", "pandas>=2.2,<3"]
EVIDENTLY_ENV = {"DO_NOT_TRACK": "true", "EVIDENTLY_DISABLE_TELEMETRY": "1"}
DRIFT_DIR = WORK_DIR / "drift"
SIZES = (100_000, 1_000_000)
NUMERIC = [f"n{i:02d}" for i in range(15)]
CATEGORICAL = [f"c{i}" for i in range(5)]
SHIFTED = ("n00", "n01", "n02", "c0", "c1")
TIME_TARGET = 30.0  # x faster than Evidently at 1,000,000 rows
MEMORY_TARGET = 2.0  # x less peak memory


# --- data ----------------------------------------------------------------------------------

def _window(rows: int, seed: int, shifted: bool) -> Any:
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


def _choice(rng: Any, values: list[str], p: Any, rows: int) -> Any:
    import numpy as np

    return np.array(values, dtype=object)[rng.choice(len(values), rows, p=p)]


def make_data(rows: int) -> Path:
    """Write reference.parquet, shifted.parquet and unshifted.parquet once."""
    folder = DRIFT_DIR / str(rows)
    if (folder / "unshifted.parquet").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, seed, shifted in (("reference", 1, False), ("shifted", 2, True),
                                ("unshifted", 3, False)):
        _window(rows, seed, shifted).to_parquet(folder / f"{name}.parquet", index=False)
    return folder


# --- workers (each runs in its own process) ------------------------------------------------

def _read(folder: Path, name: str) -> Any:
    import pandas as pd

    return pd.read_parquet(folder / f"{name}.parquet")


def worker_modelyard(folder: Path, case: str) -> None:
    import scipy.spatial.distance  # imported before the clock, like Evidently
    import scipy.stats  # noqa: F401

    from modelyard.monitoring import build_profile, detect_drift

    reference, current = _read(folder, "reference"), _read(folder, case)
    before = peak_rss_mb()
    start = time.perf_counter()
    profile = build_profile(reference)
    built = time.perf_counter()
    report = detect_drift(profile, current)
    done = time.perf_counter()
    peak = peak_rss_mb()
    columns = {r.column: {"test": r.test, "statistic": r.statistic, "threshold": r.threshold,
                          "drifted": r.drifted} for r in report.columns}
    emit({"seconds": done - start, "profile_seconds": built - start,
          "drift_seconds": done - built, "peak_mb": peak, "before_mb": before,
          "flagged": list(report.drifted_columns), "dataset_drift": report.dataset_drift,
          "columns": columns, "profile_kb": len(profile.to_json()) / 1024,
          "scipy": _scipy_check(reference, current, profile, report)})


def _scipy_check(reference: Any, current: Any, profile: Any, report: Any) -> dict[str, Any]:
    """The largest difference between modelyard's statistics and SciPy's on the raw data."""
    import numpy as np
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import wasserstein_distance

    worst: dict[str, Any] = {"wasserstein": 0.0, "jensenshannon": 0.0}
    for row in report.columns:
        if row.test == "wasserstein":
            ref = reference[row.column].dropna().to_numpy(dtype=np.float64)
            cur = current[row.column].dropna().to_numpy(dtype=np.float64)
            exact = wasserstein_distance(ref, cur) / ref.std()
            worst["wasserstein"] = max(worst["wasserstein"], abs(exact - row.statistic))
        elif row.test == "jensenshannon":
            ref_counts = reference[row.column].value_counts()
            cur_counts = current[row.column].value_counts()
            keys = sorted(set(ref_counts.index) | set(cur_counts.index))
            exact = jensenshannon(ref_counts.reindex(keys, fill_value=0).to_numpy(float),
                                  cur_counts.reindex(keys, fill_value=0).to_numpy(float),
                                  base=2)
            worst["jensenshannon"] = max(worst["jensenshannon"], abs(exact - row.statistic))
    return worst


def worker_evidently(folder: Path, case: str) -> None:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference, current = _read(folder, "reference"), _read(folder, case)
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    before = peak_rss_mb()
    start = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition))
    done = time.perf_counter()
    peak = peak_rss_mb()
    columns: dict[str, Any] = {}
    dataset_drift = None
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            method, limit, value = config["method"], config["threshold"], metric["value"]
            drifted = bool(value < limit if "p_value" in method else value >= limit)
            columns[config["column"]] = {"test": method, "statistic": float(value),
                                         "threshold": limit, "drifted": drifted}
        elif config.get("type", "").endswith("DriftedColumnsCount"):
            dataset_drift = bool(metric["value"]["share"] >= config["drift_share"])
    emit({"seconds": done - start, "peak_mb": peak, "before_mb": before,
          "flagged": [c for c, v in columns.items() if v["drifted"]],
          "dataset_drift": dataset_drift, "columns": columns})


# --- the comparison ------------------------------------------------------------------------

def evidently_python(log: bool = True) -> str:
    return ensure_venv(EVIDENTLY_VENV, EVIDENTLY_REQUIREMENTS, "evidently.presets", log)


def measure(python: str, worker: str, folder: Path, case: str,
            env: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        result = run_worker(python, Path(__file__), "--worker", worker, "--data", str(folder),
                            "--case", case, timeout=3600, env=env)
    except Exception as exc:  # a peer that fails is reported, not fatal
        return {"tool": worker, "case": case, "error": str(exc)[-2000:]}
    return {"tool": worker, "case": case, **result}


def run_size(rows: int, with_evidently: bool, unshifted_peer: bool) -> list[dict[str, Any]]:
    folder = make_data(rows)
    results = [measure(modelyard_python(), "modelyard", folder, case)
               for case in ("shifted", "unshifted")]
    if with_evidently:
        try:
            peer = evidently_python()
        except Exception as exc:
            results.append({"tool": "evidently", "case": "shifted",
                            "error": f"install failed: {exc}"})
        else:
            cases = ("shifted", "unshifted") if unshifted_peer else ("shifted",)
            results += [measure(peer, "evidently", folder, case, EVIDENTLY_ENV)
                        for case in cases]
    for result in results:
        result["rows"] = rows
    report(rows, results)
    return results


def report(rows: int, results: list[dict[str, Any]]) -> None:
    found = {(r["tool"], r["case"]): r for r in results}
    mine = found.get(("modelyard", "shifted"), {})
    table = []
    for r in results:
        if "seconds" not in r:
            table.append([r["tool"], r["case"], "failed", "-", "-", "-", "-", "-", "-"])
            continue
        split = "-"
        if r["tool"] == "modelyard":
            split = f"{fmt_num(r['profile_seconds'], 's')} + {fmt_num(r['drift_seconds'], 's')}"
        ratio = memory = "-"
        if r["tool"] != "modelyard" and "seconds" in mine:
            ratio = f"{r['seconds'] / mine['seconds']:.1f}x"
            memory = f"{r['peak_mb'] / mine['peak_mb']:.1f}x"
        flagged = ", ".join(r["flagged"]) or "none"
        table.append([r["tool"], r["case"], fmt_num(r["seconds"], "s"), split,
                      fmt_num(r["peak_mb"], "MB"), fmt_num(r["before_mb"], "MB"), ratio, memory,
                      flagged])
    print_table(
        f"data drift, {rows:,} rows x 20 columns (reference and window of equal size; "
        "ratios = Evidently / modelyard)",
        ["tool", "window", "time", "profile + drift", "peak RSS", "RSS with data",
         "time ratio", "memory ratio", "columns flagged"], table)
    for r in results:
        if r.get("error"):
            print(f"{r['tool']} ({r['case']}) error: {r['error']}")
    theirs = found.get(("evidently", "shifted"), {})
    if "flagged" in mine and "flagged" in theirs:
        missed = sorted(set(theirs["flagged"]) - set(mine["flagged"]))
        print(f"planted shifts: {', '.join(SHIFTED)}; flagged by Evidently but not by "
              f"modelyard: {', '.join(missed) or 'none'}")
    unshifted = found.get(("modelyard", "unshifted"), {})
    if "flagged" in unshifted:
        print(f"false alarms on the unshifted window: modelyard "
              f"{', '.join(unshifted['flagged']) or 'none'}", end="")
        peer = found.get(("evidently", "unshifted"), {})
        if "flagged" in peer:
            print(f"; Evidently {', '.join(peer['flagged']) or 'none'}", end="")
        print()
    if "scipy" in mine:
        print("largest |modelyard - scipy| on the shifted window: " + ", ".join(
            f"{k} {v:.2g}" for k, v in mine["scipy"].items()))
        print(f"profile size: {mine['profile_kb']:.0f} KB for 20 columns")


def summary(results: list[dict[str, Any]]) -> list[list[str]]:
    """Rows for run_all's summary: the targets at 1,000,000 rows."""
    rows: list[list[str]] = []
    found = {(r["tool"], r["case"], r["rows"]): r for r in results}
    size = max(r["rows"] for r in results) if results else 0
    mine = found.get(("modelyard", "shifted", size), {})
    theirs = found.get(("evidently", "shifted", size), {})
    unshifted = found.get(("modelyard", "unshifted", size), {})
    if "seconds" in mine and "seconds" in theirs:
        ratio = theirs["seconds"] / mine["seconds"]
        memory = theirs["peak_mb"] / mine["peak_mb"]
        at_size = size >= SIZES[-1]  # the time and memory targets are set at 1,000,000 rows

        def verdict(ok: bool) -> str:
            return ("met" if ok else "NOT met") if at_size else f"(target at {SIZES[-1]:,})"

        rows.append([f"drift {size:,} x 20: time", f"{ratio:.1f}x faster",
                     f">= {TIME_TARGET:g}x", verdict(ratio >= TIME_TARGET)])
        rows.append([f"drift {size:,} x 20: peak memory", f"{memory:.2f}x less",
                     f">= {MEMORY_TARGET:g}x", verdict(memory >= MEMORY_TARGET)])
        missed = sorted(set(theirs["flagged"]) - set(mine["flagged"]))
        rows.append([f"drift {size:,} x 20: Evidently's flags also flagged",
                     f"missed: {', '.join(missed) or 'none'}", "none missed",
                     "met" if not missed else "NOT met"])
    if "flagged" in unshifted:
        rows.append([f"drift {size:,} x 20: false alarms (unshifted)",
                     ", ".join(unshifted["flagged"]) or "none", "none",
                     "met" if not unshifted["flagged"] else "NOT met"])
    if "scipy" in mine:
        worst = max(mine["scipy"].values())
        rows.append([f"drift {size:,} x 20: statistics vs scipy", f"max diff {worst:.2g}",
                     "<= 0.005", "met" if worst <= 0.005 else "NOT met"])
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    """Entry point for run_all: both sizes (only 100,000 rows with ``quick``)."""
    sizes = SIZES[:1] if quick else SIZES
    results: list[dict[str, Any]] = []
    for rows in sizes:
        results += run_size(rows, with_evidently=True, unshifted_peer=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append",
                        help="rows per frame (repeatable; default 100000 and 1000000)")
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--no-unshifted-peer", action="store_true",
                        help="run Evidently on the shifted window only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        folder = Path(args.data).resolve()
        if args.worker == "modelyard":
            worker_modelyard(folder, args.case)
        elif args.worker == "evidently":
            worker_evidently(folder, args.case)
        else:
            raise SystemExit(f"unknown worker {args.worker}")
        return
    if not args.no_evidently:
        peer = evidently_python()
        print(f"evidently {package_version(peer, 'evidently')} (pandas "
              f"{package_version(peer, 'pandas')}); modelyard "
              f"{package_version(modelyard_python(), 'modelyard')} (pandas "
              f"{package_version(modelyard_python(), 'pandas')})", flush=True)
    results: list[dict[str, Any]] = []
    for rows in args.rows or SIZES:
        results += run_size(rows, not args.no_evidently, not args.no_unshifted_peer)
    print_table("Summary against the targets", ["claim", "measured", "target", "result"],
                summary(results))
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    out = WORK_DIR / "drift-results.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"raw figures: {out}")


if __name__ == "__main__":
    main()
