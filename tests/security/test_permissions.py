"""The permission table: each role may do exactly what it should, per project and
environment (no store needed: grants are loaded into the principal)."""

from __future__ import annotations

import pytest

from modelyard.backends.metadata.identities import GrantRecord
from modelyard.errors import ConfigurationError, PermissionDeniedError
from modelyard.security import ENVIRONMENTS, PERMISSIONS, ROLES, Principal
from modelyard.security.permissions import (
    authorize,
    environment_of_alias,
    is_allowed,
    least_role,
)


def who(*grants: tuple[str, str, str]) -> Principal:
    """A user with (project, environment, role) grants."""
    return Principal("u", "person", "abcd0123",
                     tuple(GrantRecord("u", p, e, r, "local:x", 0) for p, e, r in grants))


# role -> the actions it may do in project "claims" with no environment (and none more)
ALLOWED = {
    "viewer": {"runs:read", "features:read", "training_sets:read", "online:read",
               "models:read", "models:predict", "monitoring:read", "pipelines:read"},
}
ALLOWED["editor"] = ALLOWED["viewer"] | {
    "runs:write", "features:apply", "features:ingest", "features:materialize", "online:push",
    "models:register", "monitoring:check", "labels:write", "pipelines:apply",
    "pipelines:run"}
ALLOWED["maintainer"] = ALLOWED["editor"] | {
    "features:forget", "models:promote", "models:rollback", "models:approve",
    "deployments:manage"}
ALLOWED["admin"] = set(PERMISSIONS)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_can_do_exactly_its_actions(role: str) -> None:
    principal = who(("claims", "*", role))
    assert {a for a in PERMISSIONS if is_allowed(principal, a, "claims")} == ALLOWED[role]
    assert not any(is_allowed(principal, a, "other") for a in PERMISSIONS)


# who may move an alias (promote, roll back, approve) in each environment
MOVE = {  # role: (no environment, dev, staging, prod)
    "viewer": (False, False, False, False),
    "editor": (False, True, True, False),
    "maintainer": (True, True, True, True),
    "admin": (True, True, True, True),
}


@pytest.mark.parametrize("action", ["models:promote", "models:rollback", "models:approve",
                                    "deployments:manage"])
@pytest.mark.parametrize("role", ROLES)
def test_environments_have_their_own_required_role(role: str, action: str) -> None:
    principal = who(("claims", "*", role))
    got = tuple(is_allowed(principal, action, "claims", env)
                for env in (None, "dev", "staging", "prod"))
    assert got == MOVE[role]


def test_a_grant_in_one_environment_stays_there() -> None:
    staging = who(("claims", "staging", "maintainer"), ("claims", "*", "viewer"))
    assert is_allowed(staging, "models:promote", "claims", "staging")
    assert not is_allowed(staging, "models:promote", "claims", "prod")
    assert not is_allowed(staging, "models:promote", "claims")  # an alias of no environment
    assert not is_allowed(staging, "runs:write", "claims")  # needs a grant for every env
    assert is_allowed(staging, "runs:read", "claims")
    everywhere = who(("*", "*", "editor"))
    assert is_allowed(everywhere, "runs:write", "any-project")
    assert is_allowed(everywhere, "models:promote", "any-project", "staging")


def test_pii_read_is_granted_on_its_own_or_held_by_admins() -> None:
    assert not is_allowed(who(("claims", "*", "maintainer")), "pii:read", "claims")
    reader = who(("claims", "*", "viewer"), ("claims", "*", "pii:read"))
    assert is_allowed(reader, "pii:read", "claims")
    assert not is_allowed(reader, "runs:write", "claims")  # the grant is no role
    assert not is_allowed(reader, "pii:read", "other")
    assert is_allowed(who(("claims", "*", "admin")), "pii:read", "claims")


def test_the_local_operator_may_do_everything() -> None:
    local = Principal.local()
    assert local.actor.startswith("local:")
    assert all(is_allowed(local, a, "anything", "prod") for a in PERMISSIONS)


def test_a_refusal_names_the_permission_and_the_role_it_needs() -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        authorize(who(("claims", "*", "editor")), "models:promote", "claims", "prod")
    err = caught.value
    assert err.http_status == 403
    assert err.message == ("user:u lacks permission 'models:promote' on project 'claims', "
                           "environment 'prod': it needs the role 'maintainer'")
    assert err.to_dict()["details"] == {"permission": "models:promote",
                                        "required": "maintainer", "project": "claims",
                                        "environment": "prod"}


def test_the_table_is_well_formed() -> None:
    for action, rule in PERMISSIONS.items():
        assert ":" in action
        assert rule.role in ROLES
        assert set(rule.environments) <= set(ENVIRONMENTS)
        assert all(r in ROLES for r in rule.environments.values())
    with pytest.raises(ConfigurationError, match="unknown permission 'models:delete'"):
        least_role("models:delete")


@pytest.mark.parametrize(("alias", "env"), [
    ("prod", "prod"), ("production", "prod"), ("Staging", "staging"), ("dev", "dev"),
    ("development", "dev"), ("champion", None), ("canary", None)])
def test_aliases_name_environments(alias: str, env: str | None) -> None:
    assert environment_of_alias(alias) == env
