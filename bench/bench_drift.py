"""Data drift: modelyard's reference profile and drift against Evidently's DataDriftPreset.

    python bench/bench_drift.py                      # both data sets, 100,000 and 1,000,000 rows
    python bench/bench_drift.py --data realistic --rows 1000000
    python bench/bench_drift.py --no-evidently       # modelyard only
    python bench/bench_drift.py --no-unshifted-peer  # Evidently on the shifted window only

Two data sets of 20 columns (see ``drift_data.py``): ``synthetic`` (15 numeric columns, 5 of
object strings) and ``realistic`` (floats and ints with missing values, a nullable
``Int64``, bools, pandas categories and 5 columns of pandas 3's ``str`` dtype with nulls, up
to 10,000 distinct values). The reference and two current windows have the same number of
rows: a *shifted* one with five planted changes and an *unshifted* one drawn from the
reference's distributions with another seed. They are written to Parquet once
(``bench/.work/drift/<data set>-<rows>/``) and every worker reads the same files.

Each measurement runs in a fresh subprocess: modelyard with the project's interpreter,
Evidently with its own (``bench/.venvs/evidently``, installed from PyPI on first use with a
pandas it can import). The clock starts with the frames in memory and the libraries
imported. modelyard is timed on both of its paths, one after the other in the same worker:
``build_profile(reference)`` then ``detect_drift(profile, current)`` (timed separately and
together), and ``compare_frames(reference, current)``, which profiles the reference and
reads its raw values too. Evidently runs ``Report([DataDriftPreset()]).run(current,
reference)`` with the numeric and categorical columns declared. Memory is the worker's peak
resident set (``VmHWM``, which includes the frames themselves; the resident set after
loading them is shown too). After the clock stops, the modelyard worker checks its
statistics against SciPy on the raw data: ``scipy.stats.wasserstein_distance`` divided by
the reference's standard deviation for numeric columns (from the profile's sketch and from
compare_frames' raw values), and ``scipy.spatial.distance.jensenshannon`` (base 2) on
pandas' category counts (the profile's categories, then every other value together).
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
from drift_data import DATASETS

EVIDENTLY_VENV = VENVS_DIR / "evidently"
# Evidently 0.7 imports pandas internals that pandas 3 removed: pin a pandas it supports.
EVIDENTLY_REQUIREMENTS = ["evidently", "pandas>=2.2,<3"]
EVIDENTLY_ENV = {"DO_NOT_TRACK": "true", "EVIDENTLY_DISABLE_TELEMETRY": "1"}
DRIFT_DIR = WORK_DIR / "drift"
SIZES = (100_000, 1_000_000)
TIME_TARGET = 30.0  # x faster than Evidently at 1,000,000 rows
MEMORY_TARGET = 2.0  # x less peak memory


# --- data ----------------------------------------------------------------------------------

def make_data(dataset: str, rows: int) -> Path:
    """Write reference.parquet, shifted.parquet and unshifted.parquet once."""
    folder = DRIFT_DIR / f"{dataset}-{rows}"
    if (folder / "unshifted.parquet").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    make = DATASETS[dataset].make
    for name, seed, shifted in (("reference", 1, False), ("shifted", 2, True),
                                ("unshifted", 3, False)):
        make(rows, seed, shifted).to_parquet(folder / f"{name}.parquet", index=False)
    return folder


# --- workers (each runs in its own process) ------------------------------------------------

def _read(folder: Path, name: str) -> Any:
    import pandas as pd

    return pd.read_parquet(folder / f"{name}.parquet")


def worker_modelyard(folder: Path, case: str) -> None:
    import scipy.spatial.distance  # imported before the clock, like Evidently
    import scipy.stats  # noqa: F401

    from modelyard.monitoring import build_profile, compare_frames, detect_drift

    reference, current = _read(folder, "reference"), _read(folder, case)
    before = peak_rss_mb()
    start = time.perf_counter()
    profile = build_profile(reference)
    built = time.perf_counter()
    report = detect_drift(profile, current)
    done = time.perf_counter()
    raw = compare_frames(reference, current)
    compared = time.perf_counter()
    peak = peak_rss_mb()
    columns = {r.column: {"test": r.test, "statistic": r.statistic, "threshold": r.threshold,
                          "drifted": r.drifted} for r in report.columns}
    emit({"seconds": done - start, "profile_seconds": built - start,
          "drift_seconds": done - built, "compare_seconds": compared - done,
          "peak_mb": peak, "before_mb": before,
          "flagged": list(report.drifted_columns), "dataset_drift": report.dataset_drift,
          "flagged_raw": list(raw.drifted_columns), "columns": columns,
          "profile_kb": len(profile.to_json()) / 1024,
          "scipy": _scipy_check(reference, current, report),
          "scipy_raw": _scipy_check(reference, current, raw)})


def _scipy_check(reference: Any, current: Any, report: Any) -> dict[str, Any]:
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
            exact = jensenshannon(_binned(reference[row.column], row.categories),
                                  _binned(current[row.column], row.categories), base=2)
            worst["jensenshannon"] = max(worst["jensenshannon"], abs(exact - row.statistic))
    return worst


def _binned(series: Any, categories: tuple[Any, ...]) -> Any:
    """pandas' counts of the profile's categories, then of every other present value (the
    profile keeps the 100 most frequent categories of a column)."""
    import numpy as np

    counts = series.value_counts()
    kept = counts.reindex(list(categories), fill_value=0).to_numpy(dtype=np.float64)
    return np.append(kept, counts.sum() - kept.sum())


def worker_evidently(folder: Path, case: str, dataset: str) -> None:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference, current = _read(folder, "reference"), _read(folder, case)
    spec = DATASETS[dataset]
    definition = DataDefinition(numerical_columns=spec.numeric,
                                categorical_columns=spec.categorical)
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


def measure(python: str, worker: str, folder: Path, case: str, dataset: str,
            env: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        result = run_worker(python, Path(__file__), "--worker", worker, "--data-dir",
                            str(folder), "--case", case, "--dataset", dataset, timeout=3600,
                            env=env)
    except Exception as exc:  # a peer that fails is reported, not fatal
        return {"tool": worker, "case": case, "error": str(exc)[-2000:]}
    return {"tool": worker, "case": case, **result}


def run_size(dataset: str, rows: int, with_evidently: bool, unshifted_peer: bool
             ) -> list[dict[str, Any]]:
    folder = make_data(dataset, rows)
    results = [measure(modelyard_python(), "modelyard", folder, case, dataset)
               for case in ("shifted", "unshifted")]
    if with_evidently:
        try:
            peer = evidently_python()
        except Exception as exc:
            results.append({"tool": "evidently", "case": "shifted",
                            "error": f"install failed: {exc}"})
        else:
            cases = ("shifted", "unshifted") if unshifted_peer else ("shifted",)
            results += [measure(peer, "evidently", folder, case, dataset, EVIDENTLY_ENV)
                        for case in cases]
    for result in results:
        result["rows"] = rows
        result["dataset"] = dataset
    report(dataset, rows, results)
    return results


def _ratio(theirs: dict[str, Any], mine: dict[str, Any], key: str) -> str:
    if key not in mine or "seconds" not in theirs:
        return "-"
    return f"{theirs['seconds'] / mine[key]:.1f}x"


def report(dataset: str, rows: int, results: list[dict[str, Any]]) -> None:
    found = {(r["tool"], r["case"]): r for r in results}
    planted = DATASETS[dataset].shifted
    table = []
    for r in results:
        if "seconds" not in r:
            table.append([r["tool"], r["case"], "failed"] + ["-"] * 8)
            continue
        split = compare = "-"
        mine = found.get(("modelyard", r["case"]), {})
        ratio = compare_ratio = memory = "-"
        if r["tool"] == "modelyard":
            split = f"{fmt_num(r['profile_seconds'], 's')} + {fmt_num(r['drift_seconds'], 's')}"
            compare = fmt_num(r["compare_seconds"], "s")
        elif "seconds" in mine:
            ratio = _ratio(r, mine, "seconds")
            compare_ratio = _ratio(r, mine, "compare_seconds")
            memory = f"{r['peak_mb'] / mine['peak_mb']:.1f}x"
        flagged = ", ".join(r["flagged"]) or "none"
        table.append([r["tool"], r["case"], fmt_num(r["seconds"], "s"), split, compare,
                      fmt_num(r["peak_mb"], "MB"), fmt_num(r["before_mb"], "MB"), ratio,
                      compare_ratio, memory, flagged])
    print_table(
        f"data drift, {dataset} data, {rows:,} rows x 20 columns (reference and window of "
        "equal size; ratios = Evidently / modelyard, same run)",
        ["tool", "window", "time", "profile + drift", "compare_frames", "peak RSS",
         "RSS with data", "x (profile+drift)", "x (compare_frames)", "memory ratio",
         "columns flagged"], table)
    for r in results:
        if r.get("error"):
            print(f"{r['tool']} ({r['case']}) error: {r['error']}")
    print(f"planted shifts: {', '.join(planted)}")
    for key, r in found.items():
        if "flagged" not in r:
            continue
        tool, case = key
        flags = [("", r["flagged"])]
        if "flagged_raw" in r:
            flags.append((" (compare_frames)", r["flagged_raw"]))
        for label, flagged in flags:
            if case == "shifted":
                missed = sorted(set(planted) - set(flagged))
                extra = sorted(set(flagged) - set(planted))
                print(f"  {tool}{label}, shifted: missed {', '.join(missed) or 'none'}; "
                      f"flagged besides the planted ones {', '.join(extra) or 'none'}")
            else:
                print(f"  {tool}{label}, unshifted: false alarms "
                      f"{', '.join(flagged) or 'none'}")
    mine = found.get(("modelyard", "shifted"), {})
    if "scipy" in mine:
        print("largest |modelyard - scipy| on the shifted window: profile path " + ", ".join(
            f"{k} {v:.2g}" for k, v in mine["scipy"].items()) + "; compare_frames " +
            ", ".join(f"{k} {v:.2g}" for k, v in mine["scipy_raw"].items()))
        print(f"profile size: {mine['profile_kb']:.0f} KB for 20 columns")


def summary(results: list[dict[str, Any]]) -> list[list[str]]:
    """Rows for run_all's summary: the targets at 1,000,000 rows, per data set."""
    rows: list[list[str]] = []
    found = {(r["tool"], r["case"], r["rows"], r.get("dataset", "synthetic")): r
             for r in results}
    for dataset in dict.fromkeys(r.get("dataset", "synthetic") for r in results):
        rows += _summary(found, dataset, max(r["rows"] for r in results
                                             if r.get("dataset", "synthetic") == dataset))
    return rows


