"""A closed-loop HTTP load generator (standard library only, run in its own process): a fixed
number of connections, each sending its next request only after the previous answer."""

from __future__ import annotations

import json
import math
import resource
import time
from pathlib import Path
from typing import Any

from common import emit


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def _read_response(reader: Any) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: status, body, whether the server closes the connection."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed by the server")
    status = int(status_line.split()[1])
    length, chunked, close = 0, False, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            close = True
    if not chunked:
        return status, await reader.readexactly(length), close
    body = b""
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            return status, body, close
        body += await reader.readexactly(size)
        await reader.readline()


async def _load(host: str, port: int, path: str, bodies: list[bytes], workers: int,
                warmup: float, seconds: float) -> dict[str, Any]:
    import asyncio

    requests = [
        (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
         f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        for body in bodies
    ]
    begin = time.perf_counter()
    measure_from, stop_at = begin + warmup, begin + warmup + seconds
    latencies: list[float] = []
    errors: list[str] = []
    finished: list[float] = []

    async def worker(index: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        turn = index
        while True:
            sent = time.perf_counter()
            if sent >= stop_at:
                break
            writer.write(requests[turn % len(requests)])
            turn += workers
            try:
                await writer.drain()
                status, body, close = await _read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(repr(exc))
                status, body, close = 0, b"", True
            done = time.perf_counter()
            if sent >= measure_from:
                if status == 200:
                    latencies.append(done - sent)
                elif status:
                    errors.append(f"HTTP {status}: {body[:200]!r}")
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
        finished.append(time.perf_counter())
        writer.close()

    await asyncio.gather(*(worker(i) for i in range(workers)))
    window = max(finished) - measure_from
    return {
        "requests": len(latencies), "errors": len(errors), "error_sample": errors[:3],
        "seconds": window, "rps": len(latencies) / window if window > 0 else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else None,
    }


def worker_loadgen(url: str, bodies_file: Path, workers: int, warmup: float,
                   seconds: float) -> None:
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    bodies = [b.encode() for b in json.loads(bodies_file.read_text())]
    result = asyncio.run(_load(parts.hostname or "127.0.0.1", parts.port or 80, parts.path,
                               bodies, workers, warmup, seconds))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["loadgen_cpu_seconds"] = usage.ru_utime + usage.ru_stime  # its share of the cores
    emit(result)


