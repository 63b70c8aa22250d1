"""The REST family of metadata stores: tracking, registry, feature registry, writes and
artifacts through one connection to a modelyard server. Monitoring, pipelines, the prediction
log and garbage collection are not offered over HTTP yet (:class:`MetadataStores` says so
when they are asked for)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.rest.connection import RestConnection
from modelyard.backends.metadata.rest.features import (
    RestFeatureRegistryStore,
    RestMaterializationStore,
)
from modelyard.backends.metadata.rest.registry import RestRegistryStore
from modelyard.backends.metadata.rest.tracking import RestTrackingStore
from modelyard.backends.metadata.rest.writes import RestWriteStore
from modelyard.backends.metadata.stores import MetadataStores

if TYPE_CHECKING:
    from modelyard.backends.artifacts.base import ArtifactStore
    from modelyard.backends.s3 import S3Options

__all__ = ["RestMetadataStores"]


class RestMetadataStores(MetadataStores):
    remote = True

    def __init__(self, uri: str, *, token: str | None = None, transport: Any = None) -> None:
        self.connection = RestConnection(uri, token=token, transport=transport)
        self._tracking = RestTrackingStore(self.connection)
        self._writes = RestWriteStore(self.connection)
        self._registry = RestRegistryStore(self.connection)

    @property
    def uri(self) -> str:
        return self.connection.uri

    @property
    def tracking(self) -> RestTrackingStore:
        return self._tracking

    @property
    def writes(self) -> RestWriteStore:
        return self._writes

    def registry(self) -> RestRegistryStore:
        return self._registry

    def feature_registry(self) -> RestFeatureRegistryStore:
        return RestFeatureRegistryStore(self.connection)

    def materializations(self) -> RestMaterializationStore:
        return RestMaterializationStore(self.connection)

    def artifacts(self, uri: str, s3: S3Options | None = None) -> ArtifactStore:
        from modelyard.backends.artifacts.base import artifact_store_from_uri
        from modelyard.backends.artifacts.rest import RestArtifactStore

        if uri.rstrip("/") == self.connection.base_url or uri.startswith(("http://",
                                                                          "https://")):
            return RestArtifactStore(self.connection)
        return artifact_store_from_uri(uri, s3)  # a shared folder or bucket both ends reach

    def close(self) -> None:
        self.connection.close()
