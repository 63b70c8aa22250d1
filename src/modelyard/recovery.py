"""Recovery on open: writes whose process died mid-way are completed or rolled back.

Each write that spans two stores records an intent first (see
:mod:`modelyard.backends.metadata.writes`). Opening a project looks for intents (one cheap
query); those whose owner process is dead are handed to the service that knows the write:

- ``ingest``: the Delta commit landed → its profile (and key) is stored; else rolled back;
- ``forget``: finished (the same keys forgotten again) and logged;
- ``register`` / ``log_artifact``: no version or artifact row was written (it is written in
  the transaction that deletes the intent), so the write is rolled back: the blobs it stored
  are unreferenced and left to garbage collection.

Every repair is logged (``modelyard doctor`` shows them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard.backends.metadata.writes import Repair, WriteIntent
from modelyard.errors import ModelyardError
from modelyard.idempotency import rollback

if TYPE_CHECKING:
    from modelyard.client import Yard

__all__ = ["recover", "recover_intent"]


def recover(yard: Yard) -> list[Repair]:
    """Repair every intent left by a dead writer; what was done, oldest first."""
    done = []
    for intent in yard.writes.list_intents():
        if intent.owner_alive():
            continue  # in flight
        try:
            repair = recover_intent(yard, intent)
        except ModelyardError:  # e.g. a store unreachable now: left for the next open
            continue
        except Exception:  # opening must not fail over a repair; doctor shows the intent
            continue
        if repair is not None:
            done.append(repair)
    return done


def recover_intent(yard: Yard, intent: WriteIntent) -> Repair | None:
    if intent.kind in ("ingest", "forget"):
        return yard.features.recover_intent(intent)
    return rollback(yard.writes, intent)
