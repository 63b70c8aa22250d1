"""`modelyard users|tokens|roles` end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from modelyard import Yard

from .conftest import Invoke


def test_users_tokens_and_roles_from_the_command_line(
        invoke: Invoke, yard: Yard, store_uri: str) -> None:
    def ok(*args: str) -> str:
        result = invoke(*args, "--uri", store_uri)
        assert result.exit_code == 0, result.output
        return result.output

    assert "Created person alice" in ok("users", "create", "alice")
    assert "Created service ci" in ok("users", "create", "ci", "--service")
    created = json.loads(ok("tokens", "create", "ci", "--expires", "30d", "-d", "deploys",
                            "--json"))
    token, token_id = created["token"], created["token_id"]
    assert token.startswith(f"myd_{token_id}_") and created["state"] == "active"
    assert "digest" not in created
    plain = ok("tokens", "create", "alice")
    assert "shown this once" in plain
    listed = ok("tokens", "list", "--user", "ci")
    assert token_id in listed and "deploys" in listed and token not in listed
    assert ok("roles", "grant", "ci", "editor", "--env", "staging").startswith("Granted editor")
    ok("roles", "grant", "alice", "pii:read", "--project", "*")
    grants = json.loads(ok("roles", "list", "--json"))
    assert [(g["user"], g["project"], g["environment"], g["role"]) for g in grants] == [
        ("alice", "*", "*", "pii:read"), ("ci", "testproj", "staging", "editor")]
    principal = yard.security.authenticate(token)
    assert principal.name == "ci" and principal.kind == "service"
    ok("tokens", "revoke", token_id)
    assert json.loads(ok("tokens", "list", "--user", "ci", "--json"))[0]["state"] == "revoked"
    ok("roles", "revoke", "ci", "editor", "--env", "staging")
    assert "No grants" not in ok("roles", "list")
    ok("users", "disable", "alice")
    users = {u["name"]: u["disabled_at_ms"] for u in json.loads(ok("users", "list", "--json"))}
    assert users["alice"] is not None and users["ci"] is None
    actions = [e.action for e in reversed(yard.security.audit_entries(limit=None))]
    assert actions == ["users:create", "users:create", "tokens:create", "tokens:create",
                       "roles:grant", "roles:grant", "tokens:revoke", "roles:revoke",
                       "users:disable"]
    bad = invoke("roles", "grant", "ci", "owner", "--uri", store_uri)
    assert bad.exit_code != 0 and "role 'owner'" in str(bad.exception)
