"""Users, their API tokens and their role grants: the records and the store interface.

A token is never stored: its record holds the sha256 of the whole token and its short,
non-secret prefix (``token_id``), by which a presented token is found. The implementation
is :mod:`modelyard.backends.metadata.sql.identity_store`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

__all__ = ["GrantRecord", "IdentityStore", "TokenRecord", "TokenState", "UserRecord"]

TokenState = Literal["active", "expired", "revoked"]


@dataclass(frozen=True)
class UserRecord:
    name: str
    kind: str  # person | service
    created_at_ms: int
    created_by: str
    disabled_at_ms: int | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at_ms is not None


@dataclass(frozen=True)
class TokenRecord:
    token_id: str  # the prefix shown in listings and logs; not a secret
    user: str
    digest: str  # sha256 hex digest of the whole token
    description: str
    created_at_ms: int
    expires_at_ms: int | None = None
    revoked_at_ms: int | None = None
    last_used_ms: int | None = None

    def state(self, now_ms: int) -> TokenState:
        if self.revoked_at_ms is not None:
            return "revoked"
        if self.expires_at_ms is not None and self.expires_at_ms <= now_ms:
            return "expired"
        return "active"


@dataclass(frozen=True)
class GrantRecord:
    """``role`` on ``project`` in ``environment`` (``"*"``: every project / environment);
    a role name, or a permission granted on its own such as ``pii:read``."""

    user: str
    project: str
    environment: str
    role: str
    granted_by: str
    granted_at_ms: int


class IdentityStore(ABC):
    @abstractmethod
    def add_user(self, record: UserRecord) -> None:
        """AlreadyExistsError when the name is taken."""

    @abstractmethod
    def get_user(self, name: str) -> UserRecord | None: ...

    @abstractmethod
    def list_users(self) -> list[UserRecord]: ...

    @abstractmethod
    def disable_user(self, name: str, at_ms: int) -> bool:
        """Disable the user and revoke its tokens in one transaction; False if unknown."""

    @abstractmethod
    def add_token(self, record: TokenRecord) -> None: ...

    @abstractmethod
    def get_token(self, token_id: str) -> TokenRecord | None: ...

    @abstractmethod
    def list_tokens(self, user: str | None = None) -> list[TokenRecord]:
        """Newest first."""

    @abstractmethod
    def revoke_token(self, token_id: str, at_ms: int) -> bool:
        """False when there is no such token or it was revoked already."""

    @abstractmethod
    def touch_token(self, token_id: str, at_ms: int) -> None:
        """Record the token's last use (at most one write per minute per token)."""

    @abstractmethod
    def grant(self, record: GrantRecord) -> bool:
        """False when the same grant exists already (it is kept as it was)."""

    @abstractmethod
    def revoke_grant(self, user: str, project: str, environment: str, role: str) -> bool: ...

    @abstractmethod
    def grants(self, user: str | None = None, project: str | None = None
               ) -> list[GrantRecord]:
        """Grants of the user and/or on the project (``"*"`` grants included)."""
