"""The run search language: ``metrics.r2 > 0.9 and params.max_depth = '5'``.

Grammar (keywords case-insensitive)::

    filter   := clause ( AND clause )*
    clause   := name op value
    name     := entity "." key | attribute          key may be quoted: metrics."val loss"
    entity   := metrics | params | tags | attributes   (singular forms and m/p/t also work)
    op       := = | != | < | <= | > | >= | LIKE | ILIKE | IN | NOT IN
    value    := number | 'string' | "string" | ( value , ... )

Metrics compare as numbers; params and tags as strings (an unquoted number is taken as
written, so ``params.depth = 5`` matches the param "5"). Attributes: status, name (or
run_name), run_id, user, host, parent_run_id (strings) and start_time, end_time (epoch ms).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from modelyard.backends.metadata.base import RUN_STATUSES, Comparison, Entity, OrderBy
from modelyard.errors import InvalidFilterError

_ENTITIES: dict[str, Entity] = {
    "metrics": "metric", "metric": "metric", "m": "metric",
    "params": "param", "param": "param", "p": "param",
    "tags": "tag", "tag": "tag", "t": "tag",
    "attributes": "attribute", "attribute": "attribute", "attr": "attribute", "a": "attribute",
}
_ATTRIBUTE_ALIASES = {"run_name": "name", "id": "run_id", "parent": "parent_run_id"}
_STRING_ATTRIBUTES = {"run_id", "name", "status", "user", "host", "parent_run_id"}
_NUMERIC_ATTRIBUTES = {"start_time", "end_time"}
_NUMERIC_OPS = {"=", "!=", "<", "<=", ">", ">="}
_STRING_OPS = {"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<backtick>`[^`]*`)
  | (?P<number>(?<!\w)[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?!\w))
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),.])
  | (?P<word>\d*[A-Za-z_][\w\-/:]*)
    """,
    re.VERBOSE,
)


