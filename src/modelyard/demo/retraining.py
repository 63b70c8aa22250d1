"""The demo's retraining: the alert that fatigue raised runs the project's pipeline, and its
candidate takes production on approval while a server answers.

Declared in the monitoring step (:func:`declare_retraining`): the project's ``pipelines.py``
is written from :mod:`~modelyard.demo.claims_pipelines` (an edited file there is kept as
``pipelines.py.bak``); the model's gates become those a retrained candidate must pass
against production on the claims its run holds out (the registry step's gates read the
validation months, which a candidate trained on later data is not scored on); the file is
applied, and its trigger names the error rule :data:`TRIGGER_RULE`.

Run (:func:`retrain`) once a monthly check's alert has queued a run: a
:class:`~modelyard.pipelines.worker.Worker`, the code ``modelyard worker`` runs, takes it
here; the run retrains, both versions are scored on the same held-out claims, and the
approval policy leaves a pending decision. A server of ``claims-model@production`` answers
claims while it waits; the demo approves by the command a person would type (``modelyard
models approve``, run as a separate process in the project), and the server swaps the new
version in. The time from the alert to the promotion is measured from the stored records.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import os
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.demo.files import write_project_file
from modelyard.demo.registry import MODEL
from modelyard.demo.serving import ask, claim_requests, missing_server_module, running_server
from modelyard.demo.state import DemoState, need

if TYPE_CHECKING:
    from modelyard.backends.metadata.decisions import DecisionRecord
    from modelyard.backends.metadata.pipelines import PipelineRunRecord
    from modelyard.demo.monitoring import Trigger
    from modelyard.registry.gates import Gate

PIPELINE = "claims_retrain"
PIPELINES_FILE = "pipelines.py"
TRIGGER_RULE = "rmse worse by 30%"  # as alerts name the rule; pipelines.py names it too
REQUESTS = 30  # claims asked of the server while the decision waits, and as many after
SWAP_TIMEOUT = 30.0  # seconds the server may take to swap the approved version in
APPROVAL_TIMEOUT = 300.0


def pipelines_text() -> str:
    """The source text of the demo's pipelines, as written to the project."""
    return resources.files("modelyard.demo").joinpath("claims_pipelines.py").read_text("utf-8")


def write_pipelines(root: Path) -> tuple[Path, Path | None]:
    """Write ``root/pipelines.py``; a different file already there is kept as ``.bak``."""
    return write_project_file(root, PIPELINES_FILE, pipelines_text())


def retraining_gates() -> list[Gate]:
    """What a retrained candidate must pass against production, both scored on the claims
    its run holds out: an rmse and a mean absolute error no worse than production's, and a
    signature production's callers can still use.

    The registry step's absolute gates (an r2 floor, an error gap between age bands in claim
    value) are not among them: one month's held-out claims (a few hundred at the smallest
    demo size, a few hundred young drivers at the largest) measure them too loosely, and
    they move by more than their bounds from one sample of claims to the next; a comparison
    of both versions on the very same claims does not."""
    from modelyard.registry.gates import RegressionGate, SignatureGate

    return [RegressionGate(("rmse", "mae")), SignatureGate()]


def declare_retraining(state: DemoState) -> int:
    """Write and apply the project's pipelines.py with the gates its candidates meet; the
    pipeline's stored version."""
    path, state.pipelines_backup = write_pipelines(state.root)
    state.pipelines_file = path
    state.yard.models.set_gates(MODEL, retraining_gates())
    changes = state.yard.pipelines.apply([path])
    return next(c.version for c in changes if c.name == PIPELINE)


@dataclass
class RetrainOutcome:
    """What the retraining did, as the stored records and the server's answers tell it."""

    skipped: str | None = None
    run: PipelineRunRecord | None = None
    pending: DecisionRecord | None = None  # the decision as the run left it
    final: DecisionRecord | None = None  # after the approval
    command: str = ""  # the approval, as a person types it
    approval_output: str = ""  # what the command printed
    approval_failed: bool = False
    answers: dict[str, Counter[int]] = field(default_factory=dict)  # before/after: by version
    failures: list[str] = field(default_factory=list)
    server_skipped: str | None = None
    swapped_at_ms: int | None = None  # the first answer by the approved version
    timeline: dict[str, int] = field(default_factory=dict)  # event -> epoch ms

    @property
    def alert_to_promotion(self) -> float | None:
        """Seconds from the alert to the version's promotion, from the stored records."""
        alert, promoted = self.timeline.get("alert"), self.timeline.get("promoted")
        return None if alert is None or promoted is None else (promoted - alert) / 1000


def retrain(state: DemoState, progress: Callable[[str], None]) -> None:
    """With a server of production answering, run the queued retraining, approve its
    pending candidate by command, watch the server swap it in, and time the chain from the
    alert."""
    outcome = RetrainOutcome()
    state.retrain = outcome
    watch = need(state.watch, "monitoring outcome")
    trigger = watch.trigger
    if trigger is None:
        outcome.skipped = watch.skipped or watch.collapsed or (
            f"no monthly check raised the alert '{TRIGGER_RULE}' that triggers {PIPELINE}")
        return
    if trigger.fired_at_ms is not None:
        outcome.timeline["alert"] = trigger.fired_at_ms
    missing = missing_server_module()
    if missing is not None:
        outcome.server_skipped = f"the server extra is not installed ({missing})"
        _run_and_approve(state, outcome, trigger.run_id, None, progress)
    else:
        progress("serving production")
        with running_server(state) as port:
            _run_and_approve(state, outcome, trigger.run_id, port, progress)
    run = need(outcome.run, "pipeline run")
    if outcome.final is not None and outcome.final.decision == "approved":
        promoted = outcome.final.decided_at_ms
        if promoted is not None:
            outcome.timeline["promoted"] = promoted
    seconds = outcome.alert_to_promotion
    if seconds is not None and run.started_at_ms is not None and run.ended_at_ms is not None:
        state.parent.log_metrics({"retraining_alert_to_promotion_s": seconds,
                                  "retraining_run_s": (run.ended_at_ms - run.started_at_ms)
                                  / 1000})
    answered = sum(sum(counts.values()) for counts in outcome.answers.values())
    state.parent.log_metrics({"retraining_server_answers": answered,
                              "retraining_server_failures": len(outcome.failures)})


