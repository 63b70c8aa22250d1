"""SQL expressions of features: checked when defined, computed over Arrow with DuckDB."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidDefinitionError

if TYPE_CHECKING:
    import pyarrow as pa

_DUCK_TYPES = {"int": "BIGINT", "float": "DOUBLE", "string": "VARCHAR", "bool": "BOOLEAN",
               "timestamp": "TIMESTAMPTZ", "date": "DATE"}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_expression(expr: str, declared: Mapping[str, str], where: str) -> None:
    """Refuse an expression that does not parse or is not row-level (an aggregate or a
    window function); with a declared schema, also one that names unknown columns or does
    not type-check."""
    import duckdb

    con = duckdb.connect()
    try:
        if declared:
            columns = ", ".join(f"NULL::{_DUCK_TYPES[t]} AS {quote(c)}"
                                for c, t in declared.items())
            con.execute(f"SELECT ({expr}) FROM (SELECT {columns}) AS t LIMIT 0")
        else:
            con.execute(f"SELECT ({expr}) FROM (SELECT 1 AS __x) AS t LIMIT 0")
    except duckdb.ParserException as exc:
        raise InvalidDefinitionError(
            f"{where}: the SQL expression {expr!r} does not parse: {_first_line(exc)}",
            field="expr", value=expr) from exc
    except duckdb.Error as exc:
        if declared:
            raise InvalidDefinitionError(
                f"{where}: the SQL expression {expr!r} does not fit the source's declared "
                f"columns: {_first_line(exc)}", field="expr", value=expr) from exc
        # without a declared schema, unknown columns are only known at ingestion
    try:
        _check_row_level(con, expr, declared, where)
    finally:
        con.close()


def _check_row_level(con: Any, expr: str, declared: Mapping[str, str], where: str) -> None:
    """A feature's value must come from its own row alone (materialization relies on it):
    DuckDB refuses aggregates and window functions in a ``WHERE`` clause, so bind the
    expression there, over null columns of the names it uses."""
    import duckdb

    if declared:
        columns = {c: f"NULL::{_DUCK_TYPES[t]}" for c, t in declared.items()}
    else:
        columns = {c: "NULL" for c in _column_names(con, expr)}
    body = ", ".join(f"{value} AS {quote(c)}" for c, value in columns.items()) or "1 AS __x"
    try:
        con.execute(f"SELECT 1 FROM (SELECT {body}) AS t WHERE ({expr}) IS NULL LIMIT 0")
    except duckdb.Error as exc:
        text = str(exc)
        if "cannot contain aggregates" in text or "cannot contain window functions" in text:
            raise InvalidDefinitionError(
                f"{where}: the SQL expression {expr!r} must be computed from one row, but it "
                "holds an aggregate or a window function; aggregate over time with a window "
                "feature instead (for example Feature('x_7d', 'mean(x)', window='7d'))",
                field="expr", value=expr) from exc


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


def select(table: pa.Table, columns: Sequence[tuple[str, str]], where: str | None = None
           ) -> pa.Table:
    """``SELECT expr AS name, ... FROM table [WHERE ...]`` on an Arrow table, with a clear
    error naming the failing expression."""
    import duckdb

    con = _connection()
    con.register("src", table)
    try:
        body = ", ".join(f"({expr}) AS {quote(name)}" for name, expr in columns)
        sql = f"SELECT {body} FROM src" + (f" WHERE {where}" if where else "")
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
