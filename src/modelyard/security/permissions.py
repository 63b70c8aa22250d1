"""The permission table: each action, the least role that may do it, per environment.

Routes name their action (``@requires("models:promote", environment=...)``), never a role,
so the table below is the one place that says who may do what. A grant gives a role on a
project (or ``*``) in an environment (or ``*``); an action checked without an environment
(``runs:write``) needs a grant for every environment, one checked in ``staging`` is allowed
by a grant for ``staging`` or for ``*``. ``pii:read`` is also granted on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from modelyard.errors import ConfigurationError, PermissionDeniedError
from modelyard.security.principals import ENVIRONMENTS, ROLES, Principal, role_rank

__all__ = ["PERMISSIONS", "Rule", "authorize", "environment_of_alias", "is_allowed",
           "least_role"]


@dataclass(frozen=True)
class Rule:
    role: str  # the least role, anywhere (and in environments not listed)
    environments: Mapping[str, str] = field(default_factory=dict)  # least role per env

    def role_for(self, environment: str | None) -> str:
        if environment is None:
            return self.role
        return self.environments.get(environment, self.role)


_BY_ENVIRONMENT = {"dev": "editor", "staging": "editor", "prod": "maintainer"}

PERMISSIONS: Mapping[str, Rule] = MappingProxyType({
    # tracking
    "runs:read": Rule("viewer"),
    "runs:write": Rule("editor"),  # experiments, runs, params, metrics, artifacts
    # feature store
    "features:read": Rule("viewer"),  # definitions, commits, profiles
    "features:apply": Rule("editor"),
    "features:ingest": Rule("editor"),
    "features:materialize": Rule("editor"),
    "features:forget": Rule("maintainer"),
    "training_sets:read": Rule("viewer"),
    "online:read": Rule("viewer"),
    "online:push": Rule("editor"),
    # registry
    "models:read": Rule("viewer"),
    "models:register": Rule("editor"),
    "models:promote": Rule("maintainer", _BY_ENVIRONMENT),  # move an alias
    "models:rollback": Rule("maintainer", _BY_ENVIRONMENT),
    "models:approve": Rule("maintainer", _BY_ENVIRONMENT),  # approve / reject a decision
    # serving and monitoring
    "models:predict": Rule("viewer"),
    "deployments:manage": Rule("maintainer", _BY_ENVIRONMENT),
    "monitoring:read": Rule("viewer"),
    "monitoring:check": Rule("editor"),
    "labels:write": Rule("editor"),
    # pipelines
    "pipelines:read": Rule("viewer"),
    "pipelines:apply": Rule("editor"),
    "pipelines:run": Rule("editor"),
    # security
    "pii:read": Rule("admin"),  # or granted on its own
    "audit:read": Rule("admin"),
    "users:manage": Rule("admin"),
    "tokens:manage": Rule("admin"),
    "roles:manage": Rule("admin"),
})

_ALIAS_ENVIRONMENTS = {"production": "prod", "development": "dev", "stage": "staging"}


def environment_of_alias(alias: str) -> str | None:
    """The environment an alias names (``prod``, ``production`` -> ``prod``), or None for
    any other alias (checked with the action's base role, maintainer for promotions)."""
    name = alias.strip().lower()
    if name in ENVIRONMENTS:
        return name
    return _ALIAS_ENVIRONMENTS.get(name)


def least_role(action: str, environment: str | None = None) -> str:
    try:
        rule = PERMISSIONS[action]
    except KeyError:
        raise ConfigurationError(
            f"unknown permission {action!r}; known: {', '.join(sorted(PERMISSIONS))}",
            permission=action) from None
    return rule.role_for(environment)


def _grant_applies(scope: str, wanted: str | None) -> bool:
    return scope == "*" or (wanted is not None and scope == wanted)


def is_allowed(principal: Principal, action: str, project: str,
               environment: str | None = None) -> bool:
    needed = role_rank(least_role(action, environment))
    if principal.is_local:
        return True
    for grant in principal.grants:
        if not (_grant_applies(grant.project, project)
                and _grant_applies(grant.environment, environment)):
            continue
        if grant.role == action or role_rank(grant.role) >= needed:
            return True
    return False


def authorize(principal: Principal, action: str, project: str,
              environment: str | None = None) -> None:
    """Return if ``principal`` may do ``action``; else PermissionDeniedError naming it."""
    if is_allowed(principal, action, project, environment):
        return
    needed = least_role(action, environment)
    where = f"project {project!r}" + (f", environment {environment!r}" if environment else "")
    also = f" or a grant of {action!r}" if action not in ROLES and action.startswith("pii") \
        else ""
    raise PermissionDeniedError(
        f"{principal.actor} lacks permission {action!r} on {where}: it needs the role "
        f"{needed!r}{also}", permission=action, required=needed, project=project,
        environment=environment)
