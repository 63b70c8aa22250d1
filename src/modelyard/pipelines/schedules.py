"""Cron schedules read in a time zone (croniter does the calendar arithmetic)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

__all__ = ["latest_due", "next_due"]


def latest_due(cron: str, timezone: str, when: datetime) -> datetime:
    """The latest due time at or before ``when`` (UTC)."""
    from croniter import croniter

    local = when.astimezone(ZoneInfo(timezone))
    if croniter.match(cron, local) and local.second == 0 and local.microsecond == 0:
        return local.astimezone(UTC)
    it = croniter(cron, local)
    return it.get_prev(datetime).astimezone(UTC)  # type: ignore[no-any-return]


def next_due(cron: str, timezone: str, when: datetime) -> datetime:
    """The first due time after ``when`` (UTC)."""
    from croniter import croniter

    it = croniter(cron, when.astimezone(ZoneInfo(timezone)))
    return it.get_next(datetime).astimezone(UTC)  # type: ignore[no-any-return]
