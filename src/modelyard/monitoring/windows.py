"""Time windows: ``7d`` back from now (or from ``end``), or ``start`` to ``end``.

A window is half-open, ``start <= at < end``, in epoch microseconds. Durations are a number
and a unit: ``s``, ``m`` (minutes), ``h``, ``d`` or ``w`` (``90m``, ``36h``, ``7d``, ``2w``).
Times are timezone-aware datetimes, ISO 8601 text with an offset (``2026-03-01T00:00+00:00``),
a plain date (``2026-03-01``, midnight UTC) or epoch microseconds.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from modelyard.errors import InvalidInputError

__all__ = ["Window", "parse_duration", "parse_time", "resolve_window"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_WINDOW = "7d"


@dataclass(frozen=True)
class Window:
    start_us: int
    end_us: int

    @property
    def start(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.start_us)

    @property
    def end(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.end_us)

    @property
    def seconds(self) -> float:
        return (self.end_us - self.start_us) / 1e6

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"


def parse_duration(text: str, *, field: str = "window") -> int:
    """Microseconds in ``text`` (``7d``, ``36h``...)."""
    found = _DURATION.match(text) if isinstance(text, str) else None
    if found is None or float(found[1]) <= 0:
        raise InvalidInputError(
            f"{field} {text!r} is not a duration: expected a positive number and a unit, "
            "s, m, h, d or w (e.g. '7d', '36h')", field=field)
    return round(float(found[1]) * _UNIT_S[found[2]] * 1_000_000)


def parse_time(value: Any, *, field: str) -> int:
    """Epoch microseconds of a time given as described in the module docstring."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = (datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
                     if len(text) == 10 else datetime.fromisoformat(text))
        except ValueError as exc:
            raise InvalidInputError(f"{field} {text!r} is not an ISO 8601 date or date-time",
                                    field=field) from exc
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInputError(f"{field} must say its time zone (e.g. +00:00), got "
                                    f"{value.isoformat()!r}", field=field)
        return (value - _EPOCH) // timedelta(microseconds=1)
    if isinstance(value, date):
        return parse_time(datetime.combine(value, datetime.min.time(), UTC), field=field)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidInputError(f"{field} must be a datetime, ISO 8601 text or epoch "
                            f"microseconds, not {type(value).__name__}", field=field)


def resolve_window(window: str | None = None, *, start: Any = None, end: Any = None,
                   now_us: int | None = None) -> Window:
    """The window from a duration back from ``end`` (default now), or ``start``..``end``.
    With neither a duration nor a start, the last :data:`DEFAULT_WINDOW`."""
    if window is not None and start is not None:
        raise InvalidInputError("give a window length or a start time, not both",
                                field="window")
    end_us = (time.time_ns() // 1_000 if now_us is None else now_us) if end is None else (
        parse_time(end, field="end"))
    if start is not None:
        start_us = parse_time(start, field="start")
    else:
        start_us = end_us - parse_duration(window or DEFAULT_WINDOW)
    if start_us >= end_us:
        raise InvalidInputError(f"the window's start ({_iso(start_us)}) must come before its "
                                f"end ({_iso(end_us)})", field="start")
    return Window(start_us, end_us)


def _iso(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).isoformat()
