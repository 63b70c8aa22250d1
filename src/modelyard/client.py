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

from modelyard.backends.artifacts.base import artifact_store_from_uri
from modelyard.backends.metadata.base import Experiment, RunRecord
from modelyard.backends.metadata.sql.engine import make_engine
from modelyard.backends.metadata.sql.tracking_store import SqlTrackingStore
from modelyard.backends.metadata.sql.write_store import SqlWriteStore
from modelyard.backends.s3 import S3Options
from modelyard.errors import ConfigurationError
from modelyard.settings import Settings, load_settings
from modelyard.tracking.frames import RunComparison
from modelyard.tracking.run import Run
from modelyard.tracking.service import TrackingService

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.backends.metadata.materializations import MaterializationRecord
    from modelyard.backends.metadata.predictions import LabelResult, PredictionStore
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
    from modelyard.serving.predlog import PredictionLog


class Yard:
    """A connection to one modelyard project (its stores and services)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine = make_engine(settings.uri)
        self._s3 = S3Options.from_mapping(settings.s3())  # how to reach s3:// stores
        try:
            self.tracking = TrackingService(
                SqlTrackingStore(self._engine),
                artifact_store_from_uri(settings.artifact_uri, self._s3),
                settings,
            )
            self.tracking.models = lambda: self.models
            self.writes = SqlWriteStore(self._engine)
            self.tracking.writes = self.writes
            # writes a crash left half-done: one cheap query unless there are any
            self.repairs: list[Repair] = self.recover() if self.writes.has_intents() else []
        except BaseException:  # e.g. SchemaVersionError: close what was opened
            self._engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"Yard(project={self.settings.project_name!r}, uri={self.store_uri!r})"

    @property
    def store_uri(self) -> str:
        return str(self._engine.url.render_as_string(hide_password=True))

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
        from modelyard.backends.metadata.sql.registry_store import SqlRegistryStore
        from modelyard.registry.service import ModelRegistry

        return ModelRegistry(SqlRegistryStore(self._engine), self.tracking.artifacts,
                             self.tracking, lambda: self.features, self.settings.project_root,
                             writes=self.writes)

    @functools.cached_property
    def monitoring(self) -> MonitoringService:
        """Checks of served models over time windows: drift, quality, performance,
        health, alerts and reports."""
        from modelyard.backends.metadata.sql.monitor_store import SqlMonitorStore
        from modelyard.monitoring.service import MonitoringService

        service = MonitoringService(SqlMonitorStore(self._engine), self.models,
                                    self.predictions, self.settings.project_root)
        self.pipelines.hook_into(service)  # alerts may trigger retraining pipelines
        return service

    @functools.cached_property
    def pipelines(self) -> PipelineService:
        """Registered training pipelines: apply, run, queue, triggers, run records."""
        from modelyard.backends.metadata.sql.decision_store import SqlDecisionStore
        from modelyard.backends.metadata.sql.pipeline_store import SqlPipelineStore
        from modelyard.pipelines.context import PipelineServices
        from modelyard.pipelines.service import PipelineService

        return PipelineService(SqlPipelineStore(self._engine),
                               PipelineServices(self.tracking, lambda: self.models,
                                                lambda: self.features,
                                                lambda: self.monitoring),
                               lambda: self.monitoring, self.settings.project_root,
                               SqlDecisionStore(self._engine))

    # --- predictions ----------------------------------------------------------------------

    @functools.cached_property
    def predictions(self) -> PredictionStore:
        """Where served predictions and their labels are kept (``predictions_uri``)."""
        from modelyard.backends.predictions import prediction_store_from_uri

        return prediction_store_from_uri(self.settings.predictions_uri,
                                         metadata_engine=self._engine)

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
        from modelyard.backends.metadata.sql.feature_registry_store import (
            SqlFeatureRegistryStore,
        )
        from modelyard.backends.offline import engine_from_setting
        from modelyard.backends.offline.tables import offline_store_from_uri
        from modelyard.features.service import FeatureService

        return FeatureService(SqlFeatureRegistryStore(self._engine, migrate=False),
                              offline_store_from_uri(self.settings.offline_uri, self._s3),
                              engine_from_setting(self.settings.engine),
                              self.settings.project_root,
                              online=self._open_online, writes=self.writes)

    def _open_online(self, features: FeatureService) -> OnlineService:
        from modelyard.backends.metadata.sql.materialization_store import (
            SqlMaterializationStore,
        )
        from modelyard.backends.online.base import online_store_from_uri
        from modelyard.features.online import OnlineService

        store = online_store_from_uri(self.settings.online_uri,
                                      self.settings.project_name or "modelyard")
        self._online_store = store
        return OnlineService(features, store, SqlMaterializationStore(self._engine),
                             self.settings.materialize_chunk_rows)

    def materialize(self, groups: Sequence[str] | str | None = None, *,
                    at: datetime | None = None, since: datetime | None = None,
                    incremental: bool = False) -> list[MaterializationRecord]:
        """Write the latest feature values to the online store; see OnlineService."""
        return self.features.online.materialize(groups, at=at, since=since,
                                                incremental=incremental)

    def online_features(self, features: Sequence[str] | str, entities: Any, *,
                        request: dict[str, Any] | None = None,
                        at: datetime | None = None) -> OnlineResult:
        """Feature values of entities from the online store, with a status per row;
        ``request`` holds the values request-time features need."""
        return self.features.online.online_features(features, entities, request=request,
                                                    at=at)

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
                     end: datetime | None = None) -> TrainingSet:
        """Point-in-time-correct features for each spine row; see FeatureService."""
        return self.features.training_set(spine, features, label=label, timestamp=timestamp,
                                          as_of=as_of, start=start, end=end)

    # --- upkeep ---------------------------------------------------------------------------

    def gc(self, *, dry_run: bool = False, older_than: str | float | timedelta = "1h",
           ) -> GcReport:
        """Remove blobs no record refers to and offline-table files no Delta version lists,
        older than ``older_than`` (``30m``, ``1h``, ``2d`` or seconds) and held by no writer
        in flight; ``dry_run`` only reports. See :mod:`modelyard.maintenance.gc`."""
        from modelyard.backends.metadata.sql.blob_references import SqlBlobReferences
        from modelyard.backends.offline.tables import offline_store_from_uri
        from modelyard.maintenance.gc import collect_garbage

        return collect_garbage(SqlBlobReferences(self._engine), self.tracking.artifacts,
                               offline_store_from_uri(self.settings.offline_uri, self._s3)
                               if self.settings.offline_uri else None,
                               older_than=older_than, dry_run=dry_run, writes=self.writes)

    # --- lifecycle ------------------------------------------------------------------------

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
        self._engine.dispose()

    def __enter__(self) -> Yard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(uri: str | None = None, *, project: str | os.PathLike[str] | None = None,
            artifact_uri: str | None = None, **settings: Any) -> Yard:
    """Connect to the project found by walking up from the working directory.

    ``uri`` (or ``MODELYARD_URI``) points the metadata store elsewhere: ``sqlite:///path.db``
    or ``postgresql://user@host/db``. Any setting of :class:`modelyard.Settings` can be given
    as a keyword.
    """
    if uri is not None and uri.startswith(("http://", "https://")):
        raise ConfigurationError(
            "connecting to a modelyard server over HTTP is not available in this version; "
            "use a sqlite:// or postgresql:// URI"
        )
    resolved = load_settings(Path(project) if project is not None else None, uri=uri,
                             artifact_uri=artifact_uri, **settings)
    return Yard(resolved)
