"""Feature references: ``group:feature``, ``group:*`` and ``group@v2:feature``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from modelyard.errors import InvalidInputError

_REF = re.compile(r"^([A-Za-z_]\w*)(?:@v(\d+))?:(\*|[A-Za-z_]\w*)$")


@dataclass(frozen=True)
class FeatureRef:
    group: str
    version: int | None  # None: the latest
    feature: str  # "*" for every feature of the group

    def __str__(self) -> str:
        at = "" if self.version is None else f"@v{self.version}"
        return f"{self.group}{at}:{self.feature}"


def parse_refs(refs: Sequence[str] | str) -> list[FeatureRef]:
    if isinstance(refs, str):
        refs = [refs]
    if not refs:
        raise InvalidInputError("name at least one feature, like 'claim_stats:*'",
                                field="features")
    parsed = []
    for ref in refs:
        m = _REF.match(ref.strip()) if isinstance(ref, str) else None
        if m is None:
            raise InvalidInputError(
                f"feature reference {ref!r} is not valid: write group:feature, group:* or "
                "group@v2:feature", field="features", value=repr(ref),
            )
        parsed.append(FeatureRef(m[1], None if m[2] is None else int(m[2]), m[3]))
    return parsed
