"""Users, tokens and grants on SQLite and PostgreSQL: tokens shown once and stored as a
digest, refused when wrong, expired or revoked, and never written to a log."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from modelyard import Yard
from modelyard.errors import (
    AlreadyExistsError,
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from modelyard.security import Principal, SecurityService
from modelyard.security.tokens import digest, token_id_of

from .conftest import Clock


def _dump(yard: Yard) -> str:
    """Every row of every security table, as text."""
    with yard._engine.connect() as conn:
        return "\n".join(repr(tuple(row)) for name in ("users", "api_tokens", "role_grants",
                                                        "audit_log")
                         for row in conn.execute(sa.text(f"SELECT * FROM {name}")))


def test_a_token_is_shown_once_and_stored_only_as_its_digest(
        yard: Yard, security: SecurityService, local: Principal) -> None:
    security.create_user("alice", by=local)
    issued = security.create_token("alice", description="laptop", by=local)
    token_id = token_id_of(issued.token)
    assert token_id == issued.record.token_id and len(issued.token) == 4 + 8 + 1 + 43
    assert issued.record.digest == digest(issued.token)
    assert issued.token not in repr(issued)
    secret = issued.token.split("_", 2)[2]
    stored = _dump(yard)
    assert token_id in stored and secret not in stored and issued.token not in stored
    listed = security.tokens("alice")
    assert [(t.token_id, t.description, t.state(0)) for t in listed] == [
        (token_id, "laptop", "active")]


def test_authenticate_gives_the_user_with_its_grants(
        security: SecurityService, local: Principal) -> None:
    security.create_user("alice", by=local)
    security.grant("alice", "editor", by=local)
    security.grant("alice", "maintainer", environment="staging", by=local)
    security.grant("alice", "admin", project="other", by=local)  # another project: not loaded
    token = security.create_token("alice", by=local).token
    principal = security.authenticate(token, source="10.0.0.1")
    assert (principal.name, principal.kind, principal.actor) == ("alice", "person",
                                                                "user:alice")
    assert sorted((g.project, g.environment, g.role) for g in principal.grants) == [
        ("claims", "*", "editor"), ("claims", "staging", "maintainer")]
    assert security.tokens("alice")[0].last_used_ms is not None


@pytest.mark.parametrize("mangle", ["wrong-secret", "unknown-id", "malformed", "empty"])
def test_a_bad_token_is_refused_recorded_and_never_logged(
        security: SecurityService, local: Principal, mangle: str,
        caplog: pytest.LogCaptureFixture) -> None:
    security.create_user("alice", by=local)
    token = security.create_token("alice", by=local).token
    bad = {"wrong-secret": token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
           "unknown-id": "myd_00000000_" + token.split("_", 2)[2],
           "malformed": "not a token " + token[5:], "empty": ""}[mangle]
    with caplog.at_level(logging.WARNING, logger="modelyard.security"), \
            pytest.raises(AuthenticationError, match="not valid") as caught:
        security.authenticate(bad, source="10.0.0.9")
    assert caught.value.http_status == 401
    assert token[13:] not in caplog.text and (not bad or bad not in caplog.text)
    assert "10.0.0.9" in caplog.text
    failed = security.audit_entries(action="auth:failed")
    assert [(e.actor, e.source, e.outcome) for e in failed] == [
        ("anonymous", "10.0.0.9", "denied")]
    assert token[13:] not in failed[0].detail_json + failed[0].target


def test_expiry_revocation_and_disabling_end_a_token(
        security: SecurityService, local: Principal, clock: Clock) -> None:
    security.create_user("alice", by=local)
    short = security.create_token("alice", expires_in="1h", by=local)
    kept = security.create_token("alice", expires_in="never", by=local)
    security.authenticate(short.token)
    clock.advance(3601)
    with pytest.raises(AuthenticationError, match="expired"):
        security.authenticate(short.token)
    assert security.authenticate(kept.token).name == "alice"
    security.revoke_token(kept.record.token_id, by=local)
    with pytest.raises(AuthenticationError, match="revoked"):
        security.authenticate(kept.token)
    with pytest.raises(InvalidInputError, match="revoked already"):
        security.revoke_token(kept.record.token_id, by=local)
    third = security.create_token("alice", by=local)
    security.disable_user("alice", by=local)
    with pytest.raises(AuthenticationError, match="revoked"):
        security.authenticate(third.token)
    with pytest.raises(InvalidInputError, match="disabled"):
        security.create_token("alice", by=local)
    states = {t.token_id: t.state(int(clock.now * 1000)) for t in security.tokens()}
    assert states == {short.record.token_id: "revoked", kept.record.token_id: "revoked",
                      third.record.token_id: "revoked"}  # disabling revoked all of them


def test_names_roles_and_environments_are_checked(
        security: SecurityService, local: Principal) -> None:
    security.create_user("bob", kind="service", by=local)
    with pytest.raises(AlreadyExistsError):
        security.create_user("bob", by=local)
    with pytest.raises(InvalidInputError, match="user"):
        security.create_user("no spaces", by=local)
    with pytest.raises(InvalidInputError, match="role 'owner'"):
        security.grant("bob", "owner", by=local)
    with pytest.raises(InvalidInputError, match="environment 'qa'"):
        security.grant("bob", "editor", environment="qa", by=local)
    with pytest.raises(NotFoundError, match="no user 'carol'"):
        security.grant("carol", "editor", by=local)
    with pytest.raises(NotFoundError, match="no user 'carol'"):
        security.create_token("carol", by=local)
    with pytest.raises(InvalidInputError, match="duration"):
        security.create_token("bob", expires_in="soon", by=local)
    assert security.grant("bob", "pii:read", by=local).role == "pii:read"
    security.grant("bob", "viewer", project="*", by=local)
    assert [(g.project, g.role) for g in security.grants("bob")] == [
        ("*", "viewer"), ("claims", "pii:read")]
    security.revoke("bob", "pii:read", by=local)
    with pytest.raises(NotFoundError):
        security.revoke("bob", "pii:read", by=local)
    assert [(g.project, g.role) for g in security.grants(project="claims")] == [
        ("*", "viewer")]


def test_only_an_admin_manages_users_tokens_and_roles(
        security: SecurityService, local: Principal) -> None:
    security.create_user("ed", by=local)
    security.create_user("ada", by=local)
    security.grant("ed", "maintainer", by=local)
    security.grant("ada", "admin", by=local)
    ed = security.authenticate(security.create_token("ed", by=local).token)
    ada = security.authenticate(security.create_token("ada", by=local).token)
    with pytest.raises(PermissionDeniedError, match=r"'users:manage'.*'admin'"):
        security.create_user("mallory", by=ed)
    with pytest.raises(PermissionDeniedError, match="roles:manage"):
        security.grant("ed", "admin", by=ed)
    with pytest.raises(PermissionDeniedError, match="tokens:manage"):
        security.create_token("ada", by=ed)
    assert [u.name for u in security.users()] == ["ada", "ed"]
    security.create_user("carol", by=ada)
    security.grant("carol", "viewer", by=ada)
    denied = security.audit_entries(outcome="denied")
    assert [(e.actor, e.action) for e in reversed(denied)] == [
        ("user:ed", "users:manage"), ("user:ed", "roles:manage"),
        ("user:ed", "tokens:manage")]
    assert security.audit_entries(limit=2)[0].actor == "user:ada"
