"""SQL expressions of features: bound to their source's columns when defined, computed over
Arrow with DuckDB."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidDefinitionError

if TYPE_CHECKING:
    import pyarrow as pa

_MAX_UNKNOWN = 20  # unknown names collected from one expression before giving up
_UNKNOWN = (re.compile(r'Referenced column "((?:[^"]|"")+)" not found'),
            re.compile(r'does not have a column named "((?:[^"]|"")+)"'))
# window functions whose argument must be numeric, as the offline engine calls them
_NUMERIC_AGGREGATES = {"mean": "avg", "sum": "sum", "std": "stddev_samp"}
_SHOWN = 12  # columns listed in an error message


@dataclass(frozen=True)
class SourceColumns:
    """The columns a source's rows have (names and Arrow types), and where that was learnt:
    ``origin`` reads after "its columns", e.g. "as declared" or "read from data/x.parquet".
    ``kind`` names what has them; with ``names_only`` the types are placeholders, so only
    unknown names are refused."""

    source: str
    schema: pa.Schema
    origin: str
    kind: str = "source"
    names_only: bool = False


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_expressions(items: Sequence[tuple[str, str, str | None]],
                      columns: SourceColumns | None) -> None:
    """Refuse an expression that does not parse or is not row-level (an aggregate or a
    window function); with the columns known, also one that names a column they lack
    (suggesting the closest name) or does not type-check. Each item is (expression, where,
    aggregate): ``where`` names its owner ("feature group 'g', feature 'f'"), ``aggregate``
    the function a window feature applies to it (``mean``...) or None."""
    import duckdb

    con = duckdb.connect()
    try:
        if columns is not None:
            con.register("t", _empty(columns.schema))
        for expr, where, aggregate in items:
            _check_one(con, expr, where, aggregate, columns)
    finally:
        con.close()


def _check_one(con: Any, expr: str, where: str, aggregate: str | None,
               columns: SourceColumns | None) -> None:
    import duckdb

    try:
        con.execute(f"SELECT ({expr}) FROM (SELECT 1 AS __x) AS t0 LIMIT 0")
    except duckdb.ParserException as exc:
        raise InvalidDefinitionError(
            f"{where}: the SQL expression {expr!r} does not parse: {_first_line(exc)}",
            field="expr", value=expr) from None
    except duckdb.Error:
        pass  # it parses; binding is checked below
    if columns is not None:
        _bind(con, expr, where, aggregate, columns)
    _check_row_level(con, expr, columns, where)


def _bind(con: Any, expr: str, where: str, aggregate: str | None,
          columns: SourceColumns) -> None:
    """Bind the expression (and a window's aggregate over it) to empty rows of the source's
    schema. Unknown columns are collected one by one from DuckDB's binder, each then given a
    null column so that the next one surfaces."""
    import duckdb

    unknown: list[str] = []
    table = _empty(columns.schema)
    try:
        while True:
            try:
                con.execute(f"SELECT ({expr}) FROM t LIMIT 0")
                break
            except duckdb.Error as exc:
                name = _unknown_name(str(exc))
                if name is None or name in unknown or len(unknown) >= _MAX_UNKNOWN:
                    if unknown or columns.names_only:
                        break  # report the unknown names; what remains may follow from them
                    raise InvalidDefinitionError(
                        f"{where}: the SQL expression {expr!r} does not fit the columns of "
                        f"{columns.kind} {columns.source!r} ({columns.origin}): "
                        f"{_first_line(exc)}",
                        field="expr", value=expr, source=columns.source) from None
                unknown.append(name)
                table = table.append_column(name, _null_column())
                con.register("t", table)
    finally:
        if unknown:
            con.register("t", _empty(columns.schema))
    if unknown:
        raise _unknown_columns(expr, where, unknown, columns)
    call = _NUMERIC_AGGREGATES.get(aggregate or "")
    if call is not None and not columns.names_only:
        try:
            con.execute(f"SELECT {call}({expr}) FROM t")
        except duckdb.Error as exc:
            raise InvalidDefinitionError(
                f"{where}: {aggregate}({expr}) does not fit the columns of source "
                f"{columns.source!r} ({columns.origin}): {aggregate} needs numbers; "
                f"{_first_line(exc)}", field="expr", value=expr,
                source=columns.source) from None


def _unknown_name(message: str) -> str | None:
    for pattern in _UNKNOWN:
        if m := pattern.search(message):
            return m[1].replace('""', '"')
    return None


def _unknown_columns(expr: str, where: str, unknown: Sequence[str],
                     columns: SourceColumns) -> InvalidDefinitionError:
    import difflib

    names = [n for n in columns.schema.names if not n.startswith("_")]
    lowered = {n.lower(): n for n in names}
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        if close:
            hints.append(f"did you mean {lowered[close[0]]!r} for {name!r}?"
                         if len(unknown) > 1 else f"did you mean {lowered[close[0]]!r}?")
    shown = ", ".join(names[:_SHOWN]) + (f", ... ({len(names)} in all)"
                                         if len(names) > _SHOWN else "")
    word = "column" if len(unknown) == 1 else "columns"
    text = (f"{where} uses {word} {', '.join(repr(n) for n in unknown)}, which "
            f"{columns.kind} {columns.source!r} does not have"
            + (f"; {' '.join(hints)}" if hints else "")
            + f" (its columns, {columns.origin}: {shown or 'none'})")
    suggestion = hints and difflib.get_close_matches(unknown[0].lower(), list(lowered), n=1,
                                                     cutoff=0.6)
    return InvalidDefinitionError(
        text, field="expr", value=expr, source=columns.source, columns=list(unknown),
        suggestion=lowered[suggestion[0]] if suggestion else None)


def _empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def _null_column() -> pa.Array:
    import pyarrow as pa

    return pa.array([], pa.null())


def _check_row_level(con: Any, expr: str, columns: SourceColumns | None, where: str) -> None:
    """A feature's value must come from its own row alone (materialization relies on it):
    DuckDB refuses aggregates and window functions in a ``WHERE`` clause, so bind the
    expression there, over the source's empty rows, or else null columns of the names it
    uses."""
    import duckdb

    if columns is not None:
        sql = f"SELECT 1 FROM t WHERE ({expr}) IS NULL LIMIT 0"
    else:
        names = _column_names(con, expr)
        body = ", ".join(f"NULL AS {quote(c)}" for c in sorted(names)) or "1 AS __x"
        sql = f"SELECT 1 FROM (SELECT {body}) AS t0 WHERE ({expr}) IS NULL LIMIT 0"
    try:
        con.execute(sql)
    except duckdb.Error as exc:
        text = str(exc)
        if "cannot contain aggregates" in text or "cannot contain window functions" in text:
            raise InvalidDefinitionError(
                f"{where}: the SQL expression {expr!r} must be computed from one row, but it "
                "holds an aggregate or a window function; aggregate over time with a window "
                "feature instead (for example Feature('x_7d', 'mean(x)', window='7d'))",
                field="expr", value=expr) from None


def _column_names(con: Any, expr: str) -> set[str]:
    """The column names an expression refers to, from DuckDB's parse tree."""
    import json

    tree = json.loads(con.execute("SELECT json_serialize_sql(?)",
                                  [f"SELECT ({expr}) FROM t"]).fetchone()[0])
    found: set[str] = set()
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class") == "COLUMN_REF" and node.get("column_names"):
                found.add(str(node["column_names"][-1]))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


_local = threading.local()


def _connection() -> Any:
    """This thread's DuckDB connection for small expression queries (opening one costs far
    more than a lookup's query: request-time features run on the serving path)."""
    con = getattr(_local, "con", None)
    if con is None:
        import duckdb

        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")  # time-zone-aware columns come back as UTC
        _local.con = con
    return con


def select(table: pa.Table, columns: Sequence[tuple[str, str]], where: str | None = None,
           order: Sequence[str] = ()) -> pa.Table:
    """``SELECT expr AS name, ... FROM table [WHERE ...] [ORDER BY ...]`` on an Arrow table,
    with a clear error naming the failing expression; ``order`` names output columns, sorted
    ascending with nulls first."""
    import duckdb

    con = _connection()
    con.register("src", table)
    try:
        body = ", ".join(f"({expr}) AS {quote(name)}" for name, expr in columns)
        sql = f"SELECT {body} FROM src" + (f" WHERE {where}" if where else "")
        if order:
            sql += " ORDER BY " + ", ".join(f"{quote(c)} ASC NULLS FIRST" for c in order)
        try:
            result: pa.Table = con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            bad = _failing(con, columns)
            raise InvalidDefinitionError(
                f"cannot compute {bad or 'the features'}: {_first_line(exc)}",
                field="expr") from exc
        return result
    finally:
        con.unregister("src")


def _failing(con: Any, columns: Sequence[tuple[str, str]]) -> str:
    import duckdb

    for name, expr in columns:
        try:
            con.execute(f"SELECT ({expr}) FROM src LIMIT 0")
        except duckdb.Error:
            return f"{name} = {expr!r}"
    return ""
