"""What each documentation page's examples need before they run, and what they must leave.

A page's ``setup`` prepares the fresh project (the files its examples read, the definitions
and models they take as given) and returns the names its examples use without defining them
(``spine``, ``holdout``...: the reader's own data). Its ``check`` asserts what the examples
did. A page without an entry runs in an empty project.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docs import data

Names = dict[str, Any]


@dataclass(frozen=True)
class Page:
    setup: Callable[[Path], Names] | None = None
    check: Callable[[Names, Path], None] | None = None


def _readme(project: Path) -> Names:
    data.write_claims(project)
    data.labels().to_parquet(project / "data" / "labels.parquet", index=False)
    return {}


def _readme_check(names: Names, project: Path) -> None:
    assert names["best"].info.name == "tree-8"  # the best run by r2
    assert list(names["runs"]["name"]) == ["tree-8", "tree-5"]
    assert names["row"]["customer_id"] == 42 and names["row"]["claims_90d"] >= 1
    yard = names["yard"]
    assert yard.models.load("claims-model@production") is not None


PAGES: dict[str, Page] = {
    "README.md": Page(_readme, _readme_check),
}
