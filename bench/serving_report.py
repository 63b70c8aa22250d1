"""The tables bench_serving.py prints, and its targets, from its result records."""

from __future__ import annotations

from typing import Any

from common import fmt_num, print_table

PEERS = (("mlflow", "MLflow"), ("bentoml", "BentoML"))
SINGLE_CONCURRENCY = (1, 8, 32)
MLFLOW_THROUGHPUT = 10.0  # modelyard / MLflow, at 8 and 32 connections
MLFLOW_P99 = 0.1  # modelyard / MLflow
ENTITY_ADDED_MS = 1.0
NO_TWIN_MLFLOW = 5.0  # modelyard without its ONNX twin / MLflow, 1-row throughput
FLOOR_SHARE = 0.5  # modelyard / the bare Starlette app, 1-row throughput
PARENT_RSS = 1.2  # the parent's RSS with 2 workers / one worker's whole server


def mine(tool: str) -> bool:
    return tool.startswith("modelyard")


def _measured(results: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in results if all(r.get(k) == v for k, v in match.items())
            and r.get("rps") and "error" not in r]


def _one(results: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    found = _measured(results, **match)
    return found[0] if found else None


def _best(results: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    """The modelyard configuration with the highest throughput in that case."""
    found = _measured(results, tool="modelyard", **match)
    return max(found, key=lambda r: r["rps"]) if found else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _mine_pairs(results: list[dict[str, Any]], **match: Any
                ) -> list[tuple[str, dict[str, Any]]]:
    """modelyard at one worker (the peers' default) and, when it differs, its best."""
    pairs = []
    one = _one(results, tool="modelyard", workers=1, **match)
    if one:
        pairs.append(("1 worker", one))
    best = _best(results, **match)
    if best and best["workers"] != 1:
        pairs.append((f"best: {best['workers']} workers", best))
    return pairs


def _connections(count: int) -> str:
    return f"{count} connection{'s' if count > 1 else ''}"


def _target(label: str, measured: str, target: str, met: bool) -> dict[str, Any]:
    return {"kind": "target", "label": label, "measured": measured, "target": target,
            "met": met}


def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The claims against the measured figures (only those that were measured)."""
    found: list[dict[str, Any]] = []
    for c in SINGLE_CONCURRENCY:
        mlflow = _one(results, kind="single", tool="mlflow", concurrency=c)
        bento = _one(results, kind="single", tool="bentoml", concurrency=c)
        for name, mine in _mine_pairs(results, kind="single", concurrency=c):
            if mlflow and c in (8, 32):
                rps = ratio(mine["rps"], mlflow["rps"])
                p99 = ratio(mine["p99_ms"], mlflow["p99_ms"])
                found.append(_target(
                    f"1-row throughput vs MLflow, {_connections(c)} (modelyard {name})",
                    fmt_ratio(rps), f">= {MLFLOW_THROUGHPUT:g}x",
                    rps is not None and rps >= MLFLOW_THROUGHPUT))
                found.append(_target(
                    f"1-row p99 vs MLflow, {_connections(c)} (modelyard {name})",
                    fmt_ratio(p99), f"<= {MLFLOW_P99:g}x",
                    p99 is not None and p99 <= MLFLOW_P99))
            if bento:
                rps = ratio(mine["rps"], bento["rps"])
                found.append(_target(
                    f"1-row throughput vs BentoML, {_connections(c)} (modelyard {name})",
                    fmt_ratio(rps), ">= 1x", rps is not None and rps >= 1))
    for c in SINGLE_CONCURRENCY:
        mlflow = _one(results, kind="single", tool="mlflow", concurrency=c)
        floor = _one(results, kind="single", tool="floor", concurrency=c)
        for workers in (1, 2):
            bare = _one(results, kind="single", tool="modelyard-no-twin", workers=workers,
                        concurrency=c)
            twin = _one(results, kind="single", tool="modelyard", workers=workers,
                        concurrency=c)
            if bare and mlflow and c in (8, 32):
                rps = ratio(bare["rps"], mlflow["rps"])
                found.append(_target(
                    f"1-row throughput without the ONNX twin vs MLflow, {_connections(c)} "
                    f"({workers} worker{'s' if workers > 1 else ''})", fmt_ratio(rps),
                    f">= {NO_TWIN_MLFLOW:g}x", rps is not None and rps >= NO_TWIN_MLFLOW))
            if twin and floor and workers == 1 and c in (8, 32):
                share = ratio(twin["rps"], floor["rps"])
                found.append(_target(
                    f"1-row throughput with the twin vs the bare Starlette floor, "
                    f"{_connections(c)} (1 worker)", fmt_ratio(share),
                    f">= {FLOOR_SHARE:g}x", share is not None and share >= FLOOR_SHARE))
    for name in ("modelyard", "modelyard-no-twin"):
        one = _one(results, kind="single", tool=name, workers=1, concurrency=32)
        two = _one(results, kind="single", tool=name, workers=2, concurrency=32)
        if one and two and one.get("server_rss_mb") and two.get("parent_rss_mb"):
            share = two["parent_rss_mb"] / one["server_rss_mb"]
            found.append(_target(
                f"{name}: the parent's RSS with 2 workers / one worker's server",
                fmt_ratio(share), f"< {PARENT_RSS:g}x", share < PARENT_RSS))
    for mlflow_batch in [_one(results, kind="batch", tool="mlflow")]:
        for name in ("modelyard", "modelyard-no-twin"):
            batch = _one(results, kind="batch", tool=name, workers=1)
            if batch and mlflow_batch:
                share = ratio(batch["p50_ms"], mlflow_batch["p50_ms"])
                found.append(_target(
                    f"{name}: 1,000-row p50 vs MLflow (1 worker)", fmt_ratio(share),
                    "<= 1x", share is not None and share <= 1))
    for workers, c, instances, entities in entity_pairs(results):
        if c != 1:
            continue
        added = entities["p50_ms"] - instances["p50_ms"]
        found.append(_target(
            f"entity-key path, p50 added, 1 connection ({workers} worker"
            f"{'s' if workers > 1 else ''})", f"{added:+.2f} ms",
            f"< {ENTITY_ADDED_MS:g} ms", added < ENTITY_ADDED_MS))
    return found


def entity_pairs(results: list[dict[str, Any]]
                 ) -> list[tuple[int, int, dict[str, Any], dict[str, Any]]]:
    pairs = []
    for entities in _measured(results, kind="entity", tool="modelyard"):
        instances = _one(results, kind="single", tool="modelyard",
                         workers=entities["workers"], concurrency=entities["concurrency"])
        if instances:
            pairs.append((entities["workers"], entities["concurrency"], instances, entities))
    return pairs


def _configs(results: list[dict[str, Any]]) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    for r in results:
        key = (r.get("tool", ""), r.get("workers", 0))
        if r.get("kind") == "single" and key not in seen:
            seen.append(key)
    return seen


def _label(tool: str, workers: int) -> str:
    return f"{tool} ({workers} worker{'s' if workers > 1 else ''})"


def report(results: list[dict[str, Any]], notes: list[str], skipped: str | None,
           shape: dict[str, float]) -> None:
    configs = _configs(results)
    for c in SINGLE_CONCURRENCY:
        peers = {tool: _one(results, kind="single", tool=tool, concurrency=c)
                 for tool, _ in PEERS}
        rows = []
        for tool, workers in configs:
            r = _one(results, kind="single", tool=tool, workers=workers, concurrency=c)
            if r is None:
                rows.append([_label(tool, workers), "failed", "-", "-", "-", "-",
                             "-", "-", "-", "-", "-"])
                continue
            cells = [_label(tool, workers), fmt_num(r["rps"], "req/s"),
                     fmt_num(r["p50_ms"], "ms"), fmt_num(r["p99_ms"], "ms"),
                     str(r["errors"]), fmt_num(r.get("server_rss_mb"), "MB")]
            for peer_tool, _ in PEERS:
                peer = peers[peer_tool]
                ours = mine(tool) and peer is not None
                cells += [fmt_ratio(ratio(r["rps"], peer["rps"])) if ours and peer else "-",
                          fmt_ratio(ratio(r["p99_ms"], peer["p99_ms"])) if ours and peer
                          else "-"]
            floor = _one(results, kind="single", tool="floor", concurrency=c)
            cells.append(fmt_ratio(ratio(r["rps"], floor["rps"])) if floor and mine(tool)
                         else "-")
            rows.append(cells)
        if rows:
            print_table(
                f"1-row requests, {c} closed-loop connection{'s' if c > 1 else ''} on "
                f"127.0.0.1 ({shape['seconds']:g} s after {shape['warmup']:g} s warm-up; "
                "ratios = modelyard / peer: throughput higher is better, p99 lower is better)",
                ["server", "throughput", "p50", "p99", "errors", "server RSS",
                 "thr. / MLflow", "p99 / MLflow", "thr. / BentoML", "p99 / BentoML",
                 "thr. / floor"], rows)

    rows = []
    peers = {tool: _one(results, kind="batch", tool=tool) for tool, _ in PEERS}
    for tool, workers in configs:
        r = _one(results, kind="batch", tool=tool, workers=workers)
        if r is None:
            continue
        cells = [_label(tool, workers), str(r["requests"]), fmt_num(r["p50_ms"], "ms"),
                 fmt_num(r["p99_ms"], "ms"), str(r["errors"])]
        for peer_tool, _ in PEERS:
            peer = peers[peer_tool]
            cells.append(fmt_ratio(ratio(r["p50_ms"], peer["p50_ms"]))
                         if mine(tool) and peer else "-")
        rows.append(cells)
    if rows:
        print_table(
            f"1,000-row requests, 1 connection ({shape['batch_seconds']:g} s; ratio = "
            "modelyard p50 / peer p50, lower is better)",
            ["server", "requests", "p50", "p99", "errors", "p50 / MLflow", "p50 / BentoML"],
            rows)

    rows = []
    for tool, workers in configs:
        r = _one(results, kind="single", tool=tool, workers=workers, concurrency=32)
        if r is not None and mine(tool):
            rows.append([_label(tool, workers), fmt_num(r.get("parent_rss_mb"), "MB"),
                         fmt_num(r.get("server_rss_mb"), "MB")])
    if rows:
        print_table("modelyard's memory after the 32-connection case (the process started, "
                    "and it with every process it started)",
                    ["server", "parent RSS", "whole server RSS"], rows)

    rows = [[str(workers), str(c), fmt_num(i["p50_ms"], "ms"), fmt_num(e["p50_ms"], "ms"),
             f"{e['p50_ms'] - i['p50_ms']:+.2f} ms", fmt_num(i["rps"], "req/s"),
             fmt_num(e["rps"], "req/s"), str(e["errors"])]
            for workers, c, i, e in entity_pairs(results)]
    if rows:
        print_table(
            "modelyard, 1 row by entity key ({\"entities\": [{\"id\": 42}]}: 20 features "
            "looked up online) against the same row's values ({\"instances\": [...]})",
            ["workers", "connections", "instances p50", "entities p50", "added p50",
             "instances thr.", "entities thr.", "entity errors"], rows)

    rows = []
    for r in (x for x in results if x.get("kind") == "check"):
        if "max_rel" not in r:
            rows.append([_label(r["tool"], r["workers"]), r["path"], "-", "-",
                         f"FAILED {r.get('error') or r.get('why')}"[:200]])
            continue
        verdict = ("same (<= 1e-9)" if r["same"] else
                   "float32 answers" if r["float32"] else "DIFFERENT")
        if r.get("contract"):
            verdict += f"; answer lacks {r['contract']}"
        rows.append([_label(r["tool"], r["workers"]), r["path"], f"{r['max_rel']:.2g}",
                     "yes" if r["float32"] else "no", verdict])
    if rows:
        print_table("predictions for the same 50 rows against the joblib model's own",
                    ["server", "request", "max relative difference", "float32 values",
                     "result"], rows)

    rows = [[r["label"], r["measured"], r["target"], "met" if r["met"] else "NOT met"]
            for r in results if r.get("kind") == "target"]
    if rows:
        print_table("targets", ["claim", "measured", "target", "result"], rows)
    if skipped:
        print(skipped if skipped.startswith("modelyard skipped") else
              f"modelyard skipped: {skipped[-1500:]}")
    for r in results:
        if "error" in r and r.get("kind") != "check":
            print(f"{r.get('kind')} {r.get('tool')} ({r.get('workers', '-')} workers): "
                  f"{r['error'][-1500:]}")
    for note in notes:
        print(note)
