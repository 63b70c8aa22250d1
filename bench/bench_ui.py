"""Benchmark: the runs page in a real browser, modelyard's UI against MLflow's, same data.

Data (seeded, the same on both sides): ``N_RUNS`` runs in one experiment, each with params
``model``, ``alpha``, ``depth`` and four metrics (``loss``, ``rmse``, ``mae``, ``r2``)
logged at ``POINTS_PER_RUN / 4`` steps, so 10,000 runs hold 1,000,000 metric points
(``--quick``: 1,000 runs, 100,000 points). The last ``RECENT`` runs started have
``r2 <= 0.5``, so the filter ``metrics.r2 > 0.5`` must replace every row of the first page.

Populating (not timed, cached under ``bench/.work/ui/<size>/`` so reruns skip it): modelyard
through its own API (``yard.start_run`` / ``run.log_params`` / ``run.log_metrics`` per step,
the metrics buffered and written in bulk) into a project's SQLite store; MLflow through
``MlflowClient.create_run`` / ``log_batch`` (one batch per run: its params and its 100
points) / ``set_terminated`` into a SQLite backend, in MLflow's own venv
(``bench/.venvs/mlflow``). The two populate at the same time, in two processes.

Served: ``modelyard ui --path PROJECT`` and ``mlflow server --backend-store-uri
sqlite:///...`` (one worker each), both on 127.0.0.1.

Timed, in headless Chromium (Debian's ``chromium`` driven by Playwright; no downloaded
browser), one browser context per tool kept across repetitions (its HTTP cache warm, as
for someone who uses the UI), after one warm-up of each case; the tools take turns:

* first render: ``page.goto(runs page)`` until the runs table's rows are visible
  (modelyard: ``table.runs a.row-link``; MLflow: a run name link in its runs grid);
* filter round trip: type ``metrics.r2 > 0.5`` in the page's search box, press Enter, until
  the first filtered run (known from the data) is shown in the table.

The figure is the median per tool and case; the ratio is MLflow's median over modelyard's.

Run: ``python bench/bench_ui.py`` (``--quick`` for the small size, ``--repeats N``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import (
    PEER_ENV,
    ROOT,
    WORK_DIR,
    emit,
    ensure_peer_venv,
    fmt_num,
    median,
    modelyard_python,
    package_version,
    peer_python,
    print_table,
)

SEED = 20261205
POINTS_PER_RUN = 100
METRICS = ("loss", "rmse", "mae", "r2")
MODELS = ("ridge", "lasso", "forest", "boosting")
RECENT = 200  # the latest-started runs all fail the filter
API_RUNS = 1_000  # MLflow: runs logged through log_batch; the rest are cloned rows
EXPERIMENT = "ui-bench"
FILTER = "metrics.r2 > 0.5"
TARGET = 5.0
START_MS = 1_780_000_000_000  # a fixed calendar: run i starts at START_MS + i seconds
CASES = {"first": "first render of the runs page", "filter": f"filter round trip ({FILTER})"}

RunData = tuple[str, dict[str, str], list[dict[str, float]]]


def dataset(n_runs: int) -> Iterator[RunData]:
    """Each run's name, params and per-step metrics."""
    rng = random.Random(SEED)
    steps = POINTS_PER_RUN // len(METRICS)
    for i in range(n_runs):
        params = {"model": MODELS[rng.randrange(len(MODELS))],
                  "alpha": f"{rng.choice([0.001, 0.01, 0.1, 1.0])}",
                  "depth": str(rng.randrange(2, 12))}
        final = rng.random() * (0.5 if i >= n_runs - RECENT else 1.0)
        history = []
        for s in range(steps):
            progress = (s + 1) / steps
            r2 = final * progress
            loss = (1 - r2) + rng.random() * 0.01
            history.append({"loss": loss, "rmse": loss ** 0.5, "mae": loss * 0.8, "r2": r2})
        yield f"run-{i:05d}", params, history


def expected(n_runs: int) -> dict[str, Any]:
    """What the filter must show first (latest start first) and how many it matches."""
    hits = [name for name, _, history in dataset(n_runs) if history[-1]["r2"] > 0.5]
    return {"first_unfiltered": f"run-{n_runs - 1:05d}", "first_filtered": hits[-1],
            "matches": len(hits)}


