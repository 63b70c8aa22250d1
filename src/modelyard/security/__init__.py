"""Security: who may do what, and a record of what was done.

- :mod:`.principals`: users and the local operator (:class:`Principal`), roles, environments;
- :mod:`.permissions`: the permission table (action -> least role, per environment);
- :mod:`.tokens`: API tokens (random, shown once, stored as a digest);
- :mod:`.service`: :class:`SecurityService` (``yard.security``): users, tokens, grants,
  checks, the audit log, PII release;
- :mod:`.audit`: verification of the hash-chained audit log;
- :mod:`.pii`: masking policies for features tagged ``pii``;
- :mod:`.ratelimit`: failed authentications counted per source;
- :mod:`.middleware` and :mod:`.guards` (need ``modelyard[server]``): the ASGI middleware
  that authenticates bearer tokens, and the route guards a server declares.
"""

from __future__ import annotations

from modelyard.security.permissions import PERMISSIONS, Rule, environment_of_alias
from modelyard.security.principals import ENVIRONMENTS, ROLES, Principal
from modelyard.security.service import IssuedToken, SecurityService

__all__ = ["ENVIRONMENTS", "PERMISSIONS", "ROLES", "IssuedToken", "Principal", "Rule",
           "SecurityService", "environment_of_alias"]
