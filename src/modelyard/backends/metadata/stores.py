"""The metadata stores of one connection, chosen by URI: :func:`metadata_stores`.

``sqlite://`` and ``postgresql://`` give the SQL family (``sql/stores.py``), ``http://`` and
``https://`` the REST family that talks to a ``modelyard server`` (``rest/stores.py``). Each
family hands out the same interfaces, so the domain services never know which one they hold.
A store the REST family does not offer yet raises ConfigurationError naming it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from modelyard.errors import ConfigurationError

if TYPE_CHECKING:
    from modelyard.backends.artifacts.base import ArtifactStore
    from modelyard.backends.metadata.audit import AuditStore
    from modelyard.backends.metadata.base import TrackingStore
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
    from modelyard.backends.metadata.writes import WriteStore
    from modelyard.backends.s3 import S3Options

__all__ = ["MetadataStores", "metadata_stores"]

HTTP_SCHEMES = ("http://", "https://")


class MetadataStores(ABC):
    """One family of metadata stores over one database or server."""

    #: True when the stores are another process's (a server): crash recovery and garbage
    #: collection run there, not in this client
    remote: bool = False

    @property
    @abstractmethod
    def uri(self) -> str:
        """Where the stores are, with any password hidden."""

    @property
    @abstractmethod
    def tracking(self) -> TrackingStore: ...

    @property
    @abstractmethod
    def writes(self) -> WriteStore: ...

    @abstractmethod
    def registry(self) -> RegistryStore: ...

    @abstractmethod
    def artifacts(self, uri: str, s3: S3Options | None = None) -> ArtifactStore:
        """The artifact store for the setting ``artifact_uri`` (``s3`` reaches ``s3://``)."""

    def feature_registry(self) -> FeatureRegistryStore:
        raise self._missing("the feature store")

    def materializations(self) -> MaterializationStore:
        raise self._missing("materialization records")

    def monitor(self) -> MonitorStore:
        raise self._missing("monitoring")

    def pipelines(self) -> PipelineStore:
        raise self._missing("pipelines")

    def decisions(self) -> DecisionStore:
        raise self._missing("pipeline decisions")

    def blob_references(self) -> BlobReferences:
        raise self._missing("garbage collection")

    def predictions(self, uri: str) -> PredictionStore:
        """The prediction log for the setting ``predictions_uri``."""
        raise self._missing("the prediction log")

    def identities(self) -> IdentityStore:
        raise self._missing("users, tokens and roles")

    def audit(self) -> AuditStore:
        raise self._missing("the audit log")

    def replicas(self) -> ReplicaStore:
        raise self._missing("the model servers' replica list")

    def _missing(self, what: str) -> ConfigurationError:
        return ConfigurationError(
            f"{what} is not available through {self.uri} yet: connect to the server's "
            "database (sqlite:// or postgresql://) for it", uri=self.uri)

    @abstractmethod
    def close(self) -> None: ...


def metadata_stores(uri: str, *, token: str | None = None, transport: Any = None,
                    ) -> MetadataStores:
    """The store family for ``uri``: ``sqlite:///path.db``, ``postgresql://user@host/db``,
    or ``http(s)://host:port`` (a modelyard server; ``token`` is sent as a bearer token,
    ``transport`` is an ``httpx.BaseTransport`` to use instead of the network)."""
    if uri.startswith(HTTP_SCHEMES):
        from modelyard.backends.metadata.rest.stores import RestMetadataStores

        return RestMetadataStores(uri, token=token, transport=transport)
    if token is not None or transport is not None:
        raise ConfigurationError("a token or an HTTP transport only applies to an http(s):// "
                                 f"URI, not {uri.split('://')[0]}://", field="token")
    from modelyard.backends.metadata.sql.stores import SqlMetadataStores

    return SqlMetadataStores(uri)
