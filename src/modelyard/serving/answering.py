"""One predict request answered in three steps: prepared, predicted, assembled.

:func:`prepare` does everything before the model call: on the entity path the online
lookup, then the input checks, which turn the rows into what the model takes (one float
matrix for a version that predicts from one, else checked columns). :meth:`Prepared.run` is
the model call alone, which for a twin or a forest spends its time outside the GIL walking
trees. :func:`assemble` makes the :class:`Answer` of its predictions. Splitting them lets the
HTTP layer check a small request on the event loop and hand only the model call to a worker
thread, so the loop goes on with other requests while the trees are walked; whatever fails
is tagged with the version and role that were answering (:data:`ANSWERING`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.serving.inputs import invalid

if TYPE_CHECKING:
    from modelyard.serving.deployment import Role, Served
    from modelyard.serving.inputs import Problem

__all__ = ["ANSWERING", "Answer", "EntityLookup", "Prepared", "assemble", "prepare"]

# Set on an exception raised while a chosen version was answering: (version, role).
ANSWERING = "_modelyard_answering"

#: The entity path's lookup: (the rows the model is given, each row's status, each row's keys).
EntityLookup = Callable[["Served", list[Any]],
                        tuple[list[dict[str, Any]], list[str], list[dict[str, Any]]]]


@dataclass(slots=True)
class Answer:
    """What one request was answered with, and what the prediction log keeps of it.
    Handed to the prediction log as it is (its records are built by the log's writer
    thread, off the request), so it is not changed once handed over."""

    model: str
    version: int
    role: Role
    request_id: str
    predictions: list[Any]
    inputs: list[dict[str, Any]]  # per row: the values the model was given
    entities: list[dict[str, Any]] | None = None  # per row: the keys, on the entity path
    status: list[str] | None = None  # per row, on the entity path
    errors: dict[int, str] = field(default_factory=dict)  # row -> why it was not predicted
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "version": self.version,
                                "request_id": self.request_id,
                                "predictions": self.predictions}
        if self.role != "primary":
            body["role"] = self.role
        if self.status is not None:
            body["status"] = self.status
        if self.errors:
            body["errors"] = {str(k): v for k, v in self.errors.items()}
        return body


@dataclass(slots=True)
class Prepared:
    """A request checked and ready for its model call."""

    served: Served
    role: Role
    request_id: str
    began: float  # when the request arrived (time.perf_counter())
    rows: list[Any]  # the rows as the model is given them (logged as its inputs)
    call: Callable[[], list[Any]] | None  # the model call; None: no row to predict
    status: list[str] | None = None  # on the entity path
    keys: list[dict[str, Any]] | None = None  # on the entity path
    errors: dict[int, str] = field(default_factory=dict)  # rows not predicted, and why
    # whether the model call is worth a worker thread for a caller on an event loop: it
    # runs without the GIL (loaded.calls_without_gil)
    offload: bool = True
    request: tuple[list[Any] | None, list[Any] | None] = (None, None)  # instances, entities

    def run(self) -> list[Any]:
        """The model call (blocking): the predictions of the rows without an error."""
        if self.call is None:
            return []
        try:
            return self.call()
        except Exception as exc:
            tag(exc, self.served, self.role)
            raise


def tag(exc: BaseException, served: Served, role: Role) -> None:
    """Mark ``exc`` as raised while ``served`` answered in ``role``."""
    setattr(exc, ANSWERING, (served.version, role))


def prepare(served: Served, role: Role, rid: str, instances: list[Any] | None,
            entities: list[Any] | None, began: float, lookup: EntityLookup) -> Prepared:
    """Everything before the model call: the entity lookup, then the input checks."""
    try:
        prepared = _prepare(served, role, rid, instances, entities, began, lookup)
    except Exception as exc:  # the failure is this version's, whatever the primary
        tag(exc, served, role)
        raise
    prepared.request = (instances, entities)
    return prepared


def _prepare(served: Served, role: Role, rid: str, instances: list[Any] | None,
             entities: list[Any] | None, began: float, lookup: EntityLookup) -> Prepared:
    loaded = served.loaded
    decoder = loaded.decoder
    if entities is None:
        assert instances is not None
        rows = instances
        if decoder is None:  # no signature: the rows go to the model as they are
            columns = _columns_of(rows)
            return Prepared(served, role, rid, began, [dict(r) for r in rows],
                            lambda: loaded.predict_columns(columns))
        if loaded.takes_matrix:  # checked whole, straight to the model's matrix
            matrix = decoder.rows_matrix(rows, "instances")
            return Prepared(served, role, rid, began, rows,
                            lambda: served.predict_matrix(matrix),
                            offload=loaded.calls_without_gil or served.batcher is not None)
        checked = decoder.columns(rows, "instances")
        count = len(rows)
        return Prepared(served, role, rid, began, rows,
                        lambda: served.predict_columns(checked, count))
    rows, status, keys = lookup(served, entities)
    assert decoder is not None  # the lookup needs a signature
    columns, bad = decoder.split(rows, "entities")
    blamed = [i for i in bad if status[i] == "found"]
    if blamed:  # a found entity whose stored values do not fit
        raise invalid([p for i in blamed for p in bad[i]])
    good = len(rows) - len(bad)
    return Prepared(served, role, rid, began, rows,
                    (lambda: served.predict_columns(columns, good)) if good else None,
                    status, keys, {i: _row_error(status[i], bad[i]) for i in bad})


def assemble(prepared: Prepared, predicted: list[Any]) -> Answer:
    """The answer of a prepared request, from the predictions of its rows."""
    errors = prepared.errors
    if errors:  # a null for each row that was not predicted
        it = iter(predicted)
        predicted = [None if i in errors else next(it) for i in range(len(prepared.rows))]
    loaded = prepared.served.loaded
    return Answer(loaded.name, loaded.version, prepared.role, prepared.request_id, predicted,
                  prepared.rows, prepared.keys, prepared.status, errors,
                  time.perf_counter() - prepared.began)


def _row_error(status: str, problems: list[Problem]) -> str:
    """Why an entity row without stored values was not predicted."""
    nulls = [p.field.rsplit(".", 1)[-1] for p in problems if p.problem == "may not be null"]
    others = [f"{p.field}: {p.problem}" for p in problems if p.problem != "may not be null"]
    said = [f"no value for {', '.join(nulls)}"] if nulls else []
    return f"{status} entity: " + "; ".join(said + others)


def _columns_of(rows: list[Any]) -> dict[str, list[Any]]:
    names = list(dict.fromkeys(k for r in rows if isinstance(r, dict) for k in r))
    return {n: [r.get(n) if isinstance(r, dict) else None for r in rows] for n in names}
