"""The modelyard HTTP server (needs the ``server`` extra: ``pip install 'modelyard[server]'``).

``create_app(yard)`` returns the Starlette app; ``modelyard serve`` runs it with uvicorn.
See docs/server.md for the endpoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from modelyard.server.app import create_app

        return create_app
    raise AttributeError(f"module 'modelyard.server' has no attribute {name!r}")
