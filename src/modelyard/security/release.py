"""Data leaving the feature store for a principal: checked, masked, recorded.

The Yard calls these when a ``principal`` is given (``yard.training_set(...,
principal=p)``, ``yard.online_features(..., principal=p)``); a server route calls them with
the request's principal. The permission is checked before the data is built; then each
feature tagged ``pii`` is masked by its policy unless the principal holds ``pii:read``,
and the read is recorded in the audit log (training sets always, lookups when they hold
personal data).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from modelyard.security import pii
from modelyard.security.principals import Principal
from modelyard.security.service import SecurityService

if TYPE_CHECKING:
    from modelyard.features.lookup import OnlineResult
    from modelyard.features.service import FeatureService
    from modelyard.features.training import TrainingSet

__all__ = ["feature_policies", "release_online", "release_training_set"]


def feature_policies(features: FeatureService, refs: Sequence[str]
                     ) -> dict[str, pii.PiiPolicy]:
    """Output column -> PII policy of the referenced features tagged ``pii``."""
    if not refs:
        return {}
    return pii.policies_of((name, group.feature(name).tags)
                           for group, _, name in features.resolve_features(list(refs)))


def release_training_set(security: SecurityService, features: FeatureService,
                         principal: Principal, build: Callable[[], TrainingSet], *,
                         source: str = "") -> TrainingSet:
    security.require(principal, "training_sets:read", source=source)
    result = build()
    table = security.release(
        principal, result.table, feature_policies(features, result.features),
        action="training_sets:read", target=f"training_set:{result.training_set_id}",
        source=source, detail={"rows": result.table.num_rows, "features": result.features},
        always_record=True)
    return result if table is result.table else dataclasses.replace(result, table=table)


def release_online(security: SecurityService, features: FeatureService,
                   principal: Principal, build: Callable[[], OnlineResult], *,
                   source: str = "") -> OnlineResult:
    security.require(principal, "online:read", source=source)
    result = build()
    values = security.release(principal, result.values,
                              feature_policies(features, result.refs), action="online:read",
                              target="online", source=source, detail={"rows": len(result)})
    return result if values is result.values else dataclasses.replace(result, values=values)
