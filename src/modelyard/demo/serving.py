"""The demo's serving step: the champion served over HTTP, asked by entity key, and a new
version promoted while requests flow.

A real server (the same app ``modelyard serve claims-model@production`` runs, under uvicorn
on a free port of 127.0.0.1) answers a few hundred new claims, filed now on the demo's clock
by customers who claimed in the months kept for monitoring. Each request names only the
customer and what the claim itself says: the server looks the customer's profile and claim
history up in the online store and computes the request-time feature (days since the
previous claim) itself. The server judges the features' TTL on the demo's clock
(:mod:`~modelyard.demo.clock`), so they are fresh on any date. A third of the way through,
another version is promoted; the server swaps it in between requests, and the step counts
what failed. Last, it reads its own answers back from the prediction log (by the wall-clock
interval it served in) to count the features the server really computed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelyard.demo.candidates import CLAIM_FEATURES
from modelyard.demo.registry import ALIAS, MODEL
from modelyard.demo.state import DemoState, need

if TYPE_CHECKING:
    import pandas as pd

CLIENTS = 4
REQUESTS = 300
PATH = f"/v1/models/{MODEL}/predict"
DAYS_SINCE = "days_since_last_claim"  # the feature the server computes per request


@dataclass
class LiveOutcome:
    """What the clients saw."""

    requests: int = 0
    failures: list[str] = field(default_factory=list)
    versions: Counter[int] = field(default_factory=Counter)  # answers per version
    latencies_ms: list[float] = field(default_factory=list)
    promoted: tuple[int | None, int] | None = None  # from, to
    forced: bool = False
    example: dict[str, Any] = field(default_factory=dict)  # a request and its answer
    skipped: str | None = None  # why the step did not run
    statuses: Counter[str] = field(default_factory=Counter)  # lookup status per answer
    features_at: datetime | None = None  # the demo's now as serving began: TTLs judged then
    began: datetime | None = None  # the wall-clock interval the server answered in
    ended: datetime | None = None
    logged: int = 0  # of this step's answers, found in the prediction log
    computed: int = 0  # of those, with days_since_last_claim computed (not null)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else 0.0


def claim_requests(claims: pd.DataFrame, start: pd.Timestamp, n: int, seed: int,
                   filed_at: datetime) -> list[dict[str, Any]]:
    """Entity rows for ``n`` new claims filed at ``filed_at`` by customers who claimed
    from ``start`` on, with the details of one of those claims: the customer, what the claim
    says and its time (what a claims system knows when a claim is filed)."""
    later = claims[claims["event_time"] >= start]
    chosen = later.sample(min(n, len(later)), random_state=seed).sort_values("event_time")
    rows = []
    for claim in chosen.itertuples(index=False):
        row: dict[str, Any] = {"customer_id": int(claim.customer_id),
                               "event_time": filed_at.isoformat(timespec="seconds")}
        for name in CLAIM_FEATURES:
            value = getattr(claim, name)
            row[name] = int(value) if name == "police_report" else (
                value.item() if hasattr(value, "item") else value)
        rows.append(row)
    return rows


@contextlib.contextmanager
def running_server(state: DemoState) -> Iterator[int]:
    """A real server of ``claims-model@production`` (the app ``modelyard serve`` runs, under
    uvicorn on a free port of 127.0.0.1) that logs its answers, judges TTLs on the demo's
    clock and swaps versions when the alias moves; yields its port. Raises ImportError when
    the server extra is not installed."""
    import uvicorn

    from modelyard.server.app import create_app
    from modelyard.serving.metrics import ServingMetrics
    from modelyard.serving.service import ModelServer

    yard = state.yard
    server = ModelServer(yard, [f"{MODEL}@{ALIAS}"], poll_interval=0.2,
                         metrics=ServingMetrics(), sink=yard.prediction_log.log_answer,
                         failure_sink=yard.prediction_log.log_failure,
                         clock=state.clock.now)
    server.load_all()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    web = uvicorn.Server(uvicorn.Config(create_app(yard, models=server), log_level="error",
                                        lifespan="on"))
    thread = threading.Thread(target=web.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_ready(web)
        yield port
    finally:
        web.should_exit = True
        thread.join(timeout=30)
        sock.close()
        yard.prediction_log.flush(timeout=30)


def ask(conn: http.client.HTTPConnection, row: dict[str, Any]) -> tuple[int, Any]:
    """Send one claim by entity key; the HTTP status and the decoded answer."""
    conn.request("POST", PATH, json.dumps({"entities": [row]}),
                 {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def serve_live(state: DemoState, progress: Callable[[str], None]) -> None:
    """Serve production, send the requests from several clients, promote midway."""
    outcome = LiveOutcome()
    state.live = outcome
    missing = missing_server_module()
    if missing is not None:
        outcome.skipped = f"serving needs the server extra ({missing} is not installed)"
        return
    yard, registry = state.yard, need(state.registry, "registry outcome")
    current, successor = _versions(yard, registry)
    if current is None or successor is None:
        outcome.skipped = "the registry step left fewer than two versions to serve"
        return
    split, data = need(state.split, "split"), need(state.data, "data")
    requests = claim_requests(data.claims, split.valid_end, REQUESTS, state.config.seed,
                              filed_at=state.clock.now())
    progress("loading the champion")
    try:
        with running_server(state) as port:
            progress(f"{len(requests)} requests by entity key from {CLIENTS} clients")
            outcome.features_at = state.clock.now()
            outcome.began = datetime.now(UTC)
            _traffic(state, outcome, port, requests, current, successor, progress)
    finally:
        outcome.ended = datetime.now(UTC)
    _count_computed(yard, outcome)
    state.parent.log_metrics({"serving_requests": outcome.requests,
                              "serving_failures": len(outcome.failures),
                              "serving_p50_ms": outcome.percentile(50),
                              "serving_p99_ms": outcome.percentile(99),
                              "serving_lookups_found": outcome.statuses.get("found", 0),
                              "serving_days_since_computed": outcome.computed})


def missing_server_module() -> str | None:
    """The first library of the server extra that is not installed, if any."""
    import importlib.util

    return next((name for name in ("uvicorn", "starlette", "orjson")
                 if importlib.util.find_spec(name) is None), None)


def _versions(yard: Any, registry: Any) -> tuple[int | None, int | None]:
    """The version production holds (promoting the first one when none does), and the
    version to promote while requests flow."""
    holder = yard.models.aliases(MODEL).get(ALIAS)
    numbers = [a.version for a in registry.attempts]
    if holder is None and numbers:
        yard.models.promote(MODEL, numbers[0], ALIAS, force=True,
                            reason="demo: no version passed the gates at this data size")
        holder = numbers[0]
    passed = [a.version for a in registry.attempts if a.promoted and a.version != holder]
    others = [n for n in numbers if n != holder]
    return holder, (passed or others or [None])[-1]


def _count_computed(yard: Any, outcome: LiveOutcome) -> None:
    """How many of the step's answers the log holds, and in how many the server computed
    the days since the last claim (null when the claim history was missing or expired)."""
    if outcome.began is None or outcome.ended is None:
        return
    logged = yard.read_predictions(MODEL, start=outcome.began, end=outcome.ended)
    column = f"features.{DAYS_SINCE}"
    outcome.logged = len(logged)
    outcome.computed = int(logged[column].notna().sum()) if column in logged else 0


def _wait_ready(web: Any) -> None:
    deadline = time.monotonic() + 30
    while not web.started:
        if time.monotonic() > deadline:
            raise TimeoutError("the demo's server did not start in 30 s")
        time.sleep(0.02)


def _traffic(state: DemoState, outcome: LiveOutcome, port: int, requests: list[Any],
             current: int, successor: int, progress: Callable[[str], None]) -> None:
    from modelyard.errors import GateFailedError

    lock = threading.Lock()
    sent = iter(requests)
    third = threading.Event()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while True:
                with lock:
                    item = next(sent, None)
                if item is None:
                    return
                row = item
                began = time.perf_counter()
                try:
                    status, body = ask(conn, row)
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    with lock:
                        outcome.failures.append(f"{type(exc).__name__}: {exc}")
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    continue
                elapsed = (time.perf_counter() - began) * 1000
                with lock:
                    outcome.requests += 1
                    if status != 200 or body["predictions"][0] is None:
                        outcome.failures.append(f"{status}: {body}")
                    else:
                        outcome.versions[body["version"]] += 1
                        outcome.statuses.update(body.get("status") or ["no status"])
                        outcome.latencies_ms.append(elapsed)
                        if not outcome.example:
                            outcome.example = {"request": row, "answer": body}
                    if outcome.requests >= len(requests) // 3:
                        third.set()
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    third.wait(timeout=60)
    progress(f"promoting {MODEL}:{successor} while requests flow")
    try:
        state.yard.models.promote(MODEL, successor, ALIAS, reason="demo: promoted live")
    except GateFailedError:
        state.yard.models.promote(MODEL, successor, ALIAS, force=True,
                                  reason="demo: promoted live (gates not met at this size)")
        outcome.forced = True
    outcome.promoted = (current, successor)
    for t in threads:
        t.join()
