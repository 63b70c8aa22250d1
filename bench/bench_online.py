"""The online feature store: modelyard against Feast, on SQLite and on Redis.

    python bench/bench_online.py             # 1,000,000 rows, 10,000 entities
    python bench/bench_online.py --quick     # 20,000 rows, 1,000 entities, fewer calls
    python bench/bench_online.py --no-feast  # modelyard alone
    python bench/bench_online.py --no-http   # skip the HTTP servers

The history holds 10,000 entities x 100 events (int64 key ``entity_id``, UTC ``event_time``,
10 float64 features f0..f9), in event-time order, in one Parquet file. Three measurements:

1. **Materialization** of the latest value of every entity into the online store: Feast's
   ``FeatureStore.materialize(start, end)`` over the whole range (a FileSource over the
   Parquet file, with its ``file`` (Dask) and its ``duckdb`` offline stores) and modelyard's
   ``yard.materialize(["stats"], at=...)`` as of an instant after the last event
   (the rows were ingested into its offline table beforehand, in another process). Time,
   resident set just before (``VmRSS``) and the worker's peak (``VmHWM``). Both stores
   must then hold the latest row of each entity: a sample of entities is read back and
   compared, value by value, with the Parquet file.
2. **In-process lookups**: 1,000 calls after a warm-up, 1 entity x 10 features and 100
   entities x 10 features, ``.to_dict()`` included: Feast's ``get_online_features`` and
   modelyard's ``online_features``. p50 and p99 per call.
3. **HTTP**: ``modelyard serve`` (``POST /v1/features/online``) and ``feast serve``
   (``POST /get-online-features``, one worker, no periodic worker restarts) on 127.0.0.1,
   driven by a closed-loop load generator in its own process: 8 connections, each sending its
   next request only after the previous answer. Requests per second, p50 and p99.

Every measurement runs in a fresh subprocess: modelyard with the project's interpreter,
Feast with its own (``bench/.venvs/feast``, ``feast[duckdb]`` from PyPI on first use, plus
``feast[redis]`` when it installs). Redis cases use 127.0.0.1:6379 (``BENCH_REDIS_URL``),
a fresh key prefix (modelyard) or project (Feast) each, deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from common import (
    WORK_DIR,
    emit,
    fresh_dir,
    median,
    modelyard_python,
    package_version,
    run_worker,
)
from loadgen import worker_loadgen
from online_data import (
    BATCHES,
    BODY_POOL,
    CONCURRENCY,
    FEAST_ENV,
    FEAST_REDIS_EXTRA,
    FEATURE_REFS,
    ONLINE_DIR,
    REDIS_URL,
    SIZES,
    check_values,
    ensure_feast,
    feast_bin,
    load_meta,
    make_data,
    truth,
)
from online_report import report
from online_workers import (
    _redis_host_port_db,
    modelyard_missing,
    modelyard_serve_missing,
    worker_feast_lookup,
    worker_feast_materialize,
    worker_feast_teardown,
    worker_modelyard_lookup,
    worker_modelyard_materialize,
    worker_modelyard_prepare,
)

# --- worker dispatch -----------------------------------------------------------------------

def worker_main(args: argparse.Namespace) -> None:
    folder = Path(args.data).resolve() if args.data else Path()
    kind = args.worker
    if kind == "feast-materialize":
        worker_feast_materialize(folder, Path(args.repo), args.store, args.offline,
                                 args.project)
    elif kind == "feast-lookup":
        worker_feast_lookup(folder, Path(args.repo), args.batch)
    elif kind == "feast-teardown":
        worker_feast_teardown(Path(args.repo))
    elif kind == "modelyard-probe":
        emit({"missing": modelyard_missing()})
    elif kind == "modelyard-prepare":
        worker_modelyard_prepare(folder, Path(args.repo), args.online_uri)
    elif kind == "modelyard-materialize":
        worker_modelyard_materialize(folder, Path(args.repo), args.online_uri)
    elif kind == "modelyard-lookup":
        worker_modelyard_lookup(folder, Path(args.repo), args.online_uri, args.batch)
    elif kind == "loadgen":
        worker_loadgen(args.url, Path(args.bodies), args.concurrency, args.warmup,
                       args.seconds)
    else:
        raise SystemExit(f"unknown worker {kind}")


def call_worker(python: str, *args: str, env: dict[str, str] | None = None,
                timeout: float = 3600) -> dict[str, Any]:
    """A worker's result, or {"error": ...} when it failed (reported, not fatal)."""
    try:
        result: dict[str, Any] = run_worker(python, Path(__file__), *args, timeout=timeout,
                                            env=env)
    except Exception as exc:
        return {"error": str(exc)[-2500:]}
    return result


