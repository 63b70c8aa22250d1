"""modelyard: the whole machine-learning lifecycle in one pip install.

Importing the package is cheap: the facade and its dependencies (SQLAlchemy, pandas...)
load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from modelyard._version import __version__
from modelyard.errors import (
    AlreadyExistsError,
    ArtifactIntegrityError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    DataValidationError,
    GateFailedError,
    IdempotencyConflictError,
    InvalidDefinitionError,
    InvalidFilterError,
    InvalidInputError,
    InvalidMetricError,
    ModelyardError,
    NotFoundError,
    ParamConflictError,
    PermissionDeniedError,
    ProjectNotFoundError,
    RateLimitedError,
    RunStateError,
    SchemaVersionError,
    StorageError,
)

if TYPE_CHECKING:
    from modelyard.client import Yard, connect
    from modelyard.features.definitions import (
        Entity,
        Feature,
        FeatureGroup,
        Source,
        Transform,
        transform,
    )
    from modelyard.features.lookup import OnlineResult
    from modelyard.features.request import RequestFeatureGroup
    from modelyard.features.training import TrainingSet
    from modelyard.pipelines.context import PipelineContext
    from modelyard.pipelines.declarations import EvaluationWindow, Shadow
    from modelyard.pipelines.definitions import (
        Pipeline,
        on_alert,
        on_new_data,
        on_success,
        pipeline,
    )
    from modelyard.project import init_project
    from modelyard.settings import Settings
    from modelyard.tracking.frames import RunComparison
    from modelyard.tracking.run import Run

__all__ = [
    "AlreadyExistsError",
    "ArtifactIntegrityError",
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "DataValidationError",
    "Entity",
    "EvaluationWindow",
    "Feature",
    "FeatureGroup",
    "GateFailedError",
    "IdempotencyConflictError",
    "InvalidDefinitionError",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidMetricError",
    "ModelyardError",
    "NotFoundError",
    "OnlineResult",
    "ParamConflictError",
    "PermissionDeniedError",
    "Pipeline",
    "PipelineContext",
    "ProjectNotFoundError",
    "RateLimitedError",
    "RequestFeatureGroup",
    "Run",
    "RunComparison",
    "RunStateError",
    "SchemaVersionError",
    "Settings",
    "Shadow",
    "Source",
    "StorageError",
    "TrainingSet",
    "Transform",
    "Yard",
    "__version__",
    "connect",
    "init_project",
    "on_alert",
    "on_new_data",
    "on_success",
    "pipeline",
    "transform",
]

_LAZY = {
    "Entity": "modelyard.features.definitions",
    "Feature": "modelyard.features.definitions",
    "FeatureGroup": "modelyard.features.definitions",
    "Source": "modelyard.features.definitions",
    "Transform": "modelyard.features.definitions",
    "transform": "modelyard.features.definitions",
    "TrainingSet": "modelyard.features.training",
    "RequestFeatureGroup": "modelyard.features.request",
    "OnlineResult": "modelyard.features.lookup",
    "Yard": "modelyard.client",
    "connect": "modelyard.client",
    "init_project": "modelyard.project",
    "Settings": "modelyard.settings",
    "Run": "modelyard.tracking.run",
    "RunComparison": "modelyard.tracking.frames",
    "Pipeline": "modelyard.pipelines.definitions",
    "PipelineContext": "modelyard.pipelines.context",
    "pipeline": "modelyard.pipelines.definitions",
    "Shadow": "modelyard.pipelines.declarations",
    "EvaluationWindow": "modelyard.pipelines.declarations",
    "on_alert": "modelyard.pipelines.definitions",
    "on_success": "modelyard.pipelines.definitions",
    "on_new_data": "modelyard.pipelines.definitions",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