# --- populating (workers) -------------------------------------------------------------------

def modelyard_populate(folder: Path, n_runs: int) -> None:
    import modelyard

    project = folder / "project"
    subprocess.run([modelyard_python(), "-c", "from modelyard.cli.app import main; main()",
                    "init", str(project)], check=True, capture_output=True)
    yard = modelyard.connect(project=project, capture_git=False)
    start = time.perf_counter()
    for i, (name, params, history) in enumerate(dataset(n_runs)):
        with yard.start_run(EXPERIMENT, name=name) as run:
            run.log_params(params)
            for step, values in enumerate(history):
                run.log_metrics(values, step=step, timestamp=START_MS + i * 1000 + step)
    yard.close()
    _fix_start_times(f"{project}", "modelyard", n_runs)
    emit({"populate_s": time.perf_counter() - start})


def mlflow_populate(folder: Path, n_runs: int) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    url = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=url)
    exp_id = client.create_experiment(EXPERIMENT,
                                      artifact_location=(folder / "artifacts").as_uri())
    start = time.perf_counter()
    runs = dataset(n_runs)
    run_id = ""
    for i, (name, params, history) in zip(range(API_RUNS), runs, strict=False):
        run_id = client.create_run(exp_id, start_time=START_MS + i * 1000,
                                   run_name=name).info.run_id
        metrics = [Metric(k, v, START_MS + i * 1000 + step, step)
                   for step, values in enumerate(history) for k, v in values.items()]
        client.log_batch(run_id, metrics=metrics,
                         params=[Param(k, v) for k, v in params.items()])
        client.set_terminated(run_id, end_time=START_MS + i * 1000 + 500)
    cloned = _clone_mlflow_runs(url, run_id, runs, start=API_RUNS)
    emit({"populate_s": time.perf_counter() - start, "experiment_id": exp_id,
          "api_runs": min(n_runs, API_RUNS), "cloned_runs": cloned})


def _clone_mlflow_runs(url: str, template_id: str, runs: Iterator[RunData], start: int
                       ) -> int:
    """The runs after the first ``API_RUNS`` as rows of MLflow's own tables, shaped like
    the template run that ``log_batch`` wrote (MLflow's SQLite store takes about 0.3 s per
    run through its API on this machine: 10,000 runs would take most of an hour)."""
    import uuid

    import sqlalchemy as sa

    engine = sa.create_engine(url)
    meta = sa.MetaData()
    names = ["runs", "tags", "params", "metrics", "latest_metrics"]
    tables = {n: sa.Table(n, meta, autoload_with=engine) for n in names}
    count = 0
    with engine.begin() as conn:
        base = {n: [dict(r) for r in conn.execute(sa.select(tables[n]).where(
            tables[n].c.run_uuid == template_id)).mappings()] for n in names}
        out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for i, (name, params, history) in enumerate(runs, start=start):
            run_id = uuid.uuid4().hex
            ts = START_MS + i * 1000
            for table, rows in base.items():
                for row in rows:
                    new = {k: v.replace(template_id, run_id) if isinstance(v, str) else v
                           for k, v in row.items()}
                    new["run_uuid"] = run_id
                    if table == "runs":
                        new.update(name=name, start_time=ts, end_time=ts + 500)
                    elif table == "tags" and row["key"] == "mlflow.runName":
                        new["value"] = name
                    elif table == "params":
                        new["value"] = params[row["key"]]
                    elif table in ("metrics", "latest_metrics"):
                        new["value"] = history[row["step"]][row["key"]]
                        new["timestamp"] = ts + row["step"]
                    out[table].append(new)
            count += 1
        for table, rows in out.items():
            if rows:
                conn.execute(tables[table].insert(), rows)
    engine.dispose()
    return count


def _fix_start_times(project: str, tool: str, n_runs: int) -> None:
    """modelyard stamps a run's start with the clock; give it the same calendar as MLflow's
    runs (run i at START_MS + i s), so that both tables list the same runs first."""
    import sqlite3

    db = next(Path(project).rglob("*.db"))
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE runs SET start_time = ? + 1000 * CAST(substr(name, 5) AS INTEGER), "
            "end_time = ? + 1000 * CAST(substr(name, 5) AS INTEGER) + 500 "
            "WHERE name LIKE 'run-%'", (START_MS, START_MS))
    del tool, n_runs


