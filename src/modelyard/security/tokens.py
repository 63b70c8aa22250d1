"""API tokens: made with :mod:`secrets`, shown once, stored as a sha256 digest.

A token reads ``myd_<id>_<secret>``: ``id`` is 8 hex digits, not secret, by which the
stored record is found (and which listings and logs show); ``secret`` is 32 random bytes
in URL-safe base64. Only ``sha256(token)`` is stored. A plain hash is enough here, unlike
for passwords: with 256 random bits there is nothing to guess, so a slow key-derivation
function (bcrypt, argon2) would only slow every request down without making a leaked
digest any easier to protect. Digests are compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

__all__ = ["PREFIX", "digest", "matches", "new_token", "token_id_of"]

PREFIX = "myd_"
_FORM = re.compile(r"^myd_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")


def new_token() -> tuple[str, str]:
    """A fresh ``(token, token_id)``."""
    token_id = secrets.token_hex(4)
    return f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}", token_id


def token_id_of(token: str) -> str | None:
    """The id part of a well-formed token, else None."""
    m = _FORM.match(token)
    return None if m is None else m[1]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def matches(token: str, stored_digest: str) -> bool:
    """Whether ``token`` hashes to ``stored_digest``, in time independent of where they
    differ."""
    return hmac.compare_digest(digest(token).encode("ascii"),
                               stored_digest.encode("ascii", "replace"))
