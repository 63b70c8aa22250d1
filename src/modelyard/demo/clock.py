"""The demo's calendar: one "today" that every time-dependent step uses.

The claims history is placed relative to today: it ends at the start of today's month (UTC),
so the last month before today is the one whose claims have not settled yet, and every
customer with a recent claim has online features well inside the ``claim_history`` TTL.

Today is the real date unless the demo is told an earlier one (``modelyard demo --today`` or
``MODELYARD_DEMO_TODAY``). Then the demo's clock runs that many whole days behind the system
clock: the online lookups and the model server's TTL checks read it, and the monitoring
windows are the months before it, so the same story holds on any date. A date after the
system's is refused: the feature store materializes only as of an instant that has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

EARLIEST = date(1980, 1, 1)


@dataclass(frozen=True)
class DemoClock:
    """Today as the demo sees it, and how far that is from the system's date."""

    today: date
    offset: timedelta  # today minus the system's date, in whole days

    @classmethod
    def for_today(cls, today: date | None = None) -> DemoClock:
        """The clock of ``today`` (default: the system's date, UTC)."""
        real = datetime.now(UTC).date()
        day = real if today is None else today
        if not EARLIEST <= day <= real:
            raise InvalidInputError(
                f"today must be a date from {EARLIEST} to the system's date ({real}), got "
                f"{day}: the feature store materializes online values only as of an instant "
                "that has passed", field="today")
        return cls(day, day - real)

    @property
    def pinned(self) -> bool:
        """True when today is not the system's date."""
        return self.offset != timedelta(0)

    def now(self) -> datetime:
        """The current instant on the demo's calendar (the system clock moved by the offset)."""
        return datetime.now(UTC) + self.offset

    @property
    def history_end(self) -> pd.Timestamp:
        """Where the claims history ends: the start of today's month, UTC."""
        import pandas as pd

        return pd.Timestamp(self.today.replace(day=1), tz="UTC")

    def history_start(self, months: int) -> pd.Timestamp:
        """Where a history of ``months`` months ending at :attr:`history_end` begins."""
        import pandas as pd

        start: pd.Timestamp = self.history_end - pd.DateOffset(months=months)
        return start


def parse_today(text: str) -> date:
    """A ``YYYY-MM-DD`` date, or a clear error naming the option."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(f"today must be a date like 2026-12-04, got {text!r}",
                                field="today") from None
