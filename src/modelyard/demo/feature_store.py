"""The demo's feature definitions file, applying it, and ingesting the sources it names.

The definitions are :mod:`modelyard.demo.claims_features`. The demo copies that module to the
project's ``features.py`` and applies what it loads back from there, so the file and the
store agree and ``modelyard features plan|apply|list|show`` work in the project afterwards.

Re-running the demo on the same data ingests nothing new: a source's offline table that holds
exactly one commit, made by an earlier demo run from a file with the same sha256, is reused.
A table holding anything else (another seed, another size, extra batches) starts afresh, so
window features never count a claim twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from modelyard.demo.files import write_project_file
from modelyard.features.definitions import FeatureGroup, Source
from modelyard.features.discovery import load_definitions
from modelyard.features.profiles import Profile, ProfileReport, report
from modelyard.features.registry import AnyDefinition

if TYPE_CHECKING:
    from modelyard.backends.offline.tables import Commit
    from modelyard.client import Yard
    from modelyard.demo.files import DataFile

DEFINITIONS_FILE = "features.py"
COMMIT_TAG = "demo.commit.{source}"
WARNINGS_SHOWN = 3


def definitions_text() -> str:
    """The source text of the demo's definitions, as written to the project."""
    return resources.files("modelyard.demo").joinpath("claims_features.py").read_text("utf-8")


def write_definitions(root: Path) -> tuple[Path, Path | None]:
    """Write ``root/features.py``; a different file already there is kept as ``.bak``.
    Returns the file and the backup made, if any."""
    return write_project_file(root, DEFINITIONS_FILE, definitions_text())


def read_definitions(path: Path) -> list[AnyDefinition]:
    """The entities, sources and feature groups the file defines."""
    return load_definitions([path])


def groups(definitions: list[AnyDefinition]) -> list[FeatureGroup]:
    return [d for d in definitions if isinstance(d, FeatureGroup)]


def sources(definitions: list[AnyDefinition]) -> list[Source]:
    """Every source the definitions name, alone or through a feature group, once each."""
    found: dict[str, Source] = {}
    for d in definitions:
        source = d.source if isinstance(d, FeatureGroup) else d
        if isinstance(source, Source):
            found.setdefault(source.name, source)
    return list(found.values())


@dataclass(frozen=True)
class Ingestion:
    """A source's file in its offline table: the commit holding it, and what its profile
    flags. ``reused``: an earlier run had ingested this very file; ``replaced``: rows of other
    data removed first."""

    source: str
    commit: Commit
    reused: bool
    replaced: int
    report: ProfileReport


def _earlier_commit(yard: Yard, experiment: str, source: str, file: DataFile
                    ) -> Commit | None:
    """The table's only commit, when an earlier demo run made it from this same file."""
    history = yard.features.commits(source)
    if len(history) != 1 or history[0].operation != "ingest":
        return None
    commit = history[0]
    tag = COMMIT_TAG.format(source=source)
    found = yard.search_runs(
        experiment, filter=f"tags.`{tag}` = '{commit.commit_id}' and "
                           f"params.`data.{file.name}.sha256` = '{file.sha256}'", limit=1)
    return commit if len(found) else None


def ingest_file(yard: Yard, experiment: str, source: Source, file: DataFile) -> Ingestion:
    """Ingest ``file`` into ``source``'s offline table unless it is there already."""
    earlier = _earlier_commit(yard, experiment, source.name, file)
    replaced = 0
    if earlier is None:
        tables = yard.features.tables
        if tables.exists(source.name):
            replaced = tables.read(source.name, columns=[source.timestamp]).num_rows
            tables.drop(source.name)
    commit = earlier or yard.ingest(source)
    return Ingestion(source.name, commit, earlier is not None, replaced,
                     profile_report(yard, source.name, commit))


def profile_report(yard: Yard, source: str, commit: Commit) -> ProfileReport:
    """What the profile stored with ``commit`` flags in the table's value columns (keys,
    ids and times left out)."""
    summary = Profile.from_dict(yard.features.commit_profile(source, commit.commit_id))
    keys = {k for g, _ in yard.features.definitions.groups() if g.source.name == source
            for k in g.entity.keys}
    columns = [c for c in summary.columns if c not in keys and not c.endswith("_id")]
    table = yard.features.tables.read(source, columns=columns, as_of=commit.commit_id)
    return report(table, columns, summary=summary)


def profile_warnings(found: ProfileReport, limit: int = WARNINGS_SHOWN) -> list[str]:
    """The report's main findings in a few words each, most outliers first."""
    lines = [f"{o.column}: {o.iqr:,} outliers by the IQR rule"
             for o in sorted(found.outliers, key=lambda o: -o.iqr) if o.iqr]
    if found.scale_gap is not None:
        gap = found.scale_gap
        lines.insert(1, f"scales differ {gap.ratio:,.0f}x ({gap.largest} vs {gap.smallest})")
    lines += [f"{c.a} ~ {c.b} correlated ({c.pearson:+.2f})" for c in found.correlated]
    lines += [f"{name} is constant" for name in found.constant]
    return lines[:limit]