def _summary(found: dict[Any, dict[str, Any]], dataset: str, size: int) -> list[list[str]]:
    rows: list[list[str]] = []
    planted = set(DATASETS[dataset].shifted)
    mine = found.get(("modelyard", "shifted", size, dataset), {})
    theirs = found.get(("evidently", "shifted", size, dataset), {})
    name = f"drift {dataset} {size:,} x 20"
    at_size = size >= SIZES[-1]  # the time and memory targets are set at 1,000,000 rows

    def verdict(ok: bool) -> str:
        return ("met" if ok else "NOT met") if at_size else f"(target at {SIZES[-1]:,})"

    if "seconds" in mine and "seconds" in theirs:
        for label, key in (("profile + drift", "seconds"), ("compare_frames",
                                                              "compare_seconds")):
            ratio = theirs["seconds"] / mine[key]
            rows.append([f"{name}: time, {label}", f"{ratio:.1f}x faster",
                         f">= {TIME_TARGET:g}x", verdict(ratio >= TIME_TARGET)])
        memory = theirs["peak_mb"] / mine["peak_mb"]
        rows.append([f"{name}: peak memory", f"{memory:.2f}x less", f">= {MEMORY_TARGET:g}x",
                     verdict(memory >= MEMORY_TARGET)])
    for tool in ("modelyard", "evidently"):
        shifted = found.get((tool, "shifted", size, dataset), {})
        if "flagged" in shifted:
            missed = sorted(planted - set(shifted["flagged"]))
            rows.append([f"{name}: {tool} flags the planted shifts",
                         f"missed: {', '.join(missed) or 'none'}", "none missed",
                         "met" if not missed else "NOT met"])
        unshifted = found.get((tool, "unshifted", size, dataset), {})
        if "flagged" in unshifted:
            rows.append([f"{name}: {tool} false alarms (unshifted)",
                         ", ".join(unshifted["flagged"]) or "none", "none",
                         "met" if not unshifted["flagged"] else "NOT met"])
    if "flagged" in mine and "flagged" in theirs:
        missed = sorted(set(theirs["flagged"]) - set(mine["flagged"]))
        rows.append([f"{name}: Evidently's flags also flagged",
                     f"missed: {', '.join(missed) or 'none'}", "none missed",
                     "met" if not missed else "NOT met"])
    if "scipy" in mine:
        worst = max([*mine["scipy"].values(), *mine["scipy_raw"].values()])
        rows.append([f"{name}: statistics vs scipy", f"max diff {worst:.2g}",
                     "<= 0.005", "met" if worst <= 0.005 else "NOT met"])
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    """Entry point for run_all: both data sets at both sizes (100,000 rows with ``quick``)."""
    sizes = SIZES[:1] if quick else SIZES
    results: list[dict[str, Any]] = []
    for dataset in DATASETS:
        for rows in sizes:
            results += run_size(dataset, rows, with_evidently=True, unshifted_peer=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append",
                        help="rows per frame (repeatable; default 100000 and 1000000)")
    parser.add_argument("--data", action="append", choices=sorted(DATASETS),
                        help="data set (repeatable; default both)")
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--no-unshifted-peer", action="store_true",
                        help="run Evidently on the shifted window only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        folder = Path(args.data_dir).resolve()
        if args.worker == "modelyard":
            worker_modelyard(folder, args.case)
        elif args.worker == "evidently":
            worker_evidently(folder, args.case, args.dataset)
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
    for dataset in args.data or list(DATASETS):
        for rows in args.rows or SIZES:
            results += run_size(dataset, rows, not args.no_evidently, not args.no_unshifted_peer)
    print_table("Summary against the targets", ["claim", "measured", "target", "result"],
                summary(results))
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    out = WORK_DIR / "drift-results.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"raw figures: {out}")


if __name__ == "__main__":
    main()
