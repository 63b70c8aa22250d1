"""Model serving: modelyard against MLflow and BentoML, the same scikit-learn forest.

    python bench/bench_serving.py             # 10 s per case (15 s for 1,000-row batches)
    python bench/bench_serving.py --quick     # 2 s per case, for trying the script out
    python bench/bench_serving.py --no-peers  # modelyard alone (and the floor)
    python bench/bench_serving.py --only modelyard,floor  # some of the servers

The model is ``RandomForestRegressor(n_estimators=100, random_state=0)`` fitted on 20,000
synthetic rows of 20 float features f0..f19 (fixed seed), trained once in the project's
interpreter and saved with joblib (bench/.work/serving/, reused while scikit-learn's version
is unchanged). Each tool loads that file in its own interpreter, with the same scikit-learn
version pinned in the peers' venvs:

- **MLflow** (bench/.venvs/mlflow): ``mlflow.sklearn.save_model`` of the forest, then
  ``mlflow models serve -m DIR --env-manager local -h 127.0.0.1 -p PORT`` (its default: one
  uvicorn worker); ``POST /invocations`` with ``{"dataframe_split": {...}}``.
- **BentoML** (bench/.venvs/bentoml): a 1.x ``@bentoml.service`` class whose
  ``@bentoml.api predict(input: np.ndarray)`` calls the forest, started with
  ``bentoml serve service:Forest`` (its default: one worker); ``POST /predict`` with
  ``{"input": [[...]]}``.
- **modelyard**: a scratch project where the forest is ``bench-forest`` version 1, promoted
  to ``production``, and the 20 features are also a feature group keyed by ``id``
  (materialized online); ``modelyard serve bench-forest@production --port PORT --workers W``
  with 1 and 2 workers; ``POST /v1/models/bench-forest/predict`` with ``{"instances": [...]}``
  or, by entity key, ``{"entities": [{"id": 42}]}``. Served twice: with the version's verified
  ONNX twin (``modelyard``), and with ``--no-onnx`` (``modelyard-no-twin``: the scikit-learn
  model itself, as a model that cannot be converted is served).
- **the floor**: a bare Starlette app under the same uvicorn (one worker, the same log level
  as ``modelyard serve``) whose ``POST /predict`` only parses the JSON body (``json.loads``)
  and answers a constant: what any Python server on this stack costs before it predicts.

Every server runs on 127.0.0.1 in its own session (stopped with its process group at the
end, even on error), is polled until it answers (at most 180 s), gets a warm-up load, and is
then driven by the closed-loop load generator (loadgen.py, its own process): single-row
requests at 1, 8 and 32 connections (requests/s, p50, p99, errors), and 1,000-row requests
at one connection. Before that, each tool's predictions for the same 50 rows are compared
with the joblib model's own.

Scratch files go to bench/.work/serving/ (the model, MLflow's model folder, BentoML's service
file, the modelyard project, request bodies), the servers' logs to
bench/.work/online/server-serving-*.log, the raw figures to bench/.work/serving-results.json
(bench/.work/results.json under run_all.py).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
from pathlib import Path
from typing import Any

from bench_online import Server, _descendants, free_port, post_json, tree_rss_mb
from common import (
    PEER_ENV,
    VENVS_DIR,
    WORK_DIR,
    ensure_peer_venv,
    ensure_venv,
    fresh_dir,
    modelyard_python,
    package_version,
    run_worker,
)
from loadgen import worker_loadgen
from serving_report import report, targets
from serving_tools import (
    Rows,
    Tool,
    activated,
    bento_body,
    compare,
    contract_problem,
    entities_body,
    instances_body,
    mlflow_body,
    pin_sklearn,
    predictions_of,
)
from serving_workers import (
    CHECK_ROWS,
    FLOOR_APP,
    GROUP,
    KEY,
    MODEL_NAME,
    SERVING_DIR,
    load_meta,
    worker_mlflow_save,
    worker_modelyard_prepare,
    worker_train,
    write_bento_service,
    write_floor_app,
)

CONCURRENCY = (1, 8, 32)
ENTITY_CONCURRENCY = (1, 8)
BATCH_ROWS = 1_000
BODY_POOL = 64  # distinct single-row bodies, cycled by the load generator
MODELYARD_WORKERS = (1, 2)
MODELYARD_RUNTIMES = (("modelyard", []), ("modelyard-no-twin", ["--no-onnx"]))
SHAPES = {
    "full": {"warmup": 2.0, "seconds": 10.0, "batch_seconds": 15.0, "server_warmup": 5.0},
    "quick": {"warmup": 0.5, "seconds": 2.0, "batch_seconds": 4.0, "server_warmup": 2.0},
}
BENTO_VENV = VENVS_DIR / "bentoml"
BENTO_ENV = {"BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": str(SERVING_DIR / "bentoml-home")}
PREDICT_PATH = f"/v1/models/{MODEL_NAME}/predict"


# --- worker dispatch -----------------------------------------------------------------------

def worker_main(args: argparse.Namespace) -> None:
    if args.worker == "train":
        worker_train(Path(args.data))
    elif args.worker == "mlflow-save":
        worker_mlflow_save(Path(args.data), Path(args.target))
    elif args.worker == "modelyard-prepare":
        worker_modelyard_prepare(Path(args.data), Path(args.target))
    elif args.worker == "loadgen":
        worker_loadgen(args.url, Path(args.bodies), args.concurrency, args.warmup,
                       args.seconds)
    else:
        raise SystemExit(f"unknown worker {args.worker}")


def call_worker(python: str, *args: str, env: dict[str, str] | None = None,
                timeout: float = 1800) -> dict[str, Any]:
    """A worker's result, or {"error": ...} when it failed (reported, not fatal)."""
    try:
        result: dict[str, Any] = run_worker(python, Path(__file__), *args, timeout=timeout,
                                            env=env)
    except Exception as exc:
        return {"error": str(exc)[-2500:]}
    return result


