"""SQL expressions of features: checked when defined, computed over Arrow with DuckDB."""

from __future__ import annotations

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
    """Refuse an expression that does not parse; with a declared schema, also one that names
    unknown columns or does not type-check."""
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
    finally:
        con.close()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def select(table: pa.Table, columns: Sequence[tuple[str, str]], where: str | None = None
           ) -> pa.Table:
    """``SELECT expr AS name, ... FROM table [WHERE ...]`` on an Arrow table, with a clear
    error naming the failing expression."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")  # time-zone-aware columns come back as UTC
        con.register("src", table)
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
        con.close()


def _failing(con: Any, columns: Sequence[tuple[str, str]]) -> str:
    import duckdb

    for name, expr in columns:
        try:
            con.execute(f"SELECT ({expr}) FROM src LIMIT 0")
        except duckdb.Error:
            return f"{name} = {expr!r}"
    return ""
