"""One HTTP connection to a modelyard server, shared by the REST stores of a Yard.

Bodies travel in the wire codec (:mod:`modelyard.backends.metadata.wire`); an error answer is
raised as the same exception class the server raised. A request that never reached the
server (connection refused while it restarts) is tried again for up to ``retry_seconds`` (60); a
request that may have reached it is tried again only when the call is idempotent (reads,
replacing writes, keyed writes such as a metric batch), so no retry writes anything twice.
The token, when given, is sent as ``Authorization: Bearer <token>`` and never logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modelyard.backends.metadata import wire
from modelyard.errors import ConfigurationError, StorageError

if TYPE_CHECKING:
    import httpx

__all__ = ["API", "RestConnection"]

API = "/api/v1"
_BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0)


class RestConnection:
    def __init__(self, base_url: str, *, token: str | None = None,
                 transport: httpx.BaseTransport | None = None, timeout: float = 60.0,
                 retry_seconds: float = 60.0) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise ConfigurationError("connecting to a modelyard server needs httpx: "
                                     "pip install 'modelyard[remote]'") from exc

        parts = urlsplit(base_url)
        if not parts.hostname:
            raise StorageError(f"{base_url!r} names no server: use http(s)://host:port",
                               uri=base_url)
        self.base_url = base_url.rstrip("/")
        self.uri = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port
                                                           else "") + parts.path.rstrip("/")
        headers = {"User-Agent": "modelyard"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        def new_client() -> httpx.Client:
            return httpx.Client(base_url=self.base_url, transport=transport, headers=headers,
                                timeout=timeout)

        self._new_client: Callable[[], httpx.Client] = new_client
        self._client = new_client()
        self.retry_seconds = retry_seconds

    def _send(self, method: str, path: str, *, idempotent: bool, stream: bool = False,
              **kwargs: Any) -> httpx.Response:
        import httpx

        if self._client.is_closed:  # reopened on use after close, as an engine's pool is
            self._client = self._new_client()
        deadline = time.monotonic() + self.retry_seconds
        attempt = 0
        while True:
            try:
                args = dict(kwargs)
                if callable(args.get("content")):  # a stream made afresh for each attempt
                    args["content"] = args["content"]()
                request = self._client.build_request(method, API + path, **args)
                response = self._client.send(request, stream=stream)
            except httpx.TransportError as exc:
                unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if not (unsent or idempotent) or time.monotonic() >= deadline:
                    raise StorageError(
                        f"cannot reach the modelyard server at {self.uri}: "
                        f"{type(exc).__name__}: {exc}", uri=self.uri) from None
                time.sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
                attempt += 1
                continue
            if response.status_code >= 400:
                body = response.read()
                response.close()
                try:
                    payload = wire.loads(body)
                except Exception:
                    payload = body[:200].decode("utf-8", "replace")
                raise wire.decode_error(payload, response.status_code)
            return response

    def call(self, method: str, path: str, body: Any = None, *, params: Any = None,
             idempotent: bool = False) -> Any:
        """Send ``body`` (wire values) and return the answer's wire values."""
        content = None if body is None else wire.dumps(body)
        headers = {"Content-Type": "application/json"} if content is not None else None
        response = self._send(method, path, idempotent=idempotent or method == "GET",
                              content=content, params=params, headers=headers)
        return wire.loads(response.content) if response.content else None

    def upload(self, path: str, content: bytes | Callable[[], Iterator[bytes]],
               headers: dict[str, str]) -> Any:
        """PUT ``content`` (bytes, or a function making an iterator of bytes, called again
        for each attempt) as a request body; a content-addressed upload is safe to retry."""
        response = self._send("PUT", path, idempotent=True, content=content, headers=headers)
        return wire.loads(response.content)

    def download(self, path: str) -> httpx.Response:
        """A streamed answer, its body not read yet (the caller closes it)."""
        return self._send("GET", path, idempotent=True, stream=True)

    def close(self) -> None:
        """Close the connections (a later request opens new ones)."""
        self._client.close()
