"""The one public facade: ``modelyard.connect()`` returns a :class:`Yard`.

``Yard`` stays short on purpose: it wires backends chosen by URI to the domain services and
offers a few shortcuts; the work happens in the services (``yard.tracking`` ...).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.base import Experiment, RunRecord
from modelyard.backends.metadata.stores import HTTP_SCHEMES, MetadataStores, metadata_stores
from modelyard.backends.s3 import S3Options
from modelyard.settings import Settings, load_settings
from modelyard.tracking.frames import RunComparison
from modelyard.tracking.run import Run
from modelyard.tracking.service import TrackingService

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.backends.metadata.materializations import MaterializationRecord
    from modelyard.backends.metadata.predictions import LabelResult, PredictionStore
    from modelyard.backends.metadata.replicas import ReplicaStore
    from modelyard.backends.metadata.writes import Repair
    from modelyard.backends.offline.tables import Commit
    from modelyard.features.definitions import FeatureGroup, Source
    from modelyard.features.lookup import OnlineResult
    from modelyard.features.online import OnlineService, PushResult
    from modelyard.features.registry import AnyDefinition, Change
    from modelyard.features.service import FeatureService
    from modelyard.features.training import TrainingSet
    from modelyard.maintenance.gc import GcReport
    from modelyard.monitoring.service import MonitoringService
    from modelyard.pipelines.service import PipelineService
    from modelyard.registry.service import ModelRegistry
    from modelyard.security.principals import Principal
    from modelyard.security.service import SecurityService
    from modelyard.serving.predlog import PredictionLog


class Yard:
    """A connection to one modelyard project (its stores and services)."""

    def __init__(self, settings: Settings, stores: MetadataStores | None = None) -> None:
        self.settings = settings
        self.stores = metadata_stores(settings.uri) if stores is None else stores
        self._engine = getattr(self.stores, "engine", None)  # the SQL family's, for tests
        self._s3 = S3Options.from_mapping(settings.s3())  # how to reach s3:// stores
        try:
            self.tracking = TrackingService(
                self.stores.tracking, self.stores.artifacts(settings.artifact_uri, self._s3),
                settings)
            self.tracking.models = lambda: self.models
            self.writes = self.stores.writes
            self.tracking.writes = self.writes
            # writes a crash left half-done: one cheap query unless there are any (a
            # server recovers its own on open, not its clients)
            self.repairs: list[Repair] = (
                self.recover() if not self.stores.remote and self.writes.has_intents()
                else [])
        except BaseException:  # e.g. SchemaVersionError: close what was opened
            self.stores.close()
            raise

    def __repr__(self) -> str:
        return f"Yard(project={self.settings.project_name!r}, uri={self.store_uri!r})"

    @property
    def store_uri(self) -> str:
        return self.stores.uri

    def recover(self) -> list[Repair]:
        """Complete or roll back every write whose process died mid-way (done on open);
        what was repaired, also kept for ``modelyard doctor``."""
        from modelyard.recovery import recover

        return recover(self)

    # --- tracking shortcuts ---------------------------------------------------------------

    def start_run(self, experiment: str | int | None = None, *, name: str | None = None,
                  parent: Run | str | None = None, nested: bool = True,
                  tags: dict[str, Any] | None = None) -> Run:
        return self.tracking.start_run(experiment, name=name, parent=parent, nested=nested,
                                       tags=tags)

    def active_run(self) -> Run | None:
        return self.tracking.active_run()

    def create_experiment(self, name: str, description: str = "") -> Experiment:
        return self.tracking.create_experiment(name, description)

    def list_experiments(self) -> list[Experiment]:
        return self.tracking.list_experiments()

    def get_run(self, run_id: str) -> RunRecord:
        return self.tracking.get_run(run_id)

    def search_runs(self, experiments: str | int | Sequence[str | int] | None = None,
                    filter: str | None = None, order_by: Sequence[str] | str | None = None,
                    limit: int | None = None) -> pd.DataFrame:
        return self.tracking.search_runs(experiments, filter, order_by, limit)

    def best_run(self, experiment: str | int, metric: str, *, mode: str = "max",
                 filter: str | None = None) -> RunRecord:
        return self.tracking.best_run(experiment, metric, mode=mode, filter=filter)

    def compare_runs(self, run_ids: Iterable[str]) -> RunComparison:
        return self.tracking.compare_runs(run_ids)

    def autolog(self, *, log_models: bool = True, disable: bool = False) -> None:
        """Log scikit-learn (and XGBoost/LightGBM) training automatically."""
        from modelyard.tracking import autolog

        autolog.configure(self.tracking, log_models=log_models, disable=disable)

    # --- models ---------------------------------------------------------------------------

    @functools.cached_property
    def models(self) -> ModelRegistry:
        """The model registry: versions, aliases, evaluation, promotion, lineage."""
        from modelyard.registry.service import ModelRegistry

        return ModelRegistry(self.stores.registry(), self.tracking.artifacts,
                             self.tracking, lambda: self.features, self.settings.project_root,
                             writes=self.writes)

    @functools.cached_property
    def monitoring(self) -> MonitoringService:
        """Checks of served models over time windows: drift, quality, performance,
        health, alerts and reports."""
        from modelyard.monitoring.service import MonitoringService

        service = MonitoringService(self.stores.monitor(), self.models,
                                    self.predictions, self.settings.project_root)
        self.pipelines.hook_into(service)  # alerts may trigger retraining pipelines
        return service

    @functools.cached_property
    def pipelines(self) -> PipelineService:
        """Registered training pipelines: apply, run, queue, triggers, run records."""
        from modelyard.pipelines.context import PipelineServices
        from modelyard.pipelines.service import PipelineService

        return PipelineService(self.stores.pipelines(),
                               PipelineServices(self.tracking, lambda: self.models,
                                                lambda: self.features,
                                                lambda: self.monitoring,
                                                lambda: self.predictions),
                               lambda: self.monitoring, self.settings.project_root,
                               self.stores.decisions())

    @functools.cached_property
    def security(self) -> SecurityService:
        """Users, tokens, roles, permission checks, the audit log and PII release."""
        from modelyard.security.pii import load_key
        from modelyard.security.service import SecurityService
        from modelyard.settings import DATA_DIR

        root = self.settings.project_root
        key_path = None if root is None else root / DATA_DIR / "pii.key"
        return SecurityService(self.stores.identities(), self.stores.audit(),
                               self.settings.project_name or "default",
                               pii_key=None if key_path is None
                               else functools.partial(load_key, key_path))

    @functools.cached_property
    def replicas(self) -> ReplicaStore:
        """The live model servers of this project and what each serves (heartbeats)."""
        return self.stores.replicas()

    # --- predictions ----------------------------------------------------------------------

    @functools.cached_property
    def predictions(self) -> PredictionStore:
        """Where served predictions and their labels are kept (``predictions_uri``)."""
        return self.stores.predictions(self.settings.predictions_uri)

    @functools.cached_property
    def prediction_log(self) -> PredictionLog:
        """The asynchronous writer a model server logs every prediction through."""
        from modelyard.serving.predlog import PredictionLog

        return PredictionLog(self.predictions,
                             flush_interval=self.settings.prediction_flush_interval,
                             max_pending=self.settings.prediction_queue_max)

    def read_predictions(self, model: str, *, version: int | None = None,
                         start: datetime | None = None, end: datetime | None = None,
                         role: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """Logged predictions of ``model`` (with their labels) as a DataFrame: the record
        fields and ``entity.*``, ``features.*``, ``output.*``, ``label.*`` columns."""
        from modelyard.serving.labels import epoch_us

        return self.predictions.read(
            model, version=version, start_us=None if start is None else epoch_us(start),
            end_us=None if end is None else epoch_us(end, "end"), role=role,  # type: ignore[arg-type]
            limit=limit)

    def log_labels(self, model: str, data: Any, *, entity: Sequence[str] | str | None = None,
                   values: Sequence[str] | str | None = None) -> LabelResult:
        """Attach ground truth to logged predictions, by ``request_id`` (and ``row``) or by
        ``entity`` key columns and ``at`` (the latest prediction at or before it)."""
        from modelyard.serving.labels import labels_from

        return self.predictions.add_labels(model, labels_from(data, entity=entity,
                                                              values=values))

    # --- features -------------------------------------------------------------------------

    @functools.cached_property
    def features(self) -> FeatureService:
        """The feature store (its engine and table format load on first use)."""
        from modelyard.backends.offline import engine_from_setting
        from modelyard.backends.offline.tables import offline_store_from_uri
        from modelyard.features.service import FeatureService

        return FeatureService(self.stores.feature_registry(),
                              offline_store_from_uri(self.settings.offline_uri, self._s3),
                              engine_from_setting(self.settings.engine),
                              self.settings.project_root,
                              online=self._open_online, writes=self.writes)

    def _open_online(self, features: FeatureService) -> OnlineService:
        from modelyard.backends.online.base import online_store_from_uri
        from modelyard.features.online import OnlineService

        store = online_store_from_uri(self.settings.online_uri,
                                      self.settings.project_name or "modelyard")
        self._online_store = store
        return OnlineService(features, store, self.stores.materializations(),
                             self.settings.materialize_chunk_rows)

    def materialize(self, groups: Sequence[str] | str | None = None, *,
                    at: datetime | None = None, since: datetime | None = None,
                    incremental: bool = False) -> list[MaterializationRecord]:
        """Write the latest feature values to the online store; see OnlineService."""
        return self.features.online.materialize(groups, at=at, since=since,
                                                incremental=incremental)

    def online_features(self, features: Sequence[str] | str, entities: Any, *,
                        request: dict[str, Any] | None = None,
                        at: datetime | None = None,
                        principal: Principal | None = None) -> OnlineResult:
        """Feature values of entities from the online store, with a status per row;
        ``request`` holds the values request-time features need. For a ``principal``, the
        read is checked (``online:read``) and features tagged ``pii`` are masked unless it
        holds ``pii:read`` (see docs/security.md)."""
        def lookup() -> OnlineResult:
            return self.features.online.online_features(features, entities, request=request,
                                                        at=at)

        if principal is None:
            return lookup()
        from modelyard.security.release import release_online

        return release_online(self.security, self.features, principal, lookup)

    def push(self, group: FeatureGroup | str, data: Any) -> PushResult:
        """Write fresh rows to the offline table and the online store in one call."""
        return self.features.online.push(group, data)

    def apply(self, objects: Sequence[AnyDefinition]) -> list[Change]:
        """Store entities, sources and feature groups; a changed one becomes a new version."""
        return self.features.apply(objects)

    def ingest(self, target: Source | FeatureGroup | str, data: Any = None, *,
               idempotency_key: str | None = None) -> Commit:
        """Validate and append a batch to a source's offline table (one atomic commit);
        a retry under the same ``idempotency_key`` returns the first commit."""
        return self.features.ingest(target, data, idempotency_key=idempotency_key)

    def training_set(self, spine: Any = None, features: Sequence[str] | str = (), *,
                     label: str | None = None, timestamp: str | None = None,
                     as_of: datetime | str | None = None, start: datetime | None = None,
                     end: datetime | None = None,
                     principal: Principal | None = None) -> TrainingSet:
        """Point-in-time-correct features for each spine row; see FeatureService. For a
        ``principal``, the read is checked (``training_sets:read``), audited, and features
        tagged ``pii`` are masked unless it holds ``pii:read``."""
        def build() -> TrainingSet:
            return self.features.training_set(spine, features, label=label,
                                              timestamp=timestamp, as_of=as_of, start=start,
                                              end=end)

        if principal is None:
            return build()
        from modelyard.security.release import release_training_set

        return release_training_set(self.security, self.features, principal, build)

    # --- upkeep ---------------------------------------------------------------------------

    def gc(self, *, dry_run: bool = False, older_than: str | float | timedelta = "1h",
           ) -> GcReport:
        """Remove blobs no record refers to and offline-table files no Delta version lists,
        older than ``older_than`` (``30m``, ``1h``, ``2d`` or seconds) and held by no writer
        in flight; ``dry_run`` only reports. See :mod:`modelyard.maintenance.gc`."""
        from modelyard.backends.offline.tables import offline_store_from_uri
        from modelyard.maintenance.gc import collect_garbage

        return collect_garbage(self.stores.blob_references(), self.tracking.artifacts,
                               offline_store_from_uri(self.settings.offline_uri, self._s3)
                               if self.settings.offline_uri else None,
                               older_than=older_than, dry_run=dry_run, writes=self.writes)

    # --- lifecycle ------------------------------------------------------------------------

    def flush_prediction_log(self, timeout: float) -> None:
        """Write what the prediction log holds now, if one was opened."""
        log = self.__dict__.get("prediction_log")
        if log is not None:
            log.flush(timeout=timeout)

    def close(self) -> None:
        self.tracking.buffer.flush()
        log = self.__dict__.get("prediction_log")
        if log is not None:
            log.close(timeout=10)
        predictions = self.__dict__.get("predictions")
        if predictions is not None:
            predictions.close()
        store = self.__dict__.get("_online_store")
        if store is not None:
            store.close()
        self.stores.close()

    def __enter__(self) -> Yard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(uri: str | None = None, *, project: str | os.PathLike[str] | None = None,
            artifact_uri: str | None = None, token: str | None = None,
            transport: Any = None, **settings: Any) -> Yard:
    """Connect to the project found by walking up from the working directory.

    ``uri`` (or ``MODELYARD_URI``) points the metadata store elsewhere: ``sqlite:///path.db``,
    ``postgresql://user@host/db``, or ``http(s)://host:port`` for a ``modelyard server``
    (``token``, or ``MODELYARD_TOKEN``, is sent as a bearer token; ``transport``, an
    ``httpx.BaseTransport``, replaces the network, e.g. to reach an app in this process).
    Any setting of :class:`modelyard.Settings` can be given as a keyword.
    """
    resolved = load_settings(Path(project) if project is not None else None, uri=uri,
                             artifact_uri=artifact_uri, **settings)
    if not resolved.uri.startswith(HTTP_SCHEMES):  # a token matters to a server only
        return Yard(resolved, metadata_stores(resolved.uri, token=token, transport=transport))
    return Yard(resolved, metadata_stores(
        resolved.uri, token=token or os.environ.get("MODELYARD_TOKEN") or None,
        transport=transport))
