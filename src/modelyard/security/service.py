"""The security service (``yard.security``): users, tokens, roles, checks, audit, PII.

Every change it makes (a user, a token, a grant) is checked against the acting principal
(``by=``) and recorded in the audit log in the same call; a refused check is recorded too.
The CLI acts as :meth:`Principal.local`, the server as the principal its middleware
authenticated (:mod:`modelyard.security.middleware`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.audit import AuditEntry, AuditEvent, AuditQuery, AuditStore
from modelyard.backends.metadata.identities import (
    GrantRecord,
    IdentityStore,
    TokenRecord,
    UserRecord,
)
from modelyard.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from modelyard.security import pii, tokens
from modelyard.security.audit import AuditReport, verify_chain
from modelyard.security.permissions import authorize, is_allowed
from modelyard.security.principals import (
    ENVIRONMENTS,
    GRANTABLE_PERMISSIONS,
    ROLES,
    Principal,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["IssuedToken", "SecurityService", "parse_expiry"]

logger = logging.getLogger("modelyard.security")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}
DEFAULT_EXPIRY = "90d"
TOUCH_EVERY_MS = 60_000  # a token's last use is written at most once a minute


@dataclass(frozen=True)
class IssuedToken:
    """A new token: ``token`` is shown once and never stored."""

    token: str
    record: TokenRecord

    def __repr__(self) -> str:  # never print the secret by accident
        return f"IssuedToken(token_id={self.record.token_id!r}, user={self.record.user!r})"


def parse_expiry(value: str | timedelta | None) -> int | None:
    """Milliseconds a token lives (``30d``, ``12h``, ``2w``, a timedelta), or None for
    ``never``."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "never"):
        return None
    if isinstance(value, timedelta):
        ms = int(value.total_seconds() * 1000)
    else:
        m = _DURATION.match(str(value))
        if m is None:
            raise InvalidInputError(f"expiry {value!r} is not a duration like 30d, 12h, 2w or "
                                    "'never'", field="expires_in")
        ms = int(m[1]) * _UNIT_S[m[2]] * 1000
    if ms <= 0:
        raise InvalidInputError(f"expiry {value!r} must be positive", field="expires_in")
    return ms


def _check_name(what: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"{what} {name!r} must be 1-128 letters, digits, '.', '_', '@' or '-', starting "
            "with a letter or digit", field=what)
    return name