def populate(folder: Path, n_runs: int, tools: tuple[str, ...] = ("modelyard", "mlflow")
             ) -> dict[str, Any]:
    """Each store, built once per size (its ``done.json`` marks a complete build); the
    stores still missing are built at the same time, in two processes."""
    info: dict[str, Any] = {}
    procs: dict[str, subprocess.Popen[str]] = {}
    me = Path(__file__)
    for tool in tools:
        done = folder / tool / "done.json"
        if done.exists():
            info[tool] = json.loads(done.read_text())
            continue
        if done.parent.exists():
            shutil.rmtree(done.parent)
        done.parent.mkdir(parents=True)
        print(f"populating {tool}: {n_runs:,} runs x {POINTS_PER_RUN} points (once; cached "
              f"in {done.parent})", flush=True)
        python, env = ((modelyard_python(), _modelyard_env()) if tool == "modelyard"
                       else (peer_python(), {**os.environ, **PEER_ENV}))
        procs[tool] = subprocess.Popen(
            [python, str(me), "populate", tool, str(done.parent), str(n_runs)],
            stdout=subprocess.PIPE, text=True, env=env)
    for tool, proc in procs.items():
        out, _ = proc.communicate()
        lines = [x for x in out.splitlines() if x.startswith("BENCH-RESULT ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"populating {tool} failed (exit {proc.returncode})")
        info[tool] = json.loads(lines[-1][len("BENCH-RESULT "):])
        (folder / tool / "done.json").write_text(json.dumps(info[tool]))
    return info


def _modelyard_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    return env


# --- servers --------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server at {url} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def start_servers(folder: Path) -> tuple[dict[str, str], list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    port = _free_port()
    log = folder / "modelyard-ui.log"
    with log.open("wb") as out:
        procs.append(subprocess.Popen(
            [modelyard_python(), "-c", "from modelyard.cli.app import main; main()", "ui",
             "--path", str(folder / "modelyard" / "project"), "--port", str(port)],
            env=_modelyard_env(), stdout=out, stderr=subprocess.STDOUT))
    urls["modelyard"] = f"http://127.0.0.1:{port}"
    _wait_up(urls["modelyard"] + "/", procs[-1], log)
    port = _free_port()
    log = folder / "mlflow-server.log"
    mlflow_bin = str(Path(peer_python()).parent / "mlflow")
    with log.open("wb") as out:
        procs.append(subprocess.Popen(
            [mlflow_bin, "server", "--backend-store-uri",
             f"sqlite:///{folder / 'mlflow' / 'mlflow.db'}",
             "--default-artifact-root", (folder / "mlflow" / "artifacts").as_uri(),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env={**os.environ, **PEER_ENV}, stdout=out, stderr=subprocess.STDOUT))
    urls["mlflow"] = f"http://127.0.0.1:{port}"
    _wait_up(urls["mlflow"] + "/health", procs[-1], log)
    return urls, procs


# --- the browser ----------------------------------------------------------------------------

class Tool:
    """How one UI is driven: its runs page, its rows, its search box."""

    def __init__(self, name: str, page: Any, runs_url: str, row: str, search: str) -> None:
        self.name, self.page, self.runs_url = name, page, runs_url
        self.row, self.search = row, search

    def first_render(self, top: str) -> float:
        self.page.goto("about:blank")  # so that a hash route loads the whole page again
        start = time.perf_counter()
        self.page.goto(self.runs_url, wait_until="commit")
        self.page.locator(self.row, has_text=top).first.wait_for(state="visible")
        return time.perf_counter() - start

    def filter(self, top: str) -> float:
        box = self.page.locator(self.search).first
        box.wait_for(state="visible")
        box.fill(FILTER)
        start = time.perf_counter()
        box.press("Enter")
        self.page.locator(self.row, has_text=top).first.wait_for(state="visible")
        return time.perf_counter() - start


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise SystemExit("no chromium on PATH: apt-get install -y chromium")
    return found


def measure(urls: dict[str, str], exp_id: str, want: dict[str, Any], repeats: int,
            shots: Path) -> dict[str, dict[str, list[float]]]:
    from playwright.sync_api import sync_playwright

    times: dict[str, dict[str, list[float]]] = {t: {c: [] for c in CASES} for t in urls}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(),
                                             args=["--no-sandbox"])
        tools = []
        for name, url in urls.items():
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(180_000)
            if name == "modelyard":
                tools.append(Tool(name, page, f"{url}/runs?experiment={EXPERIMENT}&per=100",
                                  "table.runs a.row-link", "#filter"))
            else:
                tools.append(Tool(name, page, f"{url}/#/experiments/{exp_id}/runs?"
                                  + MLFLOW_STATE, MLFLOW_ROW, MLFLOW_SEARCH))
        for turn in range(repeats + 1):  # turn 0 is the warm-up
            order = tools if turn % 2 == 0 else list(reversed(tools))
            for tool in order:
                first = tool.first_render(want["first_unfiltered"])
                filtered = tool.filter(want["first_filtered"])
                if turn == 0:
                    shots.mkdir(parents=True, exist_ok=True)
                    tool.page.screenshot(path=str(shots / f"ui-bench-{tool.name}.png"))
                    continue
                times[tool.name]["first"].append(first)
                times[tool.name]["filter"].append(filtered)
        browser.close()
    return times


# MLflow's runs table is an ag-grid whose rows link the run name to the run's page; its
# search box is a combobox. The page keeps the last filter in the browser's storage, so the
# address names the unfiltered state (what MLflow itself redirects a bare address to).
MLFLOW_ROW = ".ag-row a[href*='/runs/']"
MLFLOW_SEARCH = "input[data-testid='search-box']"
MLFLOW_STATE = ("searchFilter=&orderByKey=attributes.start_time&orderByAsc=false"
                "&startTime=ALL&lifecycleFilter=Active&modelVersionFilter=All+Runs"
                "&datasetsFilter=W10%3D")


def run(quick: bool = False, repeats: int = 5) -> list[dict[str, Any]]:
    n_runs = 1_000 if quick else 10_000
    ensure_peer_venv()
    folder = WORK_DIR / "ui" / f"{n_runs}"
    info = populate(folder, n_runs)
    want = expected(n_runs)
    urls, procs = start_servers(folder)
    try:
        times = measure(urls, str(info["mlflow"]["experiment_id"]), want, repeats,
                        folder / "screenshots")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    rows, table = [], []
    for case, label in CASES.items():
        my, mlf = median(times["modelyard"][case]), median(times["mlflow"][case])
        ratio = mlf / my
        rows.append({"case": case, "modelyard_s": my, "mlflow_s": mlf, "ratio": ratio,
                     "samples": times})
        table.append([label, fmt_num(my * 1000, "ms"), fmt_num(mlf * 1000, "ms"),
                      f"{ratio:,.1f}x",
                      f">= {TARGET:g}x, {'met' if ratio >= TARGET else 'NOT met'}"])
    points = n_runs * POINTS_PER_RUN
    print_table(
        f"UI runs page in headless Chromium, {n_runs:,} runs / {points:,} metric points "
        f"(median of {repeats}; modelyard {package_version(modelyard_python(), 'modelyard')}"
        f", MLflow {package_version(peer_python(), 'mlflow')})",
        ["case", "modelyard", "MLflow", "ratio", "target"], table)
    print(f"populating (not timed): modelyard {info['modelyard']['populate_s']:.0f} s, "
          f"MLflow {info['mlflow']['populate_s']:.0f} s; the filter matches "
          f"{want['matches']:,} runs")
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "populate":
        populator = modelyard_populate if sys.argv[2] == "modelyard" else mlflow_populate
        populator(Path(sys.argv[3]), int(sys.argv[4]))
    else:
        parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
        parser.add_argument("--quick", action="store_true",
                            help="1,000 runs and 100,000 points instead of 10,000 and 1M")
        parser.add_argument("--repeats", type=int, default=5)
        args = parser.parse_args()
        run(args.quick, args.repeats)