class _Tokens:
    def __init__(self, text: str) -> None:
        self.text = text
        self.items: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise self.error(f"unexpected character {text[pos]!r}", pos)
            if m.lastgroup != "ws":
                self.items.append((m.lastgroup or "", m.group(), pos))
            pos = m.end()
        self.i = 0

    def error(self, what: str, pos: int | None = None) -> InvalidFilterError:
        if pos is None:
            pos = self.items[self.i][2] if self.i < len(self.items) else len(self.text)
        pointer = " " * pos + "^"
        return InvalidFilterError(
            f"invalid filter: {what} at position {pos}\n  {self.text}\n  {pointer}",
            filter=self.text, position=pos,
        )

    def peek(self) -> tuple[str, str, int] | None:
        return self.items[self.i] if self.i < len(self.items) else None

    def take(self, expected: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise self.error(f"expected {expected or 'more'} but the filter ended")
        self.i += 1
        return tok

    def at_word(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "word" and tok[1].upper() in words


def _unquote(raw: str) -> str:
    body = raw[1:-1]
    return re.sub(r"\\(.)", r"\1", body) if raw[0] in "'\"" else body


def _parse_name(tokens: _Tokens) -> tuple[Entity, str]:
    kind, text, pos = tokens.take("a name such as metrics.r2")
    if kind != "word":
        raise tokens.error(f"expected a name such as metrics.r2, found {text!r}", pos)
    nxt = tokens.peek()
    if nxt is not None and nxt[1] == "." and text.lower() in _ENTITIES:
        tokens.take()
        entity = _ENTITIES[text.lower()]
        kkind, ktext, kpos = tokens.take("a key after the dot")
        if kkind in ("string", "backtick"):
            key = _unquote(ktext)
        elif kkind in ("word", "number"):
            key = ktext
            # keys may contain dots: metrics.val.loss
            while (dot := tokens.peek()) is not None and dot[1] == "." and dot[2] == (
                kpos + len(key)
            ):
                tokens.take()
                pkind, ptext, ppos = tokens.take("the rest of the key")
                if pkind not in ("word", "number") or ppos != dot[2] + 1:
                    raise tokens.error(
                        f"expected the rest of the key after {key}., found {ptext!r}", ppos
                    )
                key += "." + ptext
        else:
            raise tokens.error(f"expected a key after {text}., found {ktext!r}", kpos)
        if entity != "attribute":
            return entity, key
        text, pos = key, kpos
    elif nxt is not None and nxt[1] == ".":
        raise tokens.error(
            f"unknown prefix {text!r}: use metrics., params., tags. or attributes.", pos
        )
    attr = _ATTRIBUTE_ALIASES.get(text.lower(), text.lower())
    if attr not in _STRING_ATTRIBUTES | _NUMERIC_ATTRIBUTES:
        raise tokens.error(
            f"unknown run attribute {text!r} (known: "
            f"{', '.join(sorted(_STRING_ATTRIBUTES | _NUMERIC_ATTRIBUTES))}; "
            "or write metrics.NAME, params.NAME, tags.NAME)",
            pos,
        )
    return "attribute", attr


def _parse_op(tokens: _Tokens) -> str:
    kind, text, pos = tokens.take("an operator")
    if kind == "op":
        return {"==": "=", "<>": "!="}.get(text, text)
    word = text.upper()
    if kind == "word" and word in {"LIKE", "ILIKE", "IN"}:
        return word
    if kind == "word" and word == "NOT" and tokens.at_word("IN"):
        tokens.take()
        return "NOT IN"
    raise tokens.error(f"expected an operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN), "
                       f"found {text!r}", pos)


def _parse_scalar(tokens: _Tokens) -> tuple[str, str, int]:
    kind, text, pos = tokens.take("a value")
    if kind not in ("string", "number"):
        raise tokens.error(f"expected a number or a quoted string, found {text!r}", pos)
    return kind, text, pos


def _parse_clause(tokens: _Tokens) -> Comparison:
    start = tokens.peek()
    entity, key = _parse_name(tokens)
    op = _parse_op(tokens)
    numeric = entity == "metric" or (entity == "attribute" and key in _NUMERIC_ATTRIBUTES)
    where = f"{'attribute' if entity == 'attribute' else entity + 's'}.{key}"
    if op in ("IN", "NOT IN"):
        if numeric:
            raise tokens.error(f"{op} is not supported for the number {where}")
        kind, text, pos = tokens.take("'('")
        if text != "(":
            raise tokens.error(f"expected '(' after {op}", pos)
        items: list[str] = []
        while True:
            kind, text, _ = _parse_scalar(tokens)
            items.append(_unquote(text) if kind == "string" else text)
            kind, text, pos = tokens.take("',' or ')'")
            if text == ")":
                break
            if text != ",":
                raise tokens.error(f"expected ',' or ')' in the {op} list", pos)
        return Comparison(entity, key, op, tuple(items))
    kind, text, pos = _parse_scalar(tokens)
    if numeric:
        if op not in _NUMERIC_OPS:
            raise tokens.error(f"{op} compares strings, but {where} is a number", pos)
        if kind != "number":
            raise tokens.error(f"{where} is a number, so compare it with a number, "
                               f"not {text}", pos)
        return Comparison(entity, key, op, float(text))
    if op not in _STRING_OPS:
        hint = " (use metrics.NAME for numeric comparisons)" if entity == "param" else ""
        raise tokens.error(f"{op} is not supported for the string {where}{hint}",
                           start[2] if start else None)
    value = _unquote(text) if kind == "string" else text
    if entity == "attribute" and key == "status" and op in ("=", "!=") and (
        value.lower() not in RUN_STATUSES
    ):
        raise tokens.error(f"unknown status {value!r} (known: {', '.join(RUN_STATUSES)})", pos)
    if entity == "attribute" and key == "status":
        value = value.lower()
    return Comparison(entity, key, op, value)


def parse_filter(text: str | None) -> list[Comparison]:
    """Parse a filter string into comparisons that are AND-ed together."""
    if text is None or not text.strip():
        return []
    tokens = _Tokens(text)
    clauses = [_parse_clause(tokens)]
    while tokens.peek() is not None:
        if not tokens.at_word("AND"):
            _, word, pos = tokens.take()
            if word.upper() == "OR":
                raise tokens.error("OR is not supported; run two searches and combine them",
                                   pos)
            raise tokens.error(f"expected AND between clauses, found {word!r}", pos)
        tokens.take()
        clauses.append(_parse_clause(tokens))
    return clauses


def parse_order_by(items: Sequence[str] | str | None) -> list[OrderBy]:
    """Parse ``["metrics.r2 desc", "start_time"]`` into orderings."""
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    result: list[OrderBy] = []
    for item in items:
        tokens = _Tokens(item)
        entity, key = _parse_name(tokens)
        descending = False
        if tokens.at_word("DESC", "ASC"):
            descending = tokens.take()[1].upper() == "DESC"
        if tokens.peek() is not None:
            raise tokens.error("expected ASC or DESC or the end of the ordering")
        result.append(OrderBy(entity, key, descending))
    return result
