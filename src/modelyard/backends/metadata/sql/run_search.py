"""Run search compiled to SQL, with the plan chosen by the query's shape.

* Without a limit, or ordered by a run attribute: each filter clause on a metric, param or tag
  is a semi-join ``run_id IN (SELECT run_id ... WHERE key = ? AND value op ?)`` that uses the
  ``(key, value)`` indexes, and orderings on metrics/params/tags are outer joins (runs without
  the key sort last).
* With a limit and a first ordering on a metric, param or tag (the "top N" and ``best_run``
  case): the runs holding that key are walked in index order through an inner join, each
  candidate checked with correlated ``EXISTS`` probes, so the database stops after N matches
  instead of filtering and sorting every run; runs lacking the key follow only if fewer than
  N had it. Both plans return the same rows in the same order.
* A page further down (``offset``) takes the first plan with ``LIMIT ... OFFSET``: the
  database sorts the matching runs' ids and keys, and only the page's rows come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelyard.backends.metadata.base import Comparison, OrderBy, RunInfo, RunQuery
from modelyard.backends.metadata.sql import tables as t

_ENTITY_TABLES = {"metric": t.latest_metrics, "param": t.params, "tag": t.tags}


def find_run_infos(conn: Connection, query: RunQuery) -> list[RunInfo]:
    first = query.order_by[0] if query.order_by else None
    if (query.limit is None or query.offset or first is None
            or first.entity == "attribute"):
        stmt = _ordered(_filtered(query, correlated=False), query.order_by)
        if query.offset:
            stmt = stmt.offset(query.offset)
        return _infos(conn, stmt.limit(query.limit) if query.limit is not None else stmt)
    rest = query.order_by[1:]
    key = _ENTITY_TABLES[first.entity].alias("first_key")
    on_key = sa.and_(key.c.run_id == t.runs.c.run_id, key.c.key == first.key)
    head = _filtered(query, correlated=True).join(key, on_key)
    head = _ordered(head, rest, lead=[key.c.value.desc() if first.descending
                                      else key.c.value.asc()])
    found = _infos(conn, head.limit(query.limit))
    if len(found) < query.limit:
        tail = _filtered(query, correlated=True).where(~sa.exists().where(on_key))
        found += _infos(conn, _ordered(tail, rest).limit(query.limit - len(found)))
    return found


def count_matching(conn: Connection, query: RunQuery) -> int:
    """How many runs match the query's experiments, statuses and filter."""
    matching = _filtered(query, correlated=False).with_only_columns(t.runs.c.run_id)
    return int(conn.execute(sa.select(sa.func.count()).select_from(
        matching.subquery())).scalar_one())


def _infos(conn: Connection, stmt: Any) -> list[RunInfo]:
    return [RunInfo(**r) for r in conn.execute(stmt).mappings().all()]


def _filtered(query: RunQuery, *, correlated: bool) -> Any:
    runs = t.runs
    stmt = sa.select(runs)
    if query.experiment_ids:
        stmt = stmt.where(runs.c.experiment_id.in_(list(query.experiment_ids)))
    if query.statuses:
        stmt = stmt.where(runs.c.status.in_(list(query.statuses)))
    for cmp in query.where:
        stmt = stmt.where(_condition(cmp, correlated=correlated))
    return stmt


def _ordered(stmt: Any, order_by: Sequence[OrderBy], lead: list[Any] | None = None) -> Any:
    """Order by ``lead``, then each OrderBy (missing keys last), then newest first."""
    runs = t.runs
    order: list[Any] = list(lead or [])
    for i, ob_ in enumerate(order_by):
        if ob_.entity == "attribute":
            col: Any = runs.c[ob_.key]
        else:
            alias = _ENTITY_TABLES[ob_.entity].alias(f"ord{i}")
            stmt = stmt.outerjoin(
                alias, sa.and_(alias.c.run_id == runs.c.run_id, alias.c.key == ob_.key)
            )
            col = alias.c.value
        order += [col.is_(None), col.desc() if ob_.descending else col.asc()]
    order += [runs.c.start_time.desc(), runs.c.run_id]
    return stmt.order_by(*order)


def _condition(cmp: Comparison, *, correlated: bool) -> Any:
    if cmp.entity == "attribute":
        return _compare(t.runs.c[cmp.key], cmp.op, cmp.value)
    table = _ENTITY_TABLES[cmp.entity]
    matches = (table.c.key == cmp.key, _compare(table.c.value, cmp.op, cmp.value))
    if correlated:
        return sa.exists().where(table.c.run_id == t.runs.c.run_id, *matches)
    return t.runs.c.run_id.in_(sa.select(table.c.run_id).where(*matches))


def _compare(col: Any, op: str, value: Any) -> Any:
    if op == "=":
        return col == value
    if op == "!=":
        return col != value
    if op == "<":
        return col < value
    if op == "<=":
        return col <= value
    if op == ">":
        return col > value
    if op == ">=":
        return col >= value
    if op == "LIKE":
        return col.like(value)
    if op == "ILIKE":
        return sa.func.lower(col).like(str(value).lower())
    if op == "IN":
        return col.in_(list(value))
    if op == "NOT IN":
        return col.not_in(list(value))
    raise ValueError(f"unknown operator {op}")  # the parser never produces one
