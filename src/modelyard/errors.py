"""The one exception hierarchy of modelyard.

Every error the library raises on purpose derives from :class:`ModelyardError`. Each class
carries the HTTP status a server answers with when it reaches a client, and serializes
itself to a plain dict so a remote client can raise the same class again.

::

    ModelyardError (500)
    ├── ConfigurationError (500)      settings or project file are wrong
    │   └── ProjectNotFoundError (404) no modelyard.toml above the working directory
    ├── StorageError (503)            a backend failed or is unreachable
    │   ├── SchemaVersionError (500)  database schema newer/unknown to this version
    │   └── ArtifactIntegrityError (500) stored bytes do not match the recorded sha256
    ├── InvalidInputError (422)       a caller passed something malformed
    │   ├── InvalidFilterError (422)  a search filter or order_by does not parse
    │   ├── InvalidMetricError (422)  a metric value that is not a finite number
    │   ├── InvalidDefinitionError (422) a feature definition is malformed
    │   └── DataValidationError (422) a data batch does not fit its declared schema
    ├── AuthenticationError (401)     no valid token: missing, unknown, expired or revoked
    ├── PermissionDeniedError (403)   the principal's roles do not allow the action
    ├── RateLimitedError (429)        too many failed authentications from one source
    ├── NotFoundError (404)           unknown experiment, run, artifact, ...
    └── ConflictError (409)           a write contradicts what is stored
        ├── AlreadyExistsError (409)
        ├── ParamConflictError (409)  a param logged again with another value
        ├── RunStateError (409)       operation not allowed in the run's state
        ├── GateFailedError (409)     a promotion refused by the model's quality gates
        └── IdempotencyConflictError (409) an idempotency key reused for another write
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AlreadyExistsError",
    "ArtifactIntegrityError",
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "DataValidationError",
    "GateFailedError",
    "IdempotencyConflictError",
    "InvalidDefinitionError",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidMetricError",
    "ModelyardError",
    "NotFoundError",
    "ParamConflictError",
    "PermissionDeniedError",
    "ProjectNotFoundError",
    "RateLimitedError",
    "RunStateError",
    "SchemaVersionError",
    "StorageError",
    "error_from_dict",
]


class ModelyardError(Exception):
    """Root of every error modelyard raises on purpose."""

    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "status": self.http_status,
            "details": self.details,
        }


class ConfigurationError(ModelyardError):
    http_status = 500


class ProjectNotFoundError(ConfigurationError):
    http_status = 404


class StorageError(ModelyardError):
    http_status = 503


class SchemaVersionError(StorageError):
    http_status = 500


class ArtifactIntegrityError(StorageError):
    http_status = 500


class InvalidInputError(ModelyardError):
    http_status = 422


class InvalidFilterError(InvalidInputError):
    pass


class InvalidMetricError(InvalidInputError):
    pass


class InvalidDefinitionError(InvalidInputError):
    pass


class DataValidationError(InvalidInputError):
    pass


class AuthenticationError(ModelyardError):
    """No valid credentials: the message never repeats the token that was presented."""

    http_status = 401


class PermissionDeniedError(ModelyardError):
    """``details["permission"]`` names the action refused, ``details["required"]`` the
    least role that allows it there (project, environment)."""

    http_status = 403


class RateLimitedError(ModelyardError):
    """``details["retry_after"]``: seconds until the source may try again."""

    http_status = 429


class NotFoundError(ModelyardError):
    http_status = 404


class ConflictError(ModelyardError):
    http_status = 409


class AlreadyExistsError(ConflictError):
    pass


class ParamConflictError(ConflictError):
    pass


class RunStateError(ConflictError):
    pass


class GateFailedError(ConflictError):
    """A promotion refused by its gates; ``details["report"]`` holds the gate report (a
    dict), ``details["failed"]`` the names of the failed gates."""


class IdempotencyConflictError(ConflictError):
    """An idempotency key already names another write (other content or operation), or the
    write it names is still in flight in another process; ``details["key"]`` holds it."""


def _all_subclasses(cls: type[ModelyardError]) -> dict[str, type[ModelyardError]]:
    found = {cls.__name__: cls}
    for sub in cls.__subclasses__():
        found.update(_all_subclasses(sub))
    return found


def error_from_dict(payload: dict[str, Any]) -> ModelyardError:
    """Rebuild the error a server serialized with :meth:`ModelyardError.to_dict`."""
    cls = _all_subclasses(ModelyardError).get(str(payload.get("error")), ModelyardError)
    return cls(str(payload.get("message", "")), **dict(payload.get("details") or {}))