# --- the parent: Redis clean-up ------------------------------------------------------------

def redis_delete(pattern: bytes) -> int | None:
    """Delete the keys matching ``pattern``; None when redis-py or the server is missing."""
    try:
        import redis
    except ImportError:
        return None
    try:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=pattern, count=10_000))
        for start in range(0, len(keys), 5_000):
            client.delete(*keys[start:start + 5_000])
        client.close()
    except redis.RedisError:
        return None
    return len(keys)


def redis_available() -> bool:
    host, port, _ = _redis_host_port_db()
    try:
        with socket.create_connection((host, port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# --- the parent: HTTP servers --------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def post_json(url: str, body: bytes, timeout: float = 30) -> Any:
    request = urllib.request.Request(url, data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())


def as_columns(answer: Any) -> dict[str, Any]:
    """A server's answer as {"entity_id": [...], "f0": [...], ...}: Feast's
    ``{"metadata": {"feature_names": [...]}, "results": [{"values": [...]}, ...]}`` or
    modelyard's ``{"features": [...], "rows": [{"entity_id": ..., "f0": ...}, ...]}``."""
    if not isinstance(answer, dict):
        return {}
    if "metadata" in answer and "results" in answer:
        names = answer["metadata"]["feature_names"]
        return {name.split(":")[-1].split("__")[-1]: r["values"]
                for name, r in zip(names, answer["results"], strict=True)}
    if isinstance(answer.get("rows"), list):
        columns: dict[str, list[Any]] = {}
        for row in answer["rows"]:
            for name, value in row.items():
                columns.setdefault(name.split(":")[-1], []).append(value)
        return columns
    return answer


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_rss_mb(pid: int) -> float | None:
    """Resident set of a server and every process it started."""
    total = 0
    for one in _descendants(pid):
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024 if total else None


class Server:
    """A server process in its own session, so that it and its workers stop together."""

    def __init__(self, name: str, command: list[str], url: str, probe: bytes,
                 cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.name, self.url = name, url
        ONLINE_DIR.mkdir(parents=True, exist_ok=True)
        self.log = ONLINE_DIR / f"server-{name}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=str(cwd) if cwd else None,
                env={**os.environ, **(env or {})}, start_new_session=True,
            )
        deadline = time.time() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({self.proc.returncode}):\n"
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            try:
                self.first = post_json(url, probe, timeout=10)
                return
            except OSError as exc:
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name} did not answer within 180 s:\n"
                                       f"{self.log.read_text(errors='replace')[-3000:]}"
                                       ) from exc
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


def http_case(server: Server, folder: Path, batch: int, quick: bool) -> dict[str, Any]:
    meta = load_meta(folder)
    shape = SIZES["quick" if quick else "full"]
    bodies = [json.dumps({"features": FEATURE_REFS, "entities": {"entity_id": ids}})
              for ids in meta["lookups"][str(batch)][:BODY_POOL]]
    bodies_file = ONLINE_DIR / f"bodies-{batch}.json"
    bodies_file.write_text(json.dumps(bodies))
    result = call_worker(
        modelyard_python(), "--worker", "loadgen", "--url", server.url, "--bodies",
        str(bodies_file), "--concurrency", str(CONCURRENCY), "--warmup",
        str(shape["http_warmup"]), "--seconds", str(shape["http_seconds"]), timeout=600,
    )
    result["server_rss_mb"] = tree_rss_mb(server.proc.pid)
    return result


