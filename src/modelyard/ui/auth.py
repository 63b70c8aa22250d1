"""The seam where a server decides who may do what from the UI.

Every action a person takes in the UI (promote, roll back, approve, reject) first calls the
app's ``authorize(request, action)``. Locally (``modelyard ui``) everyone may do everything:
:func:`allow_all`. A team server passes its own hook, which reads the request's identity
and raises a :class:`~modelyard.errors.ModelyardError` (its permission error, status 403)
to refuse; the page then shows that error in place, with its status, and nothing is done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from starlette.requests import Request

__all__ = ["ACTIONS", "Action", "Authorize", "allow_all"]

Action = Literal["promote", "rollback", "approve", "reject"]
ACTIONS: tuple[Action, ...] = ("promote", "rollback", "approve", "reject")

#: Called before each action; returns to allow it, raises a ModelyardError to refuse it.
Authorize = Callable[[Request, Action], None]


def allow_all(request: Request, action: Action) -> None:
    """Local mode: one person on their own machine may take every action."""
    return None