class SecurityService:
    def __init__(self, identities: IdentityStore, audit: AuditStore, project: str, *,
                 pii_key: Callable[[], bytes] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.identities = identities
        self.audit = audit
        self.project = project or "default"
        self._pii_key = pii_key
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- audit --------------------------------------------------------------------------

    def record(self, actor: Principal | str, action: str, *, target: str = "",
               project: str | None = None, environment: str | None = None,
               source: str = "", outcome: str = "ok",
               detail: Mapping[str, Any] | None = None) -> AuditEntry:
        """Append one entry to the audit log."""
        name = actor.actor if isinstance(actor, Principal) else actor
        event = AuditEvent(name, action, self.project if project is None else project,
                           environment or "", target, source, outcome, dict(detail or {}),
                           self._now_ms())
        return self.audit.append([event])[0]

    def audit_entries(self, query: AuditQuery | None = None, **filters: Any
                      ) -> list[AuditEntry]:
        """Entries newest first; ``filters`` are :class:`AuditQuery`'s fields."""
        return self.audit.entries(query or AuditQuery(**filters))

    def verify_audit(self, anchor: tuple[int, str] | None = None) -> AuditReport:
        return verify_chain(self.audit, anchor)

    # --- checks -------------------------------------------------------------------------

    def allowed(self, principal: Principal, action: str, *, project: str | None = None,
                environment: str | None = None) -> bool:
        return is_allowed(principal, action, project or self.project, environment)

    def require(self, principal: Principal, action: str, *, project: str | None = None,
                environment: str | None = None, source: str = "", target: str = "") -> None:
        """Return if allowed; else record the refusal and raise PermissionDeniedError."""
        project = project or self.project
        try:
            authorize(principal, action, project, environment)
        except PermissionDeniedError as exc:
            self.record(principal, action, target=target, project=project,
                        environment=environment, source=source, outcome="denied",
                        detail={"required": exc.details.get("required")})
            raise

    # --- users --------------------------------------------------------------------------

    def create_user(self, name: str, *, kind: str = "person", by: Principal,
                    source: str = "") -> UserRecord:
        _check_name("user", name)
        if kind not in ("person", "service"):
            raise InvalidInputError(f"user kind {kind!r} must be 'person' or 'service'",
                                    field="kind")
        self.require(by, "users:manage", source=source, target=f"user:{name}")
        record = UserRecord(name, kind, self._now_ms(), by.actor)
        self.identities.add_user(record)
        self.record(by, "users:create", target=f"user:{name}", source=source,
                    detail={"kind": kind})
        return record

    def users(self) -> list[UserRecord]:
        return self.identities.list_users()

    def disable_user(self, name: str, *, by: Principal, source: str = "") -> None:
        """Disable a user and revoke every token it holds."""
        self.require(by, "users:manage", source=source, target=f"user:{name}")
        if not self.identities.disable_user(name, self._now_ms()):
            raise NotFoundError(f"no user {name!r}", user=name)
        self.record(by, "users:disable", target=f"user:{name}", source=source)

    # --- tokens -------------------------------------------------------------------------

    def create_token(self, user: str, *, expires_in: str | timedelta | None = DEFAULT_EXPIRY,
                     description: str = "", by: Principal, source: str = "") -> IssuedToken:
        """A new token for ``user`` (shown once: only its digest is stored)."""
        lifetime = parse_expiry(expires_in)
        self.require(by, "tokens:manage", source=source, target=f"user:{user}")
        found = self.identities.get_user(user)
        if found is None:
            raise NotFoundError(f"no user {user!r}; create it first (modelyard users create)",
                                user=user)
        if found.disabled:
            raise InvalidInputError(f"user {user!r} is disabled", field="user")
        while True:
            token, token_id = tokens.new_token()
            if self.identities.get_token(token_id) is None:
                break
        now = self._now_ms()
        record = TokenRecord(token_id, user, tokens.digest(token), description, now,
                             None if lifetime is None else now + lifetime)
        self.identities.add_token(record)
        self.record(by, "tokens:create", target=f"token:{token_id}", source=source,
                    detail={"user": user, "expires_at_ms": record.expires_at_ms})
        return IssuedToken(token, record)

    def tokens(self, user: str | None = None) -> list[TokenRecord]:
        return self.identities.list_tokens(user)

    def revoke_token(self, token_id: str, *, by: Principal, source: str = "") -> TokenRecord:
        self.require(by, "tokens:manage", source=source, target=f"token:{token_id}")
        if not self.identities.revoke_token(token_id, self._now_ms()):
            found = self.identities.get_token(token_id)
            if found is None:
                raise NotFoundError(f"no token {token_id!r}", token_id=token_id)
            raise InvalidInputError(f"token {token_id!r} is revoked already",
                                    field="token_id")
        self.record(by, "tokens:revoke", target=f"token:{token_id}", source=source)
        record = self.identities.get_token(token_id)
        assert record is not None
        return record

    def authenticate(self, token: str, *, source: str = "") -> Principal:
        """The principal a bearer token stands for; AuthenticationError (recorded in the
        audit log and the log, by token id only) when it is unknown, wrong, expired,
        revoked or its user is disabled."""
        token_id = tokens.token_id_of(token) if isinstance(token, str) else None
        record = None if token_id is None else self.identities.get_token(token_id)
        reason = "invalid"
        if record is not None and tokens.matches(token, record.digest):
            now = self._now_ms()
            state = record.state(now)
            user = self.identities.get_user(record.user)
            if state == "active" and user is not None and not user.disabled:
                if record.last_used_ms is None or now - record.last_used_ms >= TOUCH_EVERY_MS:
                    self.identities.touch_token(record.token_id, now)  # not every request
                grants = tuple(self.identities.grants(user.name, self.project))
                return Principal(user.name, "service" if user.kind == "service"
                                 else "person", record.token_id, grants)
            reason = state if state != "active" else "user disabled"
        shown = token_id or "malformed"
        logger.warning("authentication failed from %s: token %s %s", source or "?", shown,
                       reason)
        self.record("anonymous", "auth:failed", target=f"token:{shown}", source=source,
                    outcome="denied", detail={"reason": reason})
        message = {"expired": "the token has expired", "revoked": "the token was revoked",
                   "user disabled": "the token's user is disabled"}.get(
            reason, "the token is not valid")
        raise AuthenticationError(message, reason=reason)

    # --- roles --------------------------------------------------------------------------

    def _grant_scope(self, role: str, project: str | None, environment: str
                     ) -> tuple[str, str]:
        if role not in ROLES and role not in GRANTABLE_PERMISSIONS:
            raise InvalidInputError(
                f"role {role!r} is not one of {', '.join(ROLES + GRANTABLE_PERMISSIONS)}",
                field="role")
        project = project or self.project
        if project != "*":
            _check_name("project", project)
        if environment != "*" and environment not in ENVIRONMENTS:
            raise InvalidInputError(
                f"environment {environment!r} is not one of {', '.join(ENVIRONMENTS)} or '*'",
                field="environment")
        return project, environment

    def grant(self, user: str, role: str, *, project: str | None = None,
              environment: str = "*", by: Principal, source: str = "") -> GrantRecord:
        project, environment = self._grant_scope(role, project, environment)
        self.require(by, "roles:manage", project=project, source=source,
                     target=f"user:{user}")
        record = GrantRecord(user, project, environment, role, by.actor, self._now_ms())
        self.identities.grant(record)
        self.record(by, "roles:grant", target=f"user:{user}", project=project,
                    environment=None if environment == "*" else environment, source=source,
                    detail={"role": role, "environment": environment})
        return record

    def revoke(self, user: str, role: str, *, project: str | None = None,
               environment: str = "*", by: Principal, source: str = "") -> None:
        project, environment = self._grant_scope(role, project, environment)
        self.require(by, "roles:manage", project=project, source=source,
                     target=f"user:{user}")
        if not self.identities.revoke_grant(user, project, environment, role):
            raise NotFoundError(f"user {user!r} has no grant of {role!r} on project "
                                f"{project!r}, environment {environment!r}", user=user)
        self.record(by, "roles:revoke", target=f"user:{user}", project=project,
                    environment=None if environment == "*" else environment, source=source,
                    detail={"role": role, "environment": environment})

    def grants(self, user: str | None = None, project: str | None = None
               ) -> list[GrantRecord]:
        return self.identities.grants(user, project)

    # --- PII ----------------------------------------------------------------------------

    def pii_key(self) -> bytes:
        if self._pii_key is None:
            raise ConfigurationError("hashing PII needs the project's secret key, and this "
                                     "connection has no project folder to keep it in")
        return self._pii_key()

    def release(self, principal: Principal, data: Any, policies: Mapping[str, pii.PiiPolicy],
                *, action: str, target: str = "", source: str = "",
                detail: Mapping[str, Any] | None = None, always_record: bool = False) -> Any:
        """``data`` (an Arrow table, a pandas frame, or a mapping of columns) as
        ``principal`` may see it: personal columns masked by their policy unless it holds
        ``pii:read``. A read of personal data is recorded (``always_record``: any read),
        with each personal column's policy, or ``clear``."""
        self.require(principal, action, source=source, target=target)
        present = {c: p for c, p in policies.items() if c in _columns(data)}
        clear = not present or self.allowed(principal, "pii:read")
        note = {**dict(detail or {}),
                "pii": {c: ("clear" if clear else p) for c, p in sorted(present.items())}}
        if present or always_record:
            self.record(principal, "pii:read" if present and clear else action,
                        target=target, source=source, detail=note)
        if clear:
            return data
        key = self.pii_key() if "hash" in present.values() else None
        return _mask(data, present, key)


def _columns(data: Any) -> list[str]:
    if isinstance(data, Mapping):
        return [str(c) for c in data]
    names = getattr(data, "column_names", None)  # Arrow
    if names is None:
        names = [str(c) for c in getattr(data, "columns", ())]
    return list(names)


def _mask(data: Any, policies: Mapping[str, pii.PiiPolicy], key: bytes | None) -> Any:
    if isinstance(data, Mapping):
        return pii.mask_columns(data, policies, key)
    if hasattr(data, "column_names"):
        table: pa.Table = data
        return pii.mask_arrow(table, policies, key)
    frame: pd.DataFrame = data
    return pii.mask_frame(frame, policies, key)
