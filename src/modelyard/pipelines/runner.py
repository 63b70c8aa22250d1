"""Running one leased pipeline run: load the stored code, call it with a context while a
heartbeat keeps the lease, capture its output, and record the outcome.

Whatever the function does (returns, raises, calls ``sys.exit``), the run ends recorded as
succeeded or failed with its traceback and logs, and its lease is released; only a killed
process leaves the lease to lapse, and the next claim puts the run back in the queue.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from modelyard.backends.metadata.pipelines import PipelineRunRecord, PipelineStore
from modelyard.pipelines.context import (
    LogCapture,
    PipelineContext,
    PipelineServices,
    capture_output,
)
from modelyard.pipelines.definitions import Pipeline

__all__ = ["execute"]


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Heartbeat(threading.Thread):
    """Renews the lease every third of its length; notes when the lease was lost."""

    def __init__(self, store: PipelineStore, run: PipelineRunRecord, worker: str,
                 lease_ms: int) -> None:
        super().__init__(name=f"modelyard-lease-{run.run_id[:8]}", daemon=True)
        self.store, self.run_id, self.worker, self.lease_ms = store, run.run_id, worker, lease_ms
        self.stopped = threading.Event()
        self.steps: list[dict[str, Any]] | None = None
        self.lost = False

    def run(self) -> None:
        while not self.stopped.wait(self.lease_ms / 3000):
            try:
                held = self.store.renew(self.run_id, self.worker, _now_ms() + self.lease_ms,
                                        self.steps)
            except Exception:  # a store hiccup: try again at the next beat
                continue
            if not held:
                self.lost = True
                return


def _result(value: Any, ctx: PipelineContext) -> dict[str, Any]:
    result: dict[str, Any] = {}
    registered = value if hasattr(value, "version") and hasattr(value, "name") else (
        ctx.registered[-1] if ctx.registered else None)
    if registered is not None:
        result["model"] = str(registered.name)
        result["version"] = int(registered.version)
    if ctx._run is not None:
        result["tracking_run"] = ctx._run.run_id
    return result


def execute(run: PipelineRunRecord, pipeline: Pipeline, store: PipelineStore,
            services: PipelineServices, *, worker: str, lease_ms: int,
            on_step: Callable[[list[dict[str, Any]]], None] | None = None,
            echo: Any = None,
            decide: Callable[[PipelineContext, PipelineRunRecord], dict[str, Any]] | None = None
            ) -> PipelineRunRecord:
    """Run a leased run to its end and record the outcome; the stored run after.
    ``decide`` (champion against challenger) runs after the function returns; what it
    returns joins the run's result, and if it raises the run fails."""
    heartbeat = _Heartbeat(store, run, worker, lease_ms)

    def steps_changed(steps: list[dict[str, Any]]) -> None:
        heartbeat.steps = steps
        if on_step is not None:
            on_step(steps)

    ctx = PipelineContext(
        run_id=run.run_id, pipeline=run.pipeline, version=run.version, model=pipeline.model,
        now=datetime.fromtimestamp(run.run_at_ms / 1000, UTC), params=dict(run.params),
        trigger=run.trigger, trigger_detail=dict(run.trigger_detail), services=services,
        on_step=steps_changed)
    logs = LogCapture(echo=echo)
    status, error, result = "failed", None, {}
    interrupted: BaseException | None = None
    heartbeat.start()
    try:
        with capture_output(logs):
            try:
                fn = pipeline.load(f"{run.pipeline} v{run.version}")
                value = fn(ctx)
                result = _result(value, ctx)
                if decide is not None:
                    result |= decide(ctx, run)
                status = "succeeded"
            except (KeyboardInterrupt, GeneratorExit) as exc:
                interrupted = exc
                error = "interrupted\n"
            except BaseException as exc:  # SystemExit too: the run ends, the worker goes on
                error = "".join(traceback.format_exception(
                    type(exc), exc, exc.__traceback__ and exc.__traceback__.tb_next))
                print(error, end="")
            finally:
                try:
                    ctx.close(failed=status != "succeeded")
                except Exception:
                    print(traceback.format_exc(), end="")
    finally:
        heartbeat.stopped.set()
        heartbeat.join()
        if heartbeat.lost:
            logs.write("the lease was lost while the run went on: its outcome is not kept\n")
        store.finish(run.run_id, worker, status=status, ended_at_ms=_now_ms(), result=result,
                     error=error, logs=logs.text(), steps=ctx.steps)
    if interrupted is not None:
        raise interrupted
    return store.get_run(run.run_id)
