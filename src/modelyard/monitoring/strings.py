"""String columns: moved to :mod:`modelyard.stats.strings`, the statistics shared by the
registry and monitoring; this module keeps the old import path working."""

from modelyard.stats.strings import (
    arrow_strings,
    string_codes,
    string_counts,
    string_value_counts,
    take_strings,
)

__all__ = ["arrow_strings", "string_codes", "string_counts", "string_value_counts",
           "take_strings"]
