"""How values read on the UI's pages: numbers without float noise, times in UTC, sizes."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

__all__ = ["duration", "number", "size", "when"]


def number(value: Any, digits: int = 4) -> str:
    """A number to ``digits`` significant digits keeping its whole part (``0.9346``,
    ``919.6``, ``10248``); ``-`` for nothing; anything else as text."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    magnitude = abs(value)
    if float(value).is_integer() and magnitude < 1e15:
        return str(int(value))
    if magnitude >= 1e15 or magnitude < 1e-4:
        return f"{value:.{digits}g}"
    if magnitude < 1:
        return f"{value:.{digits}g}"
    decimals = max(digits - len(str(int(magnitude))), 0)
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if decimals else text


def when(value: Any) -> str:
    """Epoch milliseconds, an ISO text or a datetime, as ``2026-12-04 23:37:52 UTC``."""
    if value is None or value == "":
        return "-"
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value / 1000, UTC)
    elif isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(start_ms: int | None, end_ms: int | None) -> str:
    """``1h 02m``, ``3m 05s``, ``4.2s``; ``-`` while unknown."""
    if start_ms is None or end_ms is None:
        return "-"
    seconds = max(end_ms - start_ms, 0) / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def size(value: int) -> str:
    """Bytes as ``512 B``, ``3.4 kB``, ``12.1 MB``."""
    amount = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if amount < 1000 or unit == "GB":
            return f"{int(amount)} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} GB"  # pragma: no cover - the loop returns
