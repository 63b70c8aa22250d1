"""A fleet of model servers: each reports what it serves, and a promotion can wait for all.

A :class:`ReplicaReporter` runs in every model server process: it writes the server's
:class:`~modelyard.backends.metadata.replicas.ReplicaRecord` (host, pid, address, and the
version of every slot) when it starts, every ``interval`` seconds, and at once after a
swap, and removes it when the server stops. :func:`wait_for_version` is what
``modelyard models promote --wait`` runs: it reads the live replicas until every one that
follows ``model@alias`` serves the version the alias now names.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modelyard.backends.metadata.replicas import ReplicaRecord, ReplicaStore, ServedSlot

__all__ = ["HEARTBEAT_S", "ReplicaReporter", "Rollout", "live_replicas", "wait_for_version"]

logger = logging.getLogger("modelyard.serving")

HEARTBEAT_S = 2.0  # seconds between heartbeats
ALIVE_BEATS = 5  # a replica silent for this many heartbeats is taken as gone
PRUNE_AFTER_S = 24 * 3600.0  # a replica silent this long is removed from the table


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def live_replicas(store: ReplicaStore, *, interval: float = HEARTBEAT_S
                  ) -> list[ReplicaRecord]:
    """The replicas that beat within the liveness window (``ALIVE_BEATS`` heartbeats)."""
    return store.replicas(alive_since_ms=_now_ms() - int(ALIVE_BEATS * interval * 1000))


class ReplicaReporter:
    """Heartbeats of one model server process (see the module docs)."""

    def __init__(self, store: ReplicaStore, slots: Callable[[], Sequence[ServedSlot]], *,
                 address: str | None = None, interval: float = HEARTBEAT_S) -> None:
        self.store = store
        self.slots = slots
        self.address = address
        self.interval = interval
        self.replica_id = uuid.uuid4().hex
        self.started_at_ms = _now_ms()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self) -> ReplicaRecord:
        return ReplicaRecord(self.replica_id, socket.gethostname(), os.getpid(), self.address,
                             self.started_at_ms, _now_ms(), tuple(self.slots()))

    def beat(self) -> None:
        """Write the current state now (a failure is logged; the next beat retries)."""
        try:
            self.store.beat(self.record())
        except Exception as exc:  # serving goes on while the metadata store is away
            logger.warning("cannot report this server's state: %s", exc)

    def start(self) -> None:
        self.beat()
        try:
            self.store.prune(_now_ms() - int(PRUNE_AFTER_S * 1000))
        except Exception as exc:
            logger.debug("cannot prune old replicas: %s", exc)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="modelyard-heartbeat")
        self._thread.start()

    def changed(self) -> None:
        """Report at once (called after a swap)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.beat()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.store.retire(self.replica_id)
        except Exception as exc:
            logger.warning("cannot remove this server from the replica list: %s", exc)


@dataclass(frozen=True)
class Rollout:
    """Where the replicas following ``model@alias`` stand after a wait."""

    model: str
    alias: str
    version: int
    replicas: list[ReplicaRecord]  # the live replicas following the alias
    waited_s: float

    @property
    def behind(self) -> list[ReplicaRecord]:
        return [r for r in self.replicas if r.version_of(self.model) != self.version]

    @property
    def done(self) -> bool:
        return not self.behind


def wait_for_version(store: ReplicaStore, model: str, alias: str, version: int, *,
                     timeout: float = 60.0, poll: float = 0.05,
                     interval: float = HEARTBEAT_S) -> Rollout:
    """Wait until every live replica that follows ``model@alias`` serves ``version``, or
    ``timeout`` seconds pass; the last state seen either way."""
    reference = f"{model}@{alias}"
    began = time.monotonic()
    while True:
        following = [r for r in live_replicas(store, interval=interval)
                     if r.follows(model, reference)]
        rollout = Rollout(model, alias, version, following, time.monotonic() - began)
        if rollout.done or rollout.waited_s >= timeout:
            return rollout
        time.sleep(poll)