def _run_and_approve(state: DemoState, outcome: RetrainOutcome, run_id: str,
                     port: int | None, progress: Callable[[str], None]) -> None:
    """Claims answered by the server while a worker runs the queued retraining; then, when
    the candidate waits for approval, the approval and claims until the server has
    answered as many with the approved version."""
    from modelyard.pipelines.worker import Worker

    yard = state.yard
    split, data = need(state.split, "split"), need(state.data, "data")
    requests = iter(claim_requests(data.claims, split.valid_end, 4 * REQUESTS,
                                   state.config.seed + 1, filed_at=state.clock.now()))
    asking = None
    if port is not None:  # a client asks production while the worker runs
        outcome.answers["before"] = Counter()
        asking = threading.Thread(target=_ask_all, args=(
            port, _take(requests, REQUESTS), outcome.answers["before"], outcome), daemon=True)
        asking.start()
    progress(f"a worker takes run {run_id[:8]} of {PIPELINE}")
    try:
        Worker(yard.pipelines, poll_seconds=0.1).run(until_idle=True)
    finally:
        if asking is not None:
            asking.join(timeout=60)
    run = outcome.run = yard.pipelines.get_run(run_id)
    outcome.timeline |= {k: v for k, v in (("queued", run.queued_at_ms),
                                           ("started", run.started_at_ms),
                                           ("ended", run.ended_at_ms)) if v is not None}
    decision = outcome.pending = yard.pipelines.decision(run.run_id)
    if decision is None or decision.decision != "pending":
        return
    outcome.timeline["decision"] = decision.created_at_ms
    _approve(state, outcome, decision, progress)
    outcome.final = yard.pipelines.decision(run.run_id)
    if port is not None and not outcome.approval_failed:
        progress(f"waiting for the server to swap version {decision.version} in")
        # a new connection: the server closes one left idle while the run went on
        with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=30)) as conn:
            outcome.answers["after"] = _until_swapped(conn, requests, decision.version,
                                                      outcome)


def _approve(state: DemoState, outcome: RetrainOutcome, decision: DecisionRecord,
             progress: Callable[[str], None]) -> None:
    """Approve the candidate with ``modelyard models approve``, in a process of its own in
    the project folder (as a person would), and keep what it printed."""
    ref = f"{decision.model}:{decision.version}"
    reason = _reason(decision, need(state.watch, "monitoring outcome").trigger)
    outcome.command = shlex.join(["modelyard", "models", "approve", ref, "--reason", reason])
    progress(f"$ {outcome.command}")
    outcome.timeline["approval asked"] = int(time.time() * 1000)
    done = subprocess.run(
        [sys.executable, "-m", "modelyard", "models", "approve", ref, "--reason", reason],
        cwd=state.root, capture_output=True, text=True, timeout=APPROVAL_TIMEOUT,
        env=os.environ.copy(), check=False)
    outcome.approval_output = (done.stdout + done.stderr).strip()
    outcome.approval_failed = done.returncode != 0


def _reason(decision: DecisionRecord, trigger: Trigger | None) -> str:
    ours, theirs = decision.candidate_metrics.get("rmse"), (
        decision.champion_metrics or {}).get("rmse")
    month = f" of {trigger.month}" if trigger is not None else ""
    if ours is None or theirs is None:
        return f"retrained after the alert{month}"
    return (f"rmse {ours:,.0f} against {theirs:,.0f} for version {decision.champion} on the "
            f"held-out claims{month}")


def _until_swapped(conn: http.client.HTTPConnection, requests: Iterator[dict[str, Any]],
                   version: int, outcome: RetrainOutcome) -> Counter[int]:
    """Ask claims until ``version`` has answered :data:`REQUESTS` of them (or
    :data:`SWAP_TIMEOUT` passes); the answers by version."""
    after: Counter[int] = Counter()
    deadline = time.monotonic() + SWAP_TIMEOUT
    while after[version] < REQUESTS and time.monotonic() < deadline:
        row = next(requests, None)
        if row is None:
            break
        answered = _answer(conn, row, after, outcome)
        if answered == version and outcome.swapped_at_ms is None:
            outcome.swapped_at_ms = int(time.time() * 1000)
            outcome.timeline["server swapped"] = outcome.swapped_at_ms
        if answered != version:
            time.sleep(0.05)  # the server looks at the alias every 0.2 s
    return after


def _ask_all(port: int, rows: list[dict[str, Any]], seen: Counter[int],
             outcome: RetrainOutcome) -> None:
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=30)) as conn:
        for row in rows:
            _answer(conn, row, seen, outcome)


def _take(rows: Iterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return list(itertools.islice(rows, n))


def _answer(conn: http.client.HTTPConnection, row: dict[str, Any], seen: Counter[int],
            outcome: RetrainOutcome) -> int | None:
    """Ask one claim; count the version that answered, or keep the failure."""
    try:
        status, body = ask(conn, row)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        outcome.failures.append(f"{type(exc).__name__}: {exc}")
        conn.close()
        return None
    if status != 200 or body["predictions"][0] is None:
        outcome.failures.append(f"{status}: {body}")
        return None
    version = int(body["version"])
    seen[version] += 1
    return version
