"""The prediction log's records and the store interface behind them.

One :class:`PredictionRecord` per answered row: which request (``request_id``, and the row's
position in it), which model version answered and in which role (``primary``, ``canary``, or
``shadow`` when its answer was not returned), when, how long the whole request took, the
entity it was about (with the lookup's ``status``: found, missing or expired), the features
actually fed to the model and what it returned. A row answered without a prediction (an entity
whose stored features are missing or expired) is logged too, with a null output and the
``reason`` it was not predicted, so the log holds one entry per answered row. Records are
keyed by ``(request_id, row, model, version, role)``: writing the same record twice stores it
once, so a retried batch never duplicates.

Ground truth arrives later as :class:`Label` records, attached to a logged prediction either
by request id and row, or by entity and time: a label for entity E at time T belongs to the
latest prediction about E made at or before T (ties on the instant go to the greatest
``(request_id, row)``). A label is stored against ``(model, request_id, row)``, so it applies
to every version and role that answered that request row; a later label for the same row
replaces the earlier one.

A request that failed (a 4xx or 5xx answer) leaves one :class:`FailureRecord` instead: which
model and version it was for, when, how long it took, its HTTP status, the error's class and
the input field it named. Never the message or any input value, which can quote a client's
data. Failures are keyed by ``(model, request_id)``, written twice they are stored once.

Stores: :mod:`modelyard.backends.metadata.sql.prediction_store` (tables in the metadata
database, SQLite or PostgreSQL) and :mod:`modelyard.backends.predictions.parquet` (a folder of
Parquet files), chosen by URI in :mod:`modelyard.backends.predictions`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ROLES", "STATUSES", "FailureRecord", "Label", "LabelResult", "PredictionRecord",
           "PredictionStore", "Role"]

Role = Literal["primary", "canary", "shadow"]
ROLES: tuple[Role, ...] = ("primary", "canary", "shadow")

# The fixed columns of a prediction frame, before the flattened ``entity.*``, ``features.*``,
# ``output.*`` and ``label.*`` columns.
RECORD_COLUMNS = ("request_id", "row", "model", "version", "role", "at_us", "latency_ms",
                  "status", "reason")
# The entity lookup statuses a record can carry (None: the request sent input values).
STATUSES = ("found", "missing", "expired")
# The columns of a failure frame, in order.
FAILURE_COLUMNS = ("request_id", "model", "version", "role", "at_us", "latency_ms", "status",
                   "error", "endpoint", "field")


@dataclass(frozen=True)
class PredictionRecord:
    """One answered row. Values in ``entity``, ``features`` and ``output`` are stored as
    JSON: NaN and infinities become null, timestamps and dates ISO 8601 text, numpy scalars
    and arrays plain numbers and lists; they read back in that form."""

    request_id: str
    row: int  # position of the row in the request, from 0
    model: str
    version: int
    role: Role
    at_us: int  # when the request was answered, epoch microseconds
    # of the whole request, as its client saw it; None for a row scored in batch rather than
    # served (a backfill): no request latency was measured, and service health leaves it out
    # of the latency percentiles while still counting its request and row
    latency_ms: float | None
    entity: Mapping[str, Any] | None  # entity key values, when the request named entities
    features: Mapping[str, Any]  # column -> value fed to the model
    output: Mapping[str, Any]  # output column -> value (null: the row was not predicted)
    status: str | None = None  # the entity lookup's status (STATUSES), on the entity path
    reason: str | None = None  # why the row has no prediction; None when it has one


@dataclass(frozen=True)
class FailureRecord:
    """One request that was answered with an error. Holds no error message and no input
    value: only the error's class, its HTTP status and the name of the field it blamed."""

    request_id: str
    model: str
    version: int | None  # the version that would have answered (None: none was loaded)
    role: Role | None
    at_us: int  # when the error was answered, epoch microseconds
    latency_ms: float
    status: int  # the HTTP status answered, 400-599
    error: str  # the exception's class name, e.g. "InvalidInputError"
    endpoint: str  # "predict", "explain", "infer"
    field: str | None = None  # the input field the error named, e.g. "instances[0].age"


@dataclass(frozen=True)
class Label:
    """Ground truth for one logged prediction: give ``request_id`` (and ``row``, default 0),
    or ``entity`` and ``at_us`` (the label belongs to the latest prediction about that
    entity at or before ``at_us``)."""

    values: Mapping[str, Any]  # label column -> value, e.g. {"claim_cost": 1250.0}
    request_id: str | None = None
    row: int = 0
    entity: Mapping[str, Any] | None = None
    at_us: int | None = None


@dataclass(frozen=True)
class LabelResult:
    """What :meth:`PredictionStore.add_labels` did: labels attached, labels that matched no
    logged prediction, and a few of the latter described."""

    matched: int
    unmatched: int
    examples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"matched": self.matched, "unmatched": self.unmatched,
                "examples": list(self.examples)}


class PredictionStore(ABC):
    """Prediction records and their labels, per model."""

    uri: str  # without secrets

    @abstractmethod
    def write(self, records: Sequence[PredictionRecord]) -> None:
        """Store the records as one unit (all or none). Records already stored, by
        ``(request_id, row, model, version, role)``, are left as they are. Raises
        InvalidInputError, naming the record and field, before anything is written."""

    @abstractmethod
    def read(self, model: str, *, version: int | None = None, start_us: int | None = None,
             end_us: int | None = None, role: Role | None = None,
             limit: int | None = None) -> pd.DataFrame:
        """The model's predictions with ``start_us <= at_us < end_us``, oldest first: the
        record fields (``request_id``, ``row``, ``model``, ``version``, ``role``,
        ``at_us``, ``latency_ms``, ``status``, ``reason``), then ``entity.<key>``,
        ``features.<column>``, ``output.<column>`` and ``label.<column>`` (null where no
        label is attached). ``limit`` keeps the newest ``limit`` rows."""

    @abstractmethod
    def count(self, model: str, *, version: int | None = None, start_us: int | None = None,
              end_us: int | None = None, role: Role | None = None) -> int:
        """How many predictions :meth:`read` would return without a limit."""

    @abstractmethod
    def add_labels(self, model: str, labels: Sequence[Label]) -> LabelResult:
        """Attach ground truth to logged predictions, all in one unit. Labels that match no
        prediction are counted in the result and not stored; when none matches, raises
        InvalidInputError (naming how many, with examples) and stores nothing."""

    @abstractmethod
    def labels(self, model: str) -> pd.DataFrame:
        """The model's stored labels: ``request_id``, ``row``, ``labelled_at_us`` (when the
        label was stored) and ``label.<column>``, oldest first."""

    @abstractmethod
    def write_failures(self, records: Sequence[FailureRecord]) -> None:
        """Store failed requests as one unit (all or none); a failure already stored, by
        ``(model, request_id)``, is left as it is. Raises InvalidInputError, naming the
        record and field, before anything is written."""

    @abstractmethod
    def read_failures(self, model: str, *, version: int | None = None,
                      start_us: int | None = None, end_us: int | None = None
                      ) -> pd.DataFrame:
        """The model's failed requests with ``start_us <= at_us < end_us``, oldest first,
        one column per :class:`FailureRecord` field (``version`` a nullable integer)."""

    @abstractmethod
    def count_failures(self, model: str, *, version: int | None = None,
                       start_us: int | None = None, end_us: int | None = None) -> int:
        """How many failed requests :meth:`read_failures` would return."""

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release connections or files the store opened itself."""
