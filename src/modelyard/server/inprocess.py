"""Reach an app in this process as if over the network: an ``httpx`` transport.

``modelyard.connect("http://modelyard.test", transport=InProcessTransport(app))`` gives a
Yard whose REST stores call ``app`` (the team server's, say) directly, on an event loop in
a thread of its own, so the synchronous client, and the thread that flushes its metrics,
use it exactly as they would a server on the network: tests, notebooks, examples. Bodies
are read whole before they are sent.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

__all__ = ["InProcessTransport"]


class InProcessTransport(httpx.BaseTransport):
    """A synchronous transport over an ASGI app. Several clients may share it: closing a
    client leaves it open; :meth:`shutdown` ends it."""

    def __init__(self, app: Any) -> None:
        import anyio.from_thread

        self._inner = httpx.ASGITransport(app=app)
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def send() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            inner = httpx.Request(request.method, request.url, headers=request.headers,
                                  content=body)
            answer = await self._inner.handle_async_request(inner)
            stream = answer.stream
            assert isinstance(stream, httpx.AsyncByteStream)
            content = b"".join([chunk async for chunk in stream])
            return answer.status_code, answer.headers.raw, content

        status, headers, content = self._portal.call(send)
        return httpx.Response(status, headers=headers, content=content)

    def close(self) -> None:
        """Kept open for the other clients that share it (see :meth:`shutdown`)."""

    def shutdown(self) -> None:
        """Stop the event loop thread; requests after this fail."""
        with contextlib.suppress(Exception):
            self._portal_cm.__exit__(None, None, None)