# --- the run -------------------------------------------------------------------------------

class Bench:
    def __init__(self, size: str, with_feast: bool, with_http: bool) -> None:
        self.size, self.quick = size, size == "quick"
        self.with_feast, self.with_http = with_feast, with_http
        self.folder = make_data(size)
        self.meta = load_meta(self.folder)
        self.mine = modelyard_python()
        self.tag = uuid.uuid4().hex[:8]
        self.redis = redis_available()
        self.feast_python: str | None = None
        self.feast_redis = False
        self.notes: list[str] = []
        self.results: list[dict[str, Any]] = []
        self.feast_repos: dict[str, Path] = {}  # online store -> a materialized repo
        self.mine_projects: dict[str, tuple[Path, str]] = {}  # online store -> (folder, uri)
        self.redis_patterns: list[bytes] = []
        self.feast_redis_repos: list[Path] = []
        self.repeats = 1 if self.quick else 3
        self.modelyard_missing: str | None = None
        self.mine_project = Path()
        self.ingest_seconds: float | None = None

    # -- set-up
    def setup(self) -> None:
        probe = call_worker(self.mine, "--worker", "modelyard-probe")
        self.modelyard_missing = probe.get("missing") or probe.get("error")
        if self.modelyard_missing:
            print(self.modelyard_missing, flush=True)
        if not self.redis:
            self.notes.append(f"Redis at {REDIS_URL} is not answering: Redis cases skipped")
        if self.with_feast:
            try:
                self.feast_python, self.feast_redis = ensure_feast()
            except Exception as exc:
                self.notes.append(f"Feast install failed: {exc}")
                self.with_feast = False
            if self.with_feast and not self.feast_redis:
                self.notes.append(f"Feast Redis: not installed ({FEAST_REDIS_EXTRA} failed)")

    def materialize_cases(self) -> list[tuple[str, str, str]]:
        """(tool, online store, offline store) to materialize, in the order they alternate."""
        stores = ["sqlite", "redis"] if self.redis else ["sqlite"]
        cases = []
        if self.with_feast:
            cases += [("feast", store, offline) for store in stores
                      if store == "sqlite" or self.feast_redis for offline in ("file", "duckdb")]
        if not self.modelyard_missing:
            cases += [("modelyard", store, "delta") for store in stores]
        return cases

    # -- 1. materialization
    def materialize(self) -> None:
        """Each case ``repeats`` times into a brand-new online store, the cases taking turns;
        modelyard's offline table is written once beforehand, in its own process."""
        expected = truth(self.folder, self.meta["sample"])
        if self.modelyard_missing:
            self.results.append({"kind": "materialize", "tool": "modelyard",
                                 "store": "sqlite", "error": self.modelyard_missing})
        else:
            project = fresh_dir("online", self.size, "modelyard")
            prepared = call_worker(self.mine, "--worker", "modelyard-prepare", "--data",
                                   str(self.folder), "--repo", str(project), "--online-uri",
                                   f"sqlite:///{project / 'online.db'}")
            if "error" in prepared:
                self.modelyard_missing = prepared["error"]
                self.results.append({"kind": "materialize", "tool": "modelyard",
                                     "store": "sqlite", "error": prepared["error"]})
            else:
                self.mine_project = project
                self.ingest_seconds = prepared["ingest_seconds"]
        runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for turn in range(self.repeats):
            for case in self.materialize_cases():
                result = self._materialize_once(*case, turn)
                runs.setdefault(case, []).append(result)
                tool, store, offline = case
                if "error" in result:
                    print(f"materialize {tool} {store} ({offline}): FAILED\n"
                          f"{result['error']}", flush=True)
                    continue
                result.update(check_values(expected, result.pop("sample")))
                print(f"materialize {tool} {store} ({offline}) #{turn + 1}: "
                      f"{result['seconds']:.2f} s, peak {result['peak_mb']:.0f} MB, "
                      f"same values: {result['same_values']}", flush=True)
        for (tool, store, offline), found in runs.items():
            good = [r for r in found if "error" not in r]
            record: dict[str, Any] = {"kind": "materialize", "tool": tool, "store": store,
                                      "offline": offline, "runs": found}
            if not good:
                record["error"] = found[-1]["error"]
            else:
                for key in ("seconds", "before_mb", "before_peak_mb", "peak_mb"):
                    record[key] = median([r[key] for r in good])
                record["same_values"] = all(r["same_values"] for r in good)
                record["why"] = "; ".join(sorted({r["why"] for r in good if r["why"]}))
                if len(good) < len(found):
                    record["error"] = found[-1]["error"]
            self.results.append(record)

    def _materialize_once(self, tool: str, store: str, offline: str, turn: int
                          ) -> dict[str, Any]:
        name = f"{tool}-{store}-{offline}-{turn}"
        if tool == "feast":
            assert self.feast_python is not None
            repo = fresh_dir("online", self.size, name)
            project = "online_bench"
            if store == "redis":
                project = f"online_bench_{self.tag}_{len(self.feast_redis_repos)}"
                self.feast_redis_repos.append(repo)
            result = call_worker(
                self.feast_python, "--worker", "feast-materialize", "--data",
                str(self.folder), "--repo", str(repo), "--store", store, "--offline",
                offline, "--project", project, env=FEAST_ENV)
            if "error" not in result:
                self.feast_repos[store] = repo
            return result
        if store == "sqlite":
            uri = f"sqlite:///{fresh_dir('online', self.size, name) / 'online.db'}"
        else:
            prefix = f"bench_online_{self.tag}_{turn}"
            uri = f"{REDIS_URL}?prefix={prefix}"
            self.redis_patterns.append(prefix.encode() + b":*")
        result = call_worker(self.mine, "--worker", "modelyard-materialize", "--data",
                             str(self.folder), "--repo", str(self.mine_project),
                             "--online-uri", uri)
        if "error" not in result:
            self.mine_projects[store] = (self.mine_project, uri)
        return result

    # -- 2. in-process lookups
    def lookups(self) -> None:
        for batch in BATCHES:
            for store in ("sqlite", "redis"):
                if self.with_feast and store in self.feast_repos:
                    assert self.feast_python is not None
                    result = call_worker(
                        self.feast_python, "--worker", "feast-lookup", "--data",
                        str(self.folder), "--repo", str(self.feast_repos[store]), "--batch",
                        str(batch), env=FEAST_ENV)
                    self.results.append({"kind": "lookup", "tool": "feast", "store": store,
                                         "batch": batch, **result})
                if store in self.mine_projects:
                    project, uri = self.mine_projects[store]
                    result = call_worker(
                        self.mine, "--worker", "modelyard-lookup", "--data", str(self.folder),
                        "--repo", str(project), "--online-uri", uri, "--batch", str(batch))
                    self.results.append({"kind": "lookup", "tool": "modelyard",
                                         "store": store, "batch": batch, **result})

    # -- 3. HTTP
    def http(self) -> None:
        expected = truth(self.folder, self.meta["lookups"]["100"][0])
        probe = json.dumps({"features": FEATURE_REFS, "entities": {
            "entity_id": self.meta["lookups"]["100"][0]}}).encode()
        servers: list[tuple[str, str, Any]] = []
        serve_missing = modelyard_serve_missing(self.mine)
        if serve_missing and "sqlite" in self.mine_projects:
            self.results.append({"kind": "http", "tool": "modelyard", "store": "sqlite",
                                 "batch": 1, "error": serve_missing})
        elif "sqlite" in self.mine_projects:
            project, uri = self.mine_projects["sqlite"]
            command = [str(Path(self.mine).parent / "modelyard"), "serve", "--host",
                       "127.0.0.1", "--port", "{port}", "--workers", "1",
                       "--log-level", "warning"]  # no access log, as Feast's --no-access-log
            servers.append(("modelyard", "/v1/features/online",
                            (command, project, {"MODELYARD_ONLINE_URI": uri})))
        if self.with_feast and "sqlite" in self.feast_repos:
            assert self.feast_python is not None
            command = [feast_bin(self.feast_python), "-c", str(self.feast_repos["sqlite"]),
                       "serve", "-h", "127.0.0.1", "-p", "{port}", "--no-access-log",
                       "-w", "1", "--max-requests", "0"]
            servers.append(("feast", "/get-online-features",
                            (command, self.feast_repos["sqlite"], FEAST_ENV)))
        for tool, path, (command, cwd, env) in servers:
            port = free_port()
            url = f"http://127.0.0.1:{port}{path}"
            try:
                server = Server(tool, [c.replace("{port}", str(port)) for c in command], url,
                                probe, cwd=cwd, env=env)
            except Exception as exc:
                self.results.append({"kind": "http", "tool": tool, "store": "sqlite",
                                     "batch": 1, "error": str(exc)[-2500:]})
                print(f"{tool} server did not start:\n{exc}", flush=True)
                continue
            try:
                check = check_values(expected, as_columns(server.first))
                for batch in BATCHES:
                    result = http_case(server, self.folder, batch, self.quick)
                    self.results.append({"kind": "http", "tool": tool, "store": "sqlite",
                                         "batch": batch, **check, **result})
            finally:
                server.stop()

    # -- clean-up
    def cleanup(self) -> None:
        for repo in self.feast_redis_repos:
            done = call_worker(self.feast_python or sys.executable, "--worker",
                               "feast-teardown", "--repo", str(repo), env=FEAST_ENV)
            if "error" in done:
                self.notes.append(f"Feast teardown failed: {done['error'][-500:]}")
        patterns = [*self.redis_patterns, f"*online_bench_{self.tag}".encode()]
        for pattern in patterns if self.redis else []:
            redis_delete(pattern)
            left = redis_delete(pattern)
            if left:
                self.notes.append(f"{left} Redis keys matching {pattern!r} were left behind")


