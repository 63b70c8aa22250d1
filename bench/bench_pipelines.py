"""Pipelines: the overhead of running a training function as a modelyard pipeline, against
running it bare, as a Metaflow flow and as a ZenML pipeline, each run locally.

One training function (``pipelines_flows.TRAIN_FN``: a scikit-learn ``LogisticRegression``
on 2,000 rows x 10 features read from one ``.npz`` file, so that overhead dominates) is
copied into each tool's folder; each wrapper only calls it. Two variants: *score* (the fit's
score is kept: a modelyard metric, a Metaflow artifact, a ZenML step output) and *keep*
(the fitted model is kept as an artifact too).

Cold (what a command costs): each case is a fresh process, wall time, median of
``--repeats`` rounds after one warm-up round; the cases alternate within each round so the
machine's state is shared. The overhead of a case is its time minus the bare script's time
with the same interpreter (each peer has its own virtualenv, with the project's
scikit-learn version):

- ``bare``: ``python bare.py`` (the function, imports included);
- ``modelyard cli``: ``modelyard pipelines run bench_train`` (foreground, the installed
  command);
- ``modelyard api``: a script that ``connect()`` s and calls ``yard.pipelines.run``;
- ``modelyard queue+worker``: ``pipelines run --queue`` then ``worker --until-idle``
  (two processes, summed);
- ``metaflow``: ``python flow.py run`` (local datastore and metadata, bench/.venvs/metaflow);
- ``zenml``: ``python zen_run.py`` (default local orchestrator and SQLite store,
  ``enable_cache=False``, bench/.venvs/zenml).

Warm (what a long-lived process pays per run): one process per case repeats the call
``--warm`` times; median per run minus the bare function's median in the same kind of
process: ``yard.pipelines.run``, ``enqueue`` + a :class:`~modelyard.pipelines.worker.Worker`
taking it, a ZenML pipeline call. Metaflow has no in-process runner to time this way.

Run alone: ``python bench/bench_pipelines.py [--repeats 5] [--warm 10] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pipelines_flows as flows
from common import (
    BENCH_DIR,
    ROOT,
    VENVS_DIR,
    WorkerSession,
    ensure_venv,
    fmt_num,
    fresh_dir,
    machine_summary,
    median,
    modelyard_python,
    package_version,
    print_table,
)

TARGET_SECONDS = 0.5  # modelyard's overhead per run, and below each peer's
ROWS, COLUMNS = 2_000, 10
METAFLOW_VENV, ZENML_VENV = VENVS_DIR / "metaflow", VENVS_DIR / "zenml"
VARIANTS = ("score", "keep")


@dataclass
class Tool:
    """One interpreter and the folder its files live in."""

    name: str
    python: str
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # why it cannot run here


def _sklearn_version(python: str) -> str:
    return package_version(python, "scikit-learn")


def _check(args: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    done = subprocess.run(args, cwd=cwd, env={**os.environ, **env}, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}):\n"
                           f"{(done.stderr or done.stdout)[-2500:]}")


def modelyard_command(python: str) -> str:
    """The ``modelyard`` console script installed beside the interpreter."""
    return str(Path(python).parent / "modelyard")


def wall(args: list[str], tool: Tool) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the process and all it started) of a
    command."""
    cpu = _children_cpu()
    began = time.perf_counter()
    done = subprocess.run(args, cwd=tool.folder, env={**os.environ, **tool.env},
                          capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{tool.name}: {' '.join(args)} failed (exit {done.returncode}):\n"
                           f"{(done.stderr or done.stdout)[-2500:]}")
    return seconds, _children_cpu() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- set-up --------------------------------------------------------------------------------

def write_data(path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, COLUMNS))
    y = (x @ rng.normal(size=COLUMNS) + rng.normal(scale=0.5, size=ROWS) > 0).astype(int)
    np.savez(path, x=x, y=y)


