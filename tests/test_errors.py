"""The one exception hierarchy: statuses, the drawn tree, and serialization."""

from __future__ import annotations

import json

import pytest

import modelyard
from modelyard import errors
from modelyard.errors import ModelyardError, error_from_dict

EXPECTED = {
    # name: (parent, http status)
    "ModelyardError": (Exception, 500),
    "ConfigurationError": (errors.ModelyardError, 500),
    "ProjectNotFoundError": (errors.ConfigurationError, 404),
    "StorageError": (errors.ModelyardError, 503),
    "SchemaVersionError": (errors.StorageError, 500),
    "ArtifactIntegrityError": (errors.StorageError, 500),
    "InvalidInputError": (errors.ModelyardError, 422),
    "InvalidFilterError": (errors.InvalidInputError, 422),
    "InvalidMetricError": (errors.InvalidInputError, 422),
    "InvalidDefinitionError": (errors.InvalidInputError, 422),
    "DataValidationError": (errors.InvalidInputError, 422),
    "AuthenticationError": (errors.ModelyardError, 401),
    "PermissionDeniedError": (errors.ModelyardError, 403),
    "RateLimitedError": (errors.ModelyardError, 429),
    "NotFoundError": (errors.ModelyardError, 404),
    "ConflictError": (errors.ModelyardError, 409),
    "AlreadyExistsError": (errors.ConflictError, 409),
    "ParamConflictError": (errors.ConflictError, 409),
    "RunStateError": (errors.ConflictError, 409),
    "GateFailedError": (errors.ConflictError, 409),
    "IdempotencyConflictError": (errors.ConflictError, 409),
}


def _all_error_classes() -> list[type[ModelyardError]]:
    found: list[type[ModelyardError]] = []
    todo: list[type[ModelyardError]] = [ModelyardError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c.__module__ == "modelyard.errors"]


def test_the_hierarchy_is_exactly_as_drawn() -> None:
    assert {c.__name__ for c in _all_error_classes()} == set(EXPECTED)
    for name, (parent, status) in EXPECTED.items():
        cls = getattr(errors, name)
        assert cls.__bases__ == (parent,), name
        assert issubclass(cls, ModelyardError)
        assert cls.http_status == status, name
        assert isinstance(cls.http_status, int)
        # the module docstring draws every class with its status
        assert f"{name} ({status})" in (errors.__doc__ or ""), name


def test_every_error_is_exported_from_the_package() -> None:
    for cls in _all_error_classes():
        assert getattr(modelyard, cls.__name__) is cls
        assert cls.__name__ in errors.__all__


@pytest.mark.parametrize("cls", _all_error_classes(), ids=lambda c: c.__name__)
def test_round_trip_through_a_dict(cls: type[ModelyardError]) -> None:
    original = cls("something went wrong", field="x", position=3, keys=["a", "b"])
    payload = original.to_dict()
    assert payload == {
        "error": cls.__name__,
        "message": "something went wrong",
        "status": cls.http_status,
        "details": {"field": "x", "position": 3, "keys": ["a", "b"]},
    }
    again = error_from_dict(json.loads(json.dumps(payload)))  # as it crosses the network
    assert type(again) is cls
    assert again.message == original.message
    assert again.details == original.details
    assert str(again) == "something went wrong"


def test_unknown_or_partial_payloads_become_the_root_error() -> None:
    err = error_from_dict({"error": "SomethingElse", "message": "hm"})
    assert type(err) is ModelyardError and err.message == "hm"
    bare = error_from_dict({})
    assert type(bare) is ModelyardError and bare.details == {}
    assert type(error_from_dict({"error": "ValueError"})) is ModelyardError


def test_catching_broadly_or_narrowly() -> None:
    with pytest.raises(errors.ConflictError):
        raise errors.ParamConflictError("p")
    with pytest.raises(ModelyardError):
        raise errors.SchemaVersionError("s")
    with pytest.raises(errors.InvalidInputError):
        raise errors.InvalidFilterError("f")
