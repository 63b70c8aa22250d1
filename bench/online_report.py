"""The tables bench_online.py prints from its results."""

from __future__ import annotations

from typing import Any

from common import fmt_num, print_table
from online_data import BATCHES, CONCURRENCY


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def _find(results: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for r in results:
        if all(r.get(k) == v for k, v in match.items()) and (
                "error" not in r or r.get("seconds") is not None):
            return r
    return None


def report(bench: Any) -> None:
    results, meta = bench.results, bench.meta
    rows = []
    for r in (x for x in results if x["kind"] == "materialize"):
        label = f"{r['tool']} {r['store']}"
        offline = r.get("offline", "")
        if r.get("seconds") is None:
            rows.append([label, offline, "failed", "-", "-", "-", "-", "-", "-"])
            continue
        mine = _find(results, kind="materialize", tool="modelyard", store=r["store"])
        rows.append([
            label, offline, fmt_num(r["seconds"], "s"), fmt_num(r["before_mb"], "MB"),
            fmt_num(r["peak_mb"], "MB"), fmt_num(r["peak_mb"] - r["before_mb"], "MB"),
            ratio(r["seconds"], mine["seconds"]) if mine else "-",
            ratio(r["peak_mb"], mine["peak_mb"]) if mine else "-",
            "yes" if r.get("same_values") else f"NO {r.get('why', '')}",
        ])
    print_table(
        f"materialization: {meta['rows']:,} rows, {meta['entities']:,} entities, 10 float64 "
        f"features (median of {bench.repeats}; ratios = this / modelyard on the same online "
        "store)",
        ["tool, online store", "offline", "time", "RSS before", "peak RSS", "growth",
         "time ratio", "peak ratio", f"latest values ({len(meta['sample'])} entities)"],
        rows,
    )
    if bench.ingest_seconds is not None:
        print(f"(modelyard: ingesting the history into its offline table beforehand, not "
              f"timed above, took {bench.ingest_seconds:.2f} s)")

    rows = []
    for batch in BATCHES:
        for store in ("sqlite", "redis"):
            feast = _find(results, kind="lookup", tool="feast", store=store, batch=batch)
            mine = _find(results, kind="lookup", tool="modelyard", store=store, batch=batch)
            if not feast and not mine:
                continue
            rows.append([
                f"{batch} x 10", store,
                fmt_num(feast and feast["p50_us"], "us"), fmt_num(feast and feast["p99_us"], "us"),
                fmt_num(mine and mine["p50_us"], "us"), fmt_num(mine and mine["p99_us"], "us"),
                ratio(feast and feast["p50_us"], mine and mine["p50_us"]),
                ratio(feast and feast["p99_us"], mine and mine["p99_us"]),
            ])
    print_table(
        f"in-process lookups, {meta['calls']:,} calls after {meta['warmup']} warm-up "
        "(.to_dict() included; ratio = Feast / modelyard)",
        ["entities x features", "store", "Feast p50", "Feast p99", "modelyard p50",
         "modelyard p99", "p50 ratio", "p99 ratio"],
        rows,
    )

    rows = []
    for batch in BATCHES:
        mine = _find(results, kind="http", tool="modelyard", batch=batch)
        for tool in ("modelyard", "feast"):
            r = _find(results, kind="http", tool=tool, batch=batch)
            if not r:
                continue
            rows.append([
                f"{batch} x 10", tool, fmt_num(r["rps"], "req/s"), fmt_num(r["p50_ms"], "ms"),
                fmt_num(r["p99_ms"], "ms"), str(r["errors"]),
                fmt_num(r.get("server_rss_mb"), "MB"),
                ratio(mine["rps"], r["rps"]) if mine else "-",
                ratio(r["p50_ms"], mine["p50_ms"]) if mine else "-",
                "yes" if r.get("same_values") else f"NO {r.get('why', '')}",
            ])
    if rows:
        print_table(
            f"HTTP, SQLite online store, {CONCURRENCY} closed-loop connections on 127.0.0.1 "
            "(throughput ratio = modelyard / this; p50 ratio = this / modelyard)",
            ["entities x features", "server", "throughput", "p50", "p99", "errors",
             "server RSS", "throughput ratio", "p50 ratio", "values"],
            rows,
        )
    for r in results:
        if "error" in r:
            print(f"{r['kind']} {r['tool']} {r.get('store', '')}: {r['error'][-1500:]}")
    for note in bench.notes:
        print(note)


