"""The SQL family of metadata stores (SQLite, PostgreSQL) over one SQLAlchemy engine."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from modelyard.backends.artifacts.base import ArtifactStore, artifact_store_from_uri
from modelyard.backends.metadata.sql.engine import make_engine
from modelyard.backends.metadata.sql.tracking_store import SqlTrackingStore
from modelyard.backends.metadata.sql.write_store import SqlWriteStore
from modelyard.backends.metadata.stores import MetadataStores

if TYPE_CHECKING:
    from modelyard.backends.metadata.audit import AuditStore
    from modelyard.backends.metadata.decisions import DecisionStore
    from modelyard.backends.metadata.feature_registry import FeatureRegistryStore
    from modelyard.backends.metadata.identities import IdentityStore
    from modelyard.backends.metadata.materializations import MaterializationStore
    from modelyard.backends.metadata.monitoring import MonitorStore
    from modelyard.backends.metadata.pipelines import PipelineStore
    from modelyard.backends.metadata.predictions import PredictionStore
    from modelyard.backends.metadata.references import BlobReferences
    from modelyard.backends.metadata.registry import RegistryStore
    from modelyard.backends.metadata.replicas import ReplicaStore
    from modelyard.backends.s3 import S3Options

__all__ = ["SqlMetadataStores"]


class SqlMetadataStores(MetadataStores):
    """Every metadata store on one database (migrated to the current schema on open)."""

    def __init__(self, uri: str) -> None:
        self.engine = make_engine(uri)
        try:
            self._tracking = SqlTrackingStore(self.engine)
            self._writes = SqlWriteStore(self.engine)
        except BaseException:  # e.g. SchemaVersionError: close what was opened
            self.engine.dispose()
            raise

    @property
    def uri(self) -> str:
        return str(self.engine.url.render_as_string(hide_password=True))

    @property
    def tracking(self) -> SqlTrackingStore:
        return self._tracking

    @property
    def writes(self) -> SqlWriteStore:
        return self._writes

    @functools.cache  # noqa: B019 - one store per bundle, which lives as long as its engine
    def registry(self) -> RegistryStore:
        from modelyard.backends.metadata.sql.registry_store import SqlRegistryStore

        return SqlRegistryStore(self.engine)

    def artifacts(self, uri: str, s3: S3Options | None = None) -> ArtifactStore:
        return artifact_store_from_uri(uri, s3)

    def feature_registry(self) -> FeatureRegistryStore:
        from modelyard.backends.metadata.sql.feature_registry_store import (
            SqlFeatureRegistryStore,
        )

        return SqlFeatureRegistryStore(self.engine, migrate=False)

    def materializations(self) -> MaterializationStore:
        from modelyard.backends.metadata.sql.materialization_store import (
            SqlMaterializationStore,
        )

        return SqlMaterializationStore(self.engine)

    def monitor(self) -> MonitorStore:
        from modelyard.backends.metadata.sql.monitor_store import SqlMonitorStore

        return SqlMonitorStore(self.engine)

    def pipelines(self) -> PipelineStore:
        from modelyard.backends.metadata.sql.pipeline_store import SqlPipelineStore

        return SqlPipelineStore(self.engine)

    def decisions(self) -> DecisionStore:
        from modelyard.backends.metadata.sql.decision_store import SqlDecisionStore

        return SqlDecisionStore(self.engine)

    def blob_references(self) -> BlobReferences:
        from modelyard.backends.metadata.sql.blob_references import SqlBlobReferences

        return SqlBlobReferences(self.engine)

    def predictions(self, uri: str) -> PredictionStore:
        from modelyard.backends.predictions import prediction_store_from_uri

        return prediction_store_from_uri(uri, metadata_engine=self.engine)

    def identities(self) -> IdentityStore:
        from modelyard.backends.metadata.sql.identity_store import SqlIdentityStore

        return SqlIdentityStore(self.engine, migrate=False)

    def audit(self) -> AuditStore:
        from modelyard.backends.metadata.sql.audit_store import SqlAuditStore

        return SqlAuditStore(self.engine, migrate=False)

    def replicas(self) -> ReplicaStore:
        from modelyard.backends.metadata.sql.replica_store import SqlReplicaStore

        return SqlReplicaStore(self.engine, migrate=False)

    def close(self) -> None:
        self.engine.dispose()
