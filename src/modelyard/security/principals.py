"""Who is acting: a :class:`Principal`, with the grants loaded when it was authenticated.

A principal is a user (a person or a service account) who presented a token, or the local
operator: someone running the CLI or the Python API on the project's own files, who can
already read and change every store directly, and so is allowed everything (and audited
as ``local:<os user>``).
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Literal

from modelyard.backends.metadata.identities import GrantRecord

__all__ = ["ENVIRONMENTS", "GRANTABLE_PERMISSIONS", "ROLES", "Principal", "role_rank"]

#: Roles from least to most: each can do everything the ones before it can.
ROLES: tuple[str, ...] = ("viewer", "editor", "maintainer", "admin")
#: Permissions granted on their own, outside the role ladder (admins hold them too).
GRANTABLE_PERMISSIONS: tuple[str, ...] = ("pii:read",)
#: First-class environments: aliases and deployments named so are checked per environment.
ENVIRONMENTS: tuple[str, ...] = ("dev", "staging", "prod")

PrincipalKind = Literal["person", "service", "local"]


def role_rank(role: str) -> int:
    """0 for viewer ... 3 for admin; -1 for what is not a role (a permission grant)."""
    return ROLES.index(role) if role in ROLES else -1


@dataclass(frozen=True)
class Principal:
    name: str
    kind: PrincipalKind
    token_id: str | None = None  # the token's non-secret prefix
    grants: tuple[GrantRecord, ...] = ()

    @classmethod
    def local(cls) -> Principal:
        """The operator working on the project's files (allowed everything)."""
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (some containers)
            name = "unknown"
        return cls(name, "local")

    @property
    def actor(self) -> str:
        """How the audit log names this principal: ``user:alice``, ``local:bob``."""
        return f"{'local' if self.kind == 'local' else 'user'}:{self.name}"

    @property
    def is_local(self) -> bool:
        return self.kind == "local"
