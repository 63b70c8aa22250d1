"""Request ids for requests that bring none: unique, and cheap enough for every request.

An id is 32 hexadecimal characters, like a UUID4's ``hex``: 16 drawn at random once per
process (again in a forked child), then a 16-digit counter. Two processes draw the same
prefix with a chance of about one in 2**64, and within a process the counter never repeats,
so ids stay unique without reading the system's random source per request (which
``uuid.uuid4()`` does, at several microseconds a call).
"""

from __future__ import annotations

import itertools
import os

__all__ = ["new_request_id"]


def _fresh() -> None:
    global _prefix, _counter
    _prefix = os.urandom(8).hex()
    _counter = itertools.count()


_prefix = ""
_counter = itertools.count()
_fresh()
os.register_at_fork(after_in_child=_fresh)


def new_request_id() -> str:
    """A new request id, unique across processes (see the module docs)."""
    return f"{_prefix}{next(_counter):016x}"
