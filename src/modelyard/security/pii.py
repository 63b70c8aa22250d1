"""PII policies: what a principal without ``pii:read`` sees of a feature tagged ``pii``.

A feature is personal data when one of its tags is ``pii`` or ``pii:<policy>``:

- ``hash`` (the default for a plain ``pii`` tag): HMAC-SHA256 of the value under the
  project's secret key, as hex; equal values stay equal (joins and counts still work),
  nothing can be looked up without the key;
- ``redact``: text becomes ``"[REDACTED]"``, other types null (the column keeps its type);
- ``drop``: the column is removed.

Values are hashed as their Arrow text form (``pa.compute.cast(..., pa.string())``), so a
value hashes the same in a training set and in an online lookup. Nulls stay null.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelyard.errors import ConfigurationError, InvalidDefinitionError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["POLICIES", "REDACTED", "PiiPolicy", "load_key", "mask_arrow", "mask_columns",
           "mask_frame", "policies_of", "policy_of"]

PiiPolicy = Literal["hash", "redact", "drop"]
POLICIES: tuple[PiiPolicy, ...] = ("hash", "redact", "drop")
DEFAULT_POLICY: PiiPolicy = "hash"
REDACTED = "[REDACTED]"
KEY_BYTES = 32


def policy_of(tags: Iterable[str]) -> PiiPolicy | None:
    """The policy a feature's tags declare, or None when it is not personal data."""
    found: PiiPolicy | None = None
    for tag in tags:
        if tag == "pii":
            found = found or DEFAULT_POLICY
        elif tag.startswith("pii:"):
            name = tag[4:]
            if name not in POLICIES:
                raise InvalidDefinitionError(
                    f"tag {tag!r}: a PII policy is one of {', '.join(POLICIES)}", field="tags")
            found = name  # type: ignore[assignment]
    return found


def policies_of(features: Iterable[tuple[str, Iterable[str]]]) -> dict[str, PiiPolicy]:
    """Column -> policy for the (column, tags) pairs that are personal data."""
    found: dict[str, PiiPolicy] = {}
    for column, tags in features:
        policy = policy_of(tags)
        if policy is not None:
            found[column] = policy
    return found


def load_key(path: Path) -> bytes:
    """The project's secret key at ``path``, made (32 random bytes, mode 0600) if absent.

    A new key is written whole to a private temporary file and then linked into place,
    which fails if another process linked its key first: then that key is the one read."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(temporary, path)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the PII key file {path}: "
                                 f"{exc.strerror or exc}", path=str(path)) from exc
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) < 16:
        raise ConfigurationError(f"the PII key file {path} is shorter than 16 bytes; "
                                 "restore it from a backup", path=str(path))
    return key


def _hash_texts(texts: Sequence[str | None], key: bytes) -> list[str | None]:
    return [None if t is None else hmac.new(key, t.encode("utf-8"), hashlib.sha256).hexdigest()
            for t in texts]


def _mask_array(array: Any, policy: PiiPolicy, key: bytes | None) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if policy == "hash":
        if key is None:
            raise ConfigurationError("hashing PII needs the project's secret key")
        texts = pc.cast(array, pa.string()).to_pylist()
        return pa.array(_hash_texts(texts, key), pa.string())
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return pc.if_else(pc.is_null(array), pa.scalar(None, array.type),
                          pa.scalar(REDACTED, array.type))
    return pa.nulls(len(array), array.type)


def mask_arrow(table: pa.Table, policies: Mapping[str, PiiPolicy],
               key: bytes | None) -> pa.Table:
    """``table`` with each policy applied to its column (columns absent are skipped)."""
    for column, policy in policies.items():
        if column not in table.column_names:
            continue
        index = table.column_names.index(column)
        if policy == "drop":
            table = table.remove_column(index)
        else:
            table = table.set_column(index, column, _mask_array(table.column(index), policy,
                                                                key))
    return table


def mask_frame(frame: pd.DataFrame, policies: Mapping[str, PiiPolicy],
               key: bytes | None) -> pd.DataFrame:
    """The same for a pandas DataFrame (the other columns are left as they are)."""
    import pyarrow as pa

    out = frame.copy()
    for column, policy in policies.items():
        if column not in out.columns:
            continue
        if policy == "drop":
            out = out.drop(columns=[column])
            continue
        masked = _mask_array(pa.array(frame[column], from_pandas=True), policy, key)
        out[column] = masked.to_numpy(zero_copy_only=False)  # by position, not index
    return out


def mask_columns(columns: Mapping[str, list[Any]], policies: Mapping[str, PiiPolicy],
                 key: bytes | None) -> dict[str, list[Any]]:
    """The same for columns of Python values (an online lookup's result)."""
    import pyarrow as pa

    out: dict[str, list[Any]] = {}
    for column, values in columns.items():
        policy = policies.get(column)
        if policy is None:
            out[column] = values
        elif policy != "drop":
            out[column] = _mask_array(pa.array(values), policy, key).to_pylist()
    return out
