"""Reference profiles: moved to :mod:`modelyard.stats.profile`, the statistics shared by the
registry and monitoring; this module keeps the old import path working."""

from modelyard.stats.profile import (
    FORMAT,
    PROFILE_ROWS,
    ColumnProfile,
    ReferenceProfile,
    build_profile,
    profile_rows,
)

__all__ = ["FORMAT", "PROFILE_ROWS", "ColumnProfile", "ReferenceProfile", "build_profile",
           "profile_rows"]
