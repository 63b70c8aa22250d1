"""Model references: ``name``, ``name:3`` (a version) and ``name@production`` (an alias)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelyard.errors import InvalidInputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"a model name is 1-128 letters, digits, '_', '.' or '-', starting with a letter "
            f"or digit; got {name!r}", field="name")
    return name


def check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidInputError(
            f"an alias is 1-64 letters, digits, '_' or '-', starting with a letter (for "
            f"example 'production'); got {alias!r}", field="alias")
    if alias == "latest":
        raise InvalidInputError("'latest' names the newest version and cannot be an alias",
                                field="alias")
    return alias


def parse_ref(ref: str | ModelRef, version: int | None = None) -> ModelRef:
    """``name``, ``name:3``, ``name@alias`` (``name@latest``: the newest version); a separate
    ``version`` may complete a bare name."""
    if isinstance(ref, ModelRef):
        return ref
    if not isinstance(ref, str):
        raise InvalidInputError(f"a model reference is a string like 'claims-model@production'"
                                f" or 'claims-model:3', got {type(ref).__name__}", field="model")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        if version is not None:
            raise InvalidInputError(f"{ref!r} names an alias: do not also give a version",
                                    field="version")
        if alias == "latest":
            return ModelRef(check_name(name))
        return ModelRef(check_name(name), alias=check_alias(alias))
    if ":" in ref:
        name, number = ref.rsplit(":", 1)
        if not number.isdigit() or int(number) < 1:
            raise InvalidInputError(f"the version in {ref!r} must be a positive integer",
                                    field="version")
        return ModelRef(check_name(name), int(number))
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or version < 1):
        raise InvalidInputError(f"a version is a positive integer, got {version!r}",
                                field="version")
    return ModelRef(check_name(ref), version)
