"""Where an S3-compatible store is and how to reach it, resolved once for every client.

Three clients talk to the same bucket: obstore (artifacts, listings and deletions of offline
tables), deltalake (Delta commits, history, vacuum) and pyarrow (reading Parquet files). They
all receive the options resolved here, so a setting means the same to each:

- ``endpoint`` (``AWS_ENDPOINT_URL``): an S3-compatible server, ``http://host:port``; empty
  for AWS itself. An ``http://`` endpoint allows plain HTTP, nothing else does.
- ``region`` (``AWS_REGION``), ``access_key_id``, ``secret_access_key``, ``session_token``
  (``AWS_ACCESS_KEY_ID`` ...): when the key is empty, each client's own AWS credential chain
  (instance profile, web identity...) applies.

Secrets stay in memory: :class:`S3Options` does not show them in its ``repr``, and no URI
carries them (a URI with a user part is refused). Obstore's errors are turned into a
:class:`~modelyard.errors.StorageError` that names the store and the problem
(:func:`s3_error`), never a traceback of the client.

Delta tables on S3 commit with conditional puts (``If-None-Match: *``, ``conditional_put =
etag``): two writers racing for a version cannot both win, so concurrent appends from several
processes all land without an external lock. ``AWS_S3_ALLOW_UNSAFE_RENAME`` is never set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modelyard.errors import ConfigurationError, NotFoundError, StorageError

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["S3Location", "S3Options", "s3_error", "split_s3_uri"]

# a request that cannot connect gives up after this, rather than object_store's 3 minutes
_RETRY_TIMEOUT = timedelta(seconds=20)
_MAX_RETRIES = 3
_DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Options:
    """How to reach an S3-compatible service (see the module docstring)."""

    endpoint: str = ""
    region: str = ""
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> S3Options:
        return cls(**{k: str(values.get(k) or "") for k in
                      ("endpoint", "region", "access_key_id", "secret_access_key",
                       "session_token")})

    @classmethod
    def from_env(cls) -> S3Options:
        """From the standard AWS variables (a process given only a URI, such as a worker)."""
        env = os.environ
        return cls(env.get("AWS_ENDPOINT_URL", ""),
                   env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", ""),
                   env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", ""),
                   env.get("AWS_SESSION_TOKEN", ""))

    @property
    def allow_http(self) -> bool:
        return self.endpoint.startswith("http://")

    def obstore_config(self) -> dict[str, Any]:
        """Keyword arguments of ``obstore.store.S3Store``."""
        config: dict[str, Any] = {"region": self.region or _DEFAULT_REGION,
                                  "conditional_put": "etag"}
        for key in ("endpoint", "access_key_id", "secret_access_key", "session_token"):
            if getattr(self, key):
                config[key] = getattr(self, key)
        return config

    def delta_options(self) -> dict[str, str]:
        """deltalake's ``storage_options``: the same service, commits by conditional put."""
        options = {"AWS_REGION": self.region or _DEFAULT_REGION,
                   "conditional_put": "etag",
                   "max_retries": str(_MAX_RETRIES),
                   "retry_timeout": f"{int(_RETRY_TIMEOUT.total_seconds())}s"}
        for key, name in (("endpoint", "AWS_ENDPOINT_URL"),
                          ("access_key_id", "AWS_ACCESS_KEY_ID"),
                          ("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
                          ("session_token", "AWS_SESSION_TOKEN")):
            if getattr(self, key):
                options[name] = getattr(self, key)
        if self.allow_http:
            options["AWS_ALLOW_HTTP"] = "true"
        return options


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``)."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.hostname:
        raise ConfigurationError(f"{uri!r} is not an S3 URI: use s3://bucket/prefix",
                                 uri=uri)
    if parts.username or parts.password or "@" in parts.netloc:
        raise ConfigurationError(
            "an s3:// URI may not carry credentials: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or [s3] in the user settings file", uri=f"s3://{parts.hostname}")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"an s3:// URI takes no query or fragment: {uri!r}", uri=uri)
    return parts.netloc, parts.path.strip("/")


class S3Location:
    """A bucket and a prefix in it, with the clients that reach it (made on first use)."""

    def __init__(self, uri: str, options: S3Options | None = None) -> None:
        self.bucket, self.prefix = split_s3_uri(uri)
        self.uri = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self.options = options if options is not None else S3Options.from_env()
        self._store: Any = None
        self._arrow: Any = None  # pyarrow's S3 file system, made on the first read

    def key(self, *parts: str) -> str:
        """The object key of ``parts`` below the prefix (relative to the bucket)."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def url(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"

    @property
    def store(self) -> Any:
        """The obstore client of the bucket (keys are full keys: no prefix applied)."""
        if self._store is None:
            try:
                from obstore.store import S3Store
            except ImportError as exc:
                raise ConfigurationError(
                    f"the store {self.uri} needs the S3 client: pip install 'modelyard[s3]'"
                ) from exc
            self._store = S3Store(
                self.bucket, **self.options.obstore_config(),
                client_options={"allow_http": self.options.allow_http},
                retry_config={"max_retries": _MAX_RETRIES, "retry_timeout": _RETRY_TIMEOUT})
        return self._store

    def arrow_filesystem(self, *parts: str) -> pyarrow.fs.FileSystem:
        """A pyarrow file system rooted at ``parts`` below the prefix (for Parquet reads)."""
        import pyarrow.fs as pafs

        if self._arrow is None:
            o = self.options
            self._arrow = pafs.S3FileSystem(
                access_key=o.access_key_id or None, secret_key=o.secret_access_key or None,
                session_token=o.session_token or None, region=o.region or _DEFAULT_REGION,
                endpoint_override=o.endpoint or None,
                scheme="http" if o.allow_http else "https",
                connect_timeout=_RETRY_TIMEOUT.total_seconds(),
                request_timeout=_RETRY_TIMEOUT.total_seconds())
        return pafs.SubTreeFileSystem(f"{self.bucket}/{self.key(*parts)}", self._arrow)


# (text found in the client's error, what it means, what to do)
_PROBLEMS = (
    (("signaturedoesnotmatch", "invalidaccesskeyid", "unauthenticated", "403 forbidden",
      "accessdenied", "access denied", "invalidtoken", "expiredtoken"),
     "the credentials were refused",
     "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or [s3] in the settings) and that "
     "they may use this bucket"),
    (("nosuchbucket",), "the bucket does not exist", "create it, or fix the bucket in the URI"),
    (("connection refused", "error sending request", "dns error", "timed out",
      "tcp connect error", "connect error"),
     "the server does not answer",
     "check AWS_ENDPOINT_URL (or s3.endpoint) and that the server runs"),
)


def s3_error(exc: BaseException, uri: str, what: str) -> StorageError | None:
    """A clear StorageError for a failed S3 call, naming the store and the problem; None when
    ``exc`` is no S3 problem this recognises."""
    text = _error_text(exc).lower()
    for needles, problem, advice in _PROBLEMS:
        if any(n in text for n in needles):
            return StorageError(f"{what}: {problem} by the S3 store {uri} ({advice})"
                                if "refused" in problem
                                else f"{what}: {problem} at the S3 store {uri} ({advice})",
                                store=uri, reason=problem)
    return None


def _error_text(exc: BaseException) -> str:
    seen: set[int] = set()
    parts = []
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__} {current}")
        current = current.__cause__ or current.__context__
    return " ".join(parts)


def not_found(exc: BaseException) -> bool:
    """Whether obstore said the object is missing."""
    return isinstance(exc, FileNotFoundError | NotFoundError)