def common_files(folder: Path, data: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train_fn.py").write_text(flows.TRAIN_FN)
    (folder / "bare.py").write_text(flows.BARE)
    (folder / "warm_bare.py").write_text(flows.WARM_BARE.format(bench=str(BENCH_DIR),
                                                                data=str(data)))


def setup_modelyard(work: Path, data: Path) -> Tool:
    python = modelyard_python()
    env = {"PYTHONPATH": str(ROOT / "src")}
    tool = Tool("modelyard", python, work / "modelyard", env)
    common_files(tool.folder, data)
    fmt = {"data": str(data), "bench": str(BENCH_DIR), "train_fn": flows.TRAIN_FN.strip()}
    (tool.folder / "pipelines.py").write_text(flows.MODELYARD_PIPELINE.format(**fmt))
    (tool.folder / "api_run.py").write_text(flows.MODELYARD_API.format(**fmt))
    (tool.folder / "warm_modelyard.py").write_text(flows.WARM_MODELYARD.format(**fmt))
    _check([modelyard_command(python), "init", "--name", "bench"], tool.folder, env,
           "modelyard init")
    _check([modelyard_command(python), "pipelines", "apply"], tool.folder, env,
           "modelyard pipelines apply")
    return tool


def setup_metaflow(work: Path, data: Path, sklearn: str) -> Tool:
    tool = Tool("metaflow", str(METAFLOW_VENV / "bin" / "python"), work / "metaflow")
    try:
        tool.python = ensure_venv(METAFLOW_VENV, ["metaflow", f"scikit-learn=={sklearn}"],
                                  "metaflow, sklearn")
    except Exception as exc:
        tool.problem = f"could not install Metaflow: {str(exc)[-600:]}"
        return tool
    common_files(tool.folder, data)
    (tool.folder / "flow.py").write_text(flows.METAFLOW_FLOW.format(data=str(data)))
    tool.env = {"METAFLOW_USER": "bench", "USERNAME": "bench",
                "METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_DEFAULT_METADATA": "local",
                "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(tool.folder)}
    return tool


def setup_zenml(work: Path, data: Path, sklearn: str) -> Tool:
    tool = Tool("zenml", str(ZENML_VENV / "bin" / "python"), work / "zenml")
    try:
        tool.python = ensure_venv(ZENML_VENV, ["zenml[local]", f"scikit-learn=={sklearn}"],
                                  "zenml, sklearn")
    except Exception as exc:
        tool.problem = f"could not install ZenML: {str(exc)[-600:]}"
        return tool
    common_files(tool.folder, data)
    (tool.folder / "zen_run.py").write_text(flows.ZENML_PIPELINE.format(data=str(data)))
    (tool.folder / "warm_zenml.py").write_text(flows.WARM_ZENML.format(bench=str(BENCH_DIR)))
    tool.env = {"ZENML_CONFIG_PATH": str(tool.folder / "zenml-config"),
                "ZENML_ANALYTICS_OPT_IN": "false", "ZENML_LOGGING_VERBOSITY": "WARN",
                "AUTO_OPEN_DASHBOARD": "false", "ZENML_ENABLE_RICH_TRACEBACK": "false"}
    zenml = str(Path(tool.python).parent / "zenml")
    try:
        _check([zenml, "init"], tool.folder, tool.env, "zenml init")
    except RuntimeError as exc:
        tool.problem = str(exc)[-800:]
    return tool


# --- the cases -----------------------------------------------------------------------------

def cold_cases(my: Tool, peers: list[Tool]) -> dict[str, tuple[Tool, list[list[str]]]]:
    """case -> (tool, the commands it runs per variant; "{keep}" is 0 or 1)."""
    py, cli = my.python, modelyard_command(my.python)
    cases: dict[str, tuple[Tool, list[list[str]]]] = {
        "bare (modelyard venv)": (my, [[py, "bare.py", "{data}"]]),
        "modelyard cli": (my, [[cli, "pipelines", "run", "bench_train",
                                "--param", "keep={keep_json}"]]),
        "modelyard api": (my, [[py, "api_run.py", "{keep}"]]),
        "modelyard queue+worker": (my, [
            [cli, "pipelines", "run", "bench_train", "--queue",
             "--param", "keep={keep_json}"],
            [cli, "worker", "--until-idle", "--poll", "0.05"]]),
    }
    for peer in peers:
        if peer.problem is not None:
            continue
        cases[f"bare ({peer.name} venv)"] = (peer, [[peer.python, "bare.py", "{data}"]])
        if peer.name == "metaflow":
            cases["metaflow"] = (peer, [[peer.python, "flow.py", "--quiet", "run",
                                         "--keep", "{keep}"]])
        else:
            cases["zenml"] = (peer, [[peer.python, "zen_run.py", "{keep}"]])
    return cases


Times = dict[str, list[tuple[float, float]]]  # case -> (wall, cpu) per round


def run_cold(cases: dict[str, tuple[Tool, list[list[str]]]], data: Path, variant: str,
             repeats: int) -> Times:
    keep = "1" if variant == "keep" else "0"
    fill = {"keep": keep, "keep_json": "true" if keep == "1" else "false", "data": str(data)}
    times: Times = {name: [] for name in cases}
    for round_ in range(repeats + 1):  # round 0 warms caches and first-run set-ups
        for name, (tool, commands) in cases.items():
            spent = [wall([part.format(**fill) for part in command], tool)
                     for command in commands]
            if round_:
                times[name].append((sum(w for w, _ in spent), sum(c for _, c in spent)))
        print(f"  cold {variant}: round {round_}/{repeats} done", flush=True)
    return times


def run_warm(my: Tool, zen: Tool | None, variant: str, repeats: int) -> Times:
    sessions = {
        "bare (modelyard venv)": WorkerSession(my.python, my.folder / "warm_bare.py",
                                               env=my.env, cwd=my.folder),
        "modelyard api": WorkerSession(my.python, my.folder / "warm_modelyard.py", "api",
                                       env=my.env, cwd=my.folder),
        "modelyard worker": WorkerSession(my.python, my.folder / "warm_modelyard.py",
                                          "worker", env=my.env, cwd=my.folder),
    }
    if zen is not None:
        sessions["bare (zenml venv)"] = WorkerSession(zen.python, zen.folder / "warm_bare.py",
                                                      env=zen.env, cwd=zen.folder)
        sessions["zenml"] = WorkerSession(zen.python, zen.folder / "warm_zenml.py",
                                          env=zen.env, cwd=zen.folder)
    times: Times = {name: [] for name in sessions}
    try:
        for round_ in range(repeats + 1):
            for name, session in sessions.items():
                spent_wall, spent_cpu = session.request(variant)
                if round_:
                    times[name].append((float(spent_wall), float(spent_cpu)))
    finally:
        for session in sessions.values():
            session.close()
    return times


# --- report --------------------------------------------------------------------------------

def overheads(times: Times, baseline_of: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for name, values in times.items():
        if name.startswith("bare"):
            continue
        base = times[baseline_of[name]]
        wall_s, cpu_s = median([w for w, _ in values]), median([c for _, c in values])
        base_wall, base_cpu = median([w for w, _ in base]), median([c for _, c in base])
        rows.append({"case": name, "median_s": wall_s, "baseline": baseline_of[name],
                     "baseline_s": base_wall, "overhead_s": wall_s - base_wall,
                     "cpu_s": cpu_s, "baseline_cpu_s": base_cpu,
                     "overhead_cpu_s": cpu_s - base_cpu, "runs": len(values)})
    return rows


def _ratio(peer: float, mine: float) -> str:
    return f"{peer / mine:.1f}x" if mine > 0 else "-"


def print_overheads(title: str, rows: list[dict[str, Any]]) -> None:
    peers = {r["case"]: r for r in rows if not r["case"].startswith("modelyard")}
    header = ["case", "wall", "bare", "overhead", "cpu overhead",
              *[f"{p} / it" for p in peers], *[f"{p} / it (cpu)" for p in peers]]
    table = []
    for r in rows:
        table.append([r["case"], fmt_num(r["median_s"], "s"), fmt_num(r["baseline_s"], "s"),
                      fmt_num(r["overhead_s"], "s"), fmt_num(r["overhead_cpu_s"], "s"),
                      *[_ratio(p["overhead_s"], r["overhead_s"]) for p in peers.values()],
                      *[_ratio(p["overhead_cpu_s"], r["overhead_cpu_s"])
                        for p in peers.values()]])
    print_table(title, header, table)


def baseline(name: str) -> str:
    if name.startswith("metaflow"):
        return "bare (metaflow venv)"
    if name.startswith("zenml"):
        return "bare (zenml venv)"
    return "bare (modelyard venv)"


def verdict(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    peers = {r["case"]: r["overhead_s"] for r in rows if not r["case"].startswith("modelyard")}
    for r in rows:
        if not r["case"].startswith("modelyard"):
            continue
        under = r["overhead_s"] < TARGET_SECONDS
        below = all(r["overhead_s"] < o for o in peers.values())
        lines.append(f"{r['case']}: overhead {r['overhead_s']:.3f} s "
                     f"({'<' if under else '>='} {TARGET_SECONDS} s"
                     + (f"; below every peer's: {'yes' if below else 'NO'}" if peers else "")
                     + ")")
    return lines


def summary(results: list[dict[str, Any]]) -> list[list[str]]:
    """Rows for run_all's summary: each modelyard case's overhead against the target."""
    rows = []
    for r in results:
        if r["mode"] == "info" or not r["case"].startswith("modelyard"):
            continue
        peers = [p for p in results if p["mode"] == r["mode"] and p.get("variant") ==
                 r["variant"] and not p["case"].startswith("modelyard")]
        below = all(r["overhead_s"] < p["overhead_s"] for p in peers)
        rows.append([f"pipelines ({r['mode']}, {r['variant']}): {r['case']} overhead",
                     f"{r['overhead_s']:.3f} s wall, {r['overhead_cpu_s']:.3f} s cpu",
                     f"< {TARGET_SECONDS} s and below each peer's",
                     "met" if r["overhead_s"] < TARGET_SECONDS and below else "NOT met"])
    return rows


def run(quick: bool = False, repeats: int = 5, warm: int = 10,
        variants: tuple[str, ...] = VARIANTS) -> list[dict[str, Any]]:
    if quick:
        repeats, warm = 2, 3
    work = fresh_dir("pipelines")
    data = work / "data.npz"
    write_data(data)
    my = setup_modelyard(work, data)
    sklearn = _sklearn_version(my.python)
    peers = [setup_metaflow(work, data, sklearn), setup_zenml(work, data, sklearn)]
    versions = {"modelyard": package_version(my.python, "modelyard"), "scikit-learn": sklearn}
    for peer in peers:
        if peer.problem is None:
            versions[peer.name] = package_version(peer.python, peer.name)
            versions[f"scikit-learn ({peer.name} venv)"] = _sklearn_version(peer.python)
        else:
            print(f"{peer.name} left out: {peer.problem}", flush=True)
    print("versions: " + "; ".join(f"{k} {v}" for k, v in versions.items()), flush=True)
    cases = cold_cases(my, peers)
    zen = next((p for p in peers if p.name == "zenml" and p.problem is None), None)
    results: list[dict[str, Any]] = []
    for variant in variants:
        cold = run_cold(cases, data, variant, repeats)
        rows = overheads(cold, {name: baseline(name) for name in cold})
        print_overheads(f"Cold ({variant}): a fresh process per run, median of {repeats}",
                        rows)
        for line in verdict(rows):
            print("  " + line)
        results += [{"mode": "cold", "variant": variant, **r} for r in rows]
        hot = run_warm(my, zen, variant, warm)
        rows = overheads(hot, {name: baseline(name) for name in hot})
        print_overheads(f"Warm ({variant}): one process, median of {warm} runs", rows)
        for line in verdict(rows):
            print("  " + line)
        results += [{"mode": "warm", "variant": variant, **r} for r in rows]
    results.append({"mode": "info", "versions": versions, "machine": machine_summary(),
                    "load_after": os.getloadavg()[0],
                    "left_out": {p.name: p.problem for p in peers if p.problem}})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="cold rounds (after a warm-up)")
    parser.add_argument("--warm", type=int, default=10, help="warm runs per case")
    parser.add_argument("--variant", choices=VARIANTS, action="append",
                        help="score and/or keep (default: both)")
    parser.add_argument("--quick", action="store_true", help="2 cold rounds, 3 warm runs")
    args = parser.parse_args()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in machine_summary().items()))
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    started = time.perf_counter()
    run(args.quick, args.repeats, args.warm, tuple(args.variant or VARIANTS))
    print(f"total {time.perf_counter() - started:.0f} s; load average after: "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
