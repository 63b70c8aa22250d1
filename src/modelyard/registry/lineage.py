"""Where a model version came from: version -> run (params, metrics, code, environment) ->
training set -> feature group versions and offline table commits -> sources; and the
training set rebuilt from that record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.registry import VersionRecord
from modelyard.errors import ModelyardError, NotFoundError

if TYPE_CHECKING:
    from modelyard.features.training import TrainingSet
    from modelyard.registry.service import ModelRegistry


@dataclass(frozen=True)
class Lineage:
    model: str
    version: int
    flavor: str
    artifact_sha256: str
    aliases: list[str]
    run: dict[str, Any] | None  # id, experiment, status, params, metrics, git, environment
    training_set: dict[str, Any] | None  # id, features, label, timestamp, commits, spine hash
    feature_groups: list[dict[str, Any]] = field(default_factory=list)  # name, version, source
    sources: list[dict[str, Any]] = field(default_factory=list)  # name, kind, commit, rows

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "flavor": self.flavor,
                "artifact_sha256": self.artifact_sha256, "aliases": self.aliases,
                "run": self.run, "training_set": self.training_set,
                "feature_groups": self.feature_groups, "sources": self.sources}


def lineage(registry: ModelRegistry, record: VersionRecord) -> Lineage:
    aliases = sorted(a for a, v in registry.store.aliases(record.name).items()
                     if v == record.version)
    run = _run(registry, record.run_id)
    training: dict[str, Any] | None = None
    groups: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    if record.training_set_id is not None:
        features = registry.features()
        spec = features.get_training_set(record.training_set_id).spec
        training = {"training_set_id": record.training_set_id, **spec,
                    "spine_sha256": spec.get("spine_sha256"),
                    "spine_artifact": record.spec.get("spine_sha256")}
        seen: set[tuple[str, int]] = set()
        for ref in spec.get("features", []):
            group, version = ref.split(":", 1)[0].split("@v")
            if (group, int(version)) in seen:
                continue
            seen.add((group, int(version)))
            groups.append(_group(features, group, int(version)))
        for source, commit in sorted(spec.get("commits", {}).items()):
            sources.append(_source(features, source, commit))
    return Lineage(record.name, record.version, record.flavor, record.artifact_sha256,
                   aliases, run, training, groups, sources)


def _run(registry: ModelRegistry, run_id: str | None) -> dict[str, Any] | None:
    if run_id is None:
        return None
    try:
        data = registry.tracking.get_run(run_id)
    except NotFoundError:
        return {"run_id": run_id, "missing": True}
    tags = dict(data.tags)
    return {
        "run_id": run_id, "name": data.info.name, "experiment_id": data.info.experiment_id,
        "status": data.info.status, "params": dict(data.params),
        "metrics": {k: m.value for k, m in data.metrics.items()},
        "git_commit": tags.get("modelyard.git.commit"),
        "git_dirty": tags.get("modelyard.git.dirty"),
        "environment": {
            "user": data.info.user, "host": data.info.host,
            **{k.removeprefix("modelyard."): v for k, v in tags.items()
               if k.startswith(("modelyard.python", "modelyard.platform",
                                "modelyard.packages", "modelyard.source"))}},
    }


def _group(features: Any, name: str, version: int) -> dict[str, Any]:
    try:
        group = features.group(name, version)
    except ModelyardError:
        return {"name": name, "version": version, "missing": True}
    return {"name": name, "version": version, "entity": group.entity.name,
            "source": group.source.name,
            "features": [f.name for f in group.features],
            "transform": None if group.transform is None else group.transform.name}


def _source(features: Any, source: str, commit: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {"name": source, "commit": commit}
    try:
        for c in features.commits(source):
            if c.commit_id == commit:
                found.update(ingested_at=c.ingested_at.isoformat(), rows=c.rows,
                             table_version=c.version)
    except ModelyardError:
        found["missing"] = True
    return found


def rebuild_training_set(registry: ModelRegistry, record: VersionRecord) -> TrainingSet:
    """Build the version's training set again: the stored spine, the recorded feature
    versions, and every table cut at the newest commit the original saw."""
    import pyarrow as pa

    if record.training_set_id is None or not record.spec.get("spine_sha256"):
        raise NotFoundError(f"model {record.name}:{record.version} was registered without a "
                            "training set, so there is none to rebuild",
                            model=record.name, version=record.version)
    features = registry.features()
    spec = features.get_training_set(record.training_set_id).spec
    spine = pa.ipc.open_file(pa.BufferReader(
        registry.artifacts.get_bytes(record.spec["spine_sha256"]))).read_all()
    as_of = spec.get("as_of") or _newest_commit(features, spec.get("commits", {}))
    return features.training_set(spine, list(spec["features"]), label=spec.get("label"),
                                 timestamp=spec["timestamp"], as_of=as_of)


def _newest_commit(features: Any, commits: dict[str, str | None]) -> Any:
    """The ingestion time of the newest commit the training set saw: cutting every table
    there gives each the rows it had then."""
    newest = None
    for source, commit in commits.items():
        for c in features.commits(source):
            if c.commit_id == commit and (newest is None or c.ingested_at > newest):
                newest = c.ingested_at
    return newest