def run(quick: bool = False, with_feast: bool = True, with_http: bool = True
        ) -> list[dict[str, Any]]:
    bench = Bench("quick" if quick else "full", with_feast, with_http)
    load_before = os.getloadavg()[0]
    bench.setup()
    try:
        bench.materialize()
        bench.lookups()
        if with_http:
            bench.http()
    finally:
        bench.cleanup()
    report(bench)
    versions = {"modelyard": package_version(bench.mine, "modelyard")}
    if bench.feast_python:
        versions["feast"] = package_version(bench.feast_python, "feast")
        versions["redis-py (Feast venv)"] = package_version(bench.feast_python, "redis")
    versions["redis-py (modelyard venv)"] = package_version(bench.mine, "redis")
    load_after = os.getloadavg()[0]
    print(f"versions: {versions}\nload average before {load_before:.2f}, after "
          f"{load_after:.2f} ({os.cpu_count()} cores)")
    for r in bench.results:
        r.update(versions=versions, load_before=load_before, load_after=load_after)
    return bench.results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, fewer calls")
    parser.add_argument("--no-feast", action="store_true", help="modelyard only")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP servers")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--offline", help=argparse.SUPPRESS)
    parser.add_argument("--project", help=argparse.SUPPRESS)
    parser.add_argument("--online-uri", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    started = time.time()
    results = run(quick=args.quick, with_feast=not args.no_feast, with_http=not args.no_http)
    ONLINE_DIR.mkdir(parents=True, exist_ok=True)
    out = WORK_DIR / "online-results.json"
    out.write_text(json.dumps({"results": results, "seconds": time.time() - started,
                               "cpus": os.cpu_count()}, indent=2, default=str))
    print(f"raw figures: {out}")


if __name__ == "__main__":
    main()