# --- the run -------------------------------------------------------------------------------

class Bench:
    def __init__(self, quick: bool, with_peers: bool, only: set[str] | None = None) -> None:
        self.quick, self.with_peers, self.only = quick, with_peers, only
        self.shape = SHAPES["quick" if quick else "full"]
        self.mine = modelyard_python()
        self.folder = SERVING_DIR / "model"
        self.results: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.versions: dict[str, str] = {}
        self.tools: list[Tool] = []
        self.servers: list[Server] = []
        self.meta: dict[str, Any] = {}
        self.modelyard_skipped: str | None = None
        self.bodies: dict[tuple[str, str], Path] = {}

    # -- set-up
    def setup(self) -> None:
        print("training the forest (once; reused while scikit-learn is unchanged)", flush=True)
        trained = call_worker(self.mine, "--worker", "train", "--data", str(self.folder))
        if "error" in trained:
            raise RuntimeError(f"training failed:\n{trained['error']}")
        self.meta = load_meta(self.folder)
        sklearn = self.meta["sklearn"]
        self.versions = {"modelyard": package_version(self.mine, "modelyard"),
                         "scikit-learn": sklearn}
        self._setup_modelyard()
        self._setup_floor()
        if self.with_peers:
            self._setup_mlflow(sklearn)
            self._setup_bento(sklearn)
        self._write_bodies()

    def _setup_mlflow(self, sklearn: str) -> None:
        try:
            python = ensure_peer_venv()
        except Exception as exc:
            self.notes.append(f"MLflow install failed: {exc}")
            return
        self._note(pin_sklearn(python, sklearn), "MLflow venv")
        self.versions["mlflow"] = package_version(python, "mlflow")
        self.versions["scikit-learn (MLflow venv)"] = package_version(python, "scikit-learn")
        target = SERVING_DIR / "mlflow-model"
        if not self._fresh(target / "MLmodel"):
            print("saving the forest with mlflow.sklearn.save_model", flush=True)
            saved = call_worker(python, "--worker", "mlflow-save", "--data", str(self.folder),
                                "--target", str(target), env=PEER_ENV)
            if "error" in saved:
                self.results.append({"kind": "error", "tool": "mlflow", "error": saved["error"]})
                return
        mlflow = str(Path(python).parent / "mlflow")
        self.tools.append(Tool(
            "mlflow", 1, [mlflow, "models", "serve", "-m", str(target), "--env-manager",
                          "local", "-h", "127.0.0.1", "-p", "{port}"],
            "/invocations", mlflow_body, env=activated(python, PEER_ENV)))

    def _setup_bento(self, sklearn: str) -> None:
        try:
            python = ensure_venv(BENTO_VENV, ["bentoml", f"scikit-learn=={sklearn}"],
                                 "bentoml, sklearn")
        except Exception as exc:
            self.notes.append(f"BentoML install failed: {exc}")
            return
        self._note(pin_sklearn(python, sklearn), "BentoML venv")
        self.versions["bentoml"] = package_version(python, "bentoml")
        self.versions["scikit-learn (BentoML venv)"] = package_version(python, "scikit-learn")
        service = write_bento_service(self.folder, SERVING_DIR / "bento")
        bentoml = str(Path(python).parent / "bentoml")
        self.tools.append(Tool(
            "bentoml", 1, [bentoml, "serve", "service:Forest", "--working-dir",
                           str(service.parent), "--host", "127.0.0.1", "-p", "{port}"],
            "/predict", bento_body, cwd=service.parent, env=activated(python, BENTO_ENV)))

    def _setup_floor(self) -> None:
        app = write_floor_app(SERVING_DIR / "floor")
        self.tools.append(Tool(
            "floor", 1, [self.mine, "-m", "uvicorn", f"{FLOOR_APP}:app", "--app-dir",
                         str(app.parent), "--host", "127.0.0.1", "--port", "{port}",
                         "--log-level", "info"],
            "/predict", instances_body))

    def _setup_modelyard(self) -> None:
        project = SERVING_DIR / "project"
        stamp = project / ".prepared"
        if not (stamp.exists() and stamp.read_text() == self._model_stamp()):
            print("preparing the modelyard project (feature group, register, promote)",
                  flush=True)
            project = fresh_dir("serving", "project")
            done = call_worker(self.mine, "--worker", "modelyard-prepare", "--data",
                               str(self.folder), "--target", str(project))
            if "error" in done:
                self.modelyard_skipped = done["error"]
                self.results.append({"kind": "error", "tool": "modelyard",
                                     "error": done["error"]})
                return
            stamp.write_text(self._model_stamp())
        modelyard = str(Path(self.mine).parent / "modelyard")
        ready = json.dumps({"features": [f"{GROUP}:f0"], "entities": {KEY: [0]}}).encode()
        for name, flags in MODELYARD_RUNTIMES:
            for workers in MODELYARD_WORKERS:
                self.tools.append(Tool(
                    name, workers, [modelyard, "serve", f"{MODEL_NAME}@production",
                                    "--port", "{port}", "--workers", str(workers), *flags],
                    PREDICT_PATH, instances_body, cwd=project,
                    ready=("/v1/features/online", ready),
                    started_line="Application startup complete."))

    def _model_stamp(self) -> str:
        return str((self.folder / "forest.joblib").stat().st_mtime_ns)

    def _fresh(self, path: Path) -> bool:
        """``path`` exists and is newer than the trained model."""
        return path.exists() and path.stat().st_mtime_ns >= int(self._model_stamp())

    def _note(self, problem: str | None, where: str) -> None:
        if problem:
            self.notes.append(f"{where}: {problem}")

    def _write_bodies(self) -> None:
        kept = self.meta["kept"]
        pool = [[i] for i in range(BODY_POOL)]
        shapes: dict[str, list[Rows]] = {
            "single": [[kept[i]] for i in range(BODY_POOL)],
            "batch": [kept[:BATCH_ROWS], kept[BATCH_ROWS:2 * BATCH_ROWS]],
        }
        for tool in {t.tool: t for t in self.tools}.values():
            for kind, rows_list in shapes.items():  # (the floor answers any body alike)
                self.bodies[(tool.tool, kind)] = self._bodies_file(
                    f"{tool.tool}-{kind}", [tool.body(rows) for rows in rows_list])
        for name, _ in MODELYARD_RUNTIMES:
            self.bodies[(name, "entity")] = self._bodies_file(
                f"{name}-entity", [entities_body(ids) for ids in pool])

    def _bodies_file(self, name: str, bodies: list[dict[str, Any]]) -> Path:
        path = SERVING_DIR / f"bodies-{name}.json"
        path.write_text(json.dumps([json.dumps(body) for body in bodies]))
        return path

    # -- the servers
    def start(self, tool: Tool) -> Server | None:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        url = base + tool.path
        probe = json.dumps(tool.body([self.meta["kept"][0]])).encode()
        ready_url, ready_probe = (url, probe) if tool.ready is None else (
            base + tool.ready[0], tool.ready[1])
        name = f"serving-{tool.tool}-{tool.workers}"
        print(f"starting {tool.label}", flush=True)
        try:
            server = Server(name, [c.replace("{port}", str(port)) for c in tool.command],
                            ready_url, ready_probe, cwd=tool.cwd, env=tool.env)
        except Exception as exc:
            self.results.append({"kind": "error", "tool": tool.tool, "workers": tool.workers,
                                 "error": str(exc)[-2500:]})
            print(f"{tool.label} did not start:\n{exc}", flush=True)
            return None
        self.servers.append(server)
        server.url = url
        if tool.started_line and not wait_for_workers(server, tool.started_line,
                                                      tool.workers):
            self.notes.append(f"{tool.label}: not every worker had started after 180 s")
        if tool.ready is not None:
            try:
                post_json(url, probe)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    self.modelyard_skipped = (
                        f"modelyard skipped: POST {tool.path} answered 404 "
                        f"({exc.read()[:300]!r}); the model endpoint is not served yet")
                    server.stop()
                    return None
                raise
        return server

    def check(self, tool: Tool, server: Server) -> None:
        """Each tool's predictions for the check rows against the joblib model's own."""
        cases: list[tuple[str, dict[str, Any]]] = [
            ("instances", tool.body(self.meta["kept"][:CHECK_ROWS]))]
        if tool.tool == "floor":
            return  # it predicts nothing
        if tool.tool.startswith("modelyard"):
            cases.append(("entities", entities_body(list(range(CHECK_ROWS)))))
        for path, body in cases:
            record: dict[str, Any] = {"kind": "check", "tool": tool.tool,
                                      "workers": tool.workers, "path": path}
            try:
                answer = post_json(server.url, json.dumps(body).encode(), timeout=120)
            except Exception as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"
            else:
                record.update(compare(self.meta["expected"], predictions_of(answer)))
                if tool.tool.startswith("modelyard") and isinstance(answer, dict):
                    record["contract"] = contract_problem(answer)
            self.results.append(record)

    def load(self, tool: Tool, server: Server, kind: str, concurrency: int, warmup: float,
             seconds: float) -> dict[str, Any]:
        cpu_before = tree_cpu_seconds(server.proc.pid)
        result = call_worker(
            self.mine, "--worker", "loadgen", "--url", server.url, "--bodies",
            str(self.bodies[(tool.tool, kind)]), "--concurrency", str(concurrency),
            "--warmup", str(warmup), "--seconds", str(seconds), timeout=600)
        spent = tree_cpu_seconds(server.proc.pid) - cpu_before
        if result.get("requests") and result.get("seconds"):
            # the server's CPU time (all its processes, warm-up included) per request: less
            # sensitive to the machine's load than throughput
            done = result["requests"] * (1 + warmup / result["seconds"])
            result["server_cpu_us_per_request"] = spent / done * 1e6
        result["server_rss_mb"] = tree_rss_mb(server.proc.pid)
        result["parent_rss_mb"] = process_rss_mb(server.proc.pid)
        return result

    def measure(self, tool: Tool, server: Server) -> None:
        shape = self.shape
        self.check(tool, server)
        warm = self.load(tool, server, "single", 8, 0.0, shape["server_warmup"])
        if warm.get("errors"):
            self.notes.append(f"{tool.label} warm-up: {warm['errors']} errors, e.g. "
                              f"{warm.get('error_sample')}")
        cases = [("single", c) for c in CONCURRENCY] + [("batch", 1)]
        if tool.tool == "modelyard":
            cases += [("entity", c) for c in ENTITY_CONCURRENCY]
        for kind, concurrency in cases:
            seconds = shape["batch_seconds"] if kind == "batch" else shape["seconds"]
            result = self.load(tool, server, kind, concurrency, shape["warmup"], seconds)
            record = {"kind": kind, "tool": tool.tool, "workers": tool.workers,
                      "concurrency": concurrency, "label": tool.label, **result}
            self.results.append(record)
            cpu = result.get("server_cpu_us_per_request")
            print(f"{tool.label} {kind} x{concurrency}: " + (
                f"{result['rps']:.1f} req/s, p50 {fmt_ms(result['p50_ms'])}, "
                f"p99 {fmt_ms(result['p99_ms'])}, {result['errors']} errors"
                + ("" if cpu is None else f", server CPU {cpu:,.0f} us/request")
                if "error" not in result else f"FAILED {result['error'][-500:]}"), flush=True)

    def describe_modelyard(self, tool: Tool, server: Server) -> None:
        import urllib.request

        url = server.url.removesuffix("/predict")
        try:
            with urllib.request.urlopen(url, timeout=30) as answer:
                described = json.loads(answer.read())
            primary = described["roles"]["primary"]
            self.versions[f"{tool.label} runtime"] = (
                f"{primary['runtime']}, micro-batched: {primary['micro_batched']}")
        except (OSError, KeyError, ValueError) as exc:
            self.notes.append(f"GET {url} failed: {exc}")

    def run(self) -> None:
        for tool in self.tools:
            if self.only is not None and tool.tool not in self.only:
                continue
            if tool.tool.startswith("modelyard") and self.modelyard_skipped:
                continue
            server = self.start(tool)
            if server is None:
                continue
            try:
                if tool.tool.startswith("modelyard"):
                    self.describe_modelyard(tool, server)
                self.measure(tool, server)
            finally:
                server.stop()

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU time of a server and every process it started, so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for one in _descendants(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def process_rss_mb(pid: int) -> float | None:
    """Resident set of one process alone (with workers: the parent that only watches them)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def wait_for_workers(server: Server, line: str, workers: int, limit: float = 180) -> bool:
    """Wait (at most ``limit`` seconds) until the server's log shows ``line`` once per
    worker, so that no worker is still loading the model when the clock starts."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if server.log.read_text(errors="replace").count(line) >= workers:
            return True
        time.sleep(0.5)
    return False


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def run(quick: bool = False, with_peers: bool = True,
        only: set[str] | None = None) -> list[dict[str, Any]]:
    if only is not None and not only & {"mlflow", "bentoml"}:
        with_peers = False
    bench = Bench(quick, with_peers, only)
    load_before = os.getloadavg()[0]
    try:
        bench.setup()
        bench.run()
    finally:
        bench.stop_all()
    load_after = os.getloadavg()[0]
    bench.results += targets(bench.results)
    report(bench.results, bench.notes, bench.modelyard_skipped, bench.shape)
    print(f"versions: {bench.versions}\nload average before {load_before:.2f}, after "
          f"{load_after:.2f} ({os.cpu_count()} cores)")
    for r in bench.results:
        r.update(versions=bench.versions, load_before=load_before, load_after=load_after)
    return bench.results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per case")
    parser.add_argument("--no-peers", action="store_true", help="modelyard only")
    parser.add_argument("--only", help="these servers only, e.g. modelyard,floor (of "
                                       "modelyard, modelyard-no-twin, floor, mlflow, bentoml)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    started = time.time()
    results = run(quick=args.quick, with_peers=not args.no_peers,
                  only=set(args.only.split(",")) if args.only else None)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    out = WORK_DIR / "serving-results.json"
    out.write_text(json.dumps({"results": results, "seconds": time.time() - started,
                               "cpus": os.cpu_count()}, indent=2, default=str))
    print(f"raw figures: {out}")


if __name__ == "__main__":
    main()
