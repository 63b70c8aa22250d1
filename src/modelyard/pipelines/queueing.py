"""Queued pipeline runs: a new run record of a pipeline's latest version (its params
checked against the declared ones), and the names workers hold leases under."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Mapping
from typing import Any

from modelyard.backends.metadata.pipelines import PipelineRecord, PipelineRunRecord, PipelineStore
from modelyard.errors import InvalidInputError

__all__ = ["DEFAULT_LEASE_MS", "check_params", "new_run", "now_ms", "worker_name"]

DEFAULT_LEASE_MS = 60_000


def now_ms() -> int:
    return int(time.time() * 1000)


def worker_name() -> str:
    """This process's name on the queue: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def check_params(record: PipelineRecord, overrides: Mapping[str, Any] | None
                 ) -> dict[str, Any]:
    """The declared params with a run's overrides; an unknown or non-JSON one refused."""
    params = dict(record.spec.get("params", {}))
    unknown = sorted(set(overrides or {}) - set(params))
    if unknown:
        declared = ", ".join(sorted(params)) or "none"
        raise InvalidInputError(
            f"pipeline {record.name!r} has no param {', '.join(map(repr, unknown))} (its "
            f"params: {declared})", field="params")
    params.update(overrides or {})
    try:
        json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"params must be JSON values: {exc}",
                                field="params") from exc
    return params


def new_run(store: PipelineStore, name: str, params: Mapping[str, Any] | None, trigger: str,
            detail: Mapping[str, Any] | None, *, run_at_ms: int | None = None,
            dedupe_key: str | None = None) -> PipelineRunRecord:
    """A queued run of the pipeline's latest version (not stored yet)."""
    record = store.get_pipeline(name)
    now = now_ms()
    return PipelineRunRecord(
        uuid.uuid4().hex, name, record.version, "queued", trigger, dict(detail or {}),
        check_params(record, params), now, now if run_at_ms is None else run_at_ms,
        int(record.spec.get("max_attempts", 2)), dedupe_key)
