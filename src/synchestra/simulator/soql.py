"""The SoQL subset the simulated DataHub understands, with Socrata's errors.

Supported: ``$where`` as ``col = 'text'``, ``col != 'text'`` and
``col IN ('a', 'b')`` joined by ``AND``; ``$order`` by columns or ``:id``
with ``ASC``/``DESC``; ``$limit`` (default 1,000, at most 50,000, as on a
SODA 2.0 endpoint) and ``$offset``; ``$select`` of columns or ``count(*)``;
simple filters ``?column=value``; ``$$app_token``. Anything else gets the
400 body a real Socrata endpoint would send for a bad query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_LIMIT = 1000
MAX_LIMIT = 50_000
ROW_ID = ":id"
KNOWN_PARAMS = ("$where", "$order", "$limit", "$offset", "$select", "$$app_token")

Op = Literal["=", "!=", "in"]


class SoqlError(Exception):
    """A query Socrata would refuse; ``body`` is the JSON Socrata sends with 400."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", "bad query"))
        self.body = body


@dataclass(frozen=True)
class Condition:
    column: str
    op: Op
    values: tuple[str, ...]

    def matches(self, row: dict[str, str]) -> bool:
        value = row.get(self.column)
        if self.op == "!=":
            return value is not None and value not in self.values
        return value in self.values


@dataclass(frozen=True)
class OrderKey:
    column: str
    descending: bool = False


@dataclass(frozen=True)
class SoqlQuery:
    where: tuple[Condition, ...] = ()
    order: tuple[OrderKey, ...] = ()
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    select: tuple[str, ...] | None = None
    count: bool = False

    def values_of(self, column: str) -> set[str] | None:
        """The values an equality/IN condition pins ``column`` to (None: unpinned)."""
        pinned: set[str] | None = None
        for cond in self.where:
            if cond.column == column and cond.op != "!=":
                found = set(cond.values)
                pinned = found if pinned is None else pinned & found
        return pinned


def parse_query(params: Iterable[tuple[str, str]], columns: Sequence[str]) -> SoqlQuery:
    """Parse a request's query parameters against a dataset's ``columns``."""
    pairs = list(params)
    unknown = [k for k, _ in pairs if k not in KNOWN_PARAMS and k not in columns]
    if unknown:
        raise SoqlError(
            {"error": True, "message": f"Unrecognized arguments [{', '.join(unknown)}]"}
        )
    given = {k: v for k, v in pairs if k.startswith("$")}
    text = _query_text(given)
    simple = tuple(Condition(k, "=", (v,)) for k, v in pairs if k in columns)
    select, count = _select(given.get("$select"), columns, text)
    return SoqlQuery(
        where=simple + _where(given.get("$where"), columns, text),
        order=_order(given.get("$order"), columns, text),
        limit=_number(given.get("$limit"), DEFAULT_LIMIT, "limit", text),
        offset=_number(given.get("$offset"), 0, "offset", text),
        select=select,
        count=count,
    )


def _query_text(given: dict[str, str]) -> str:
    """The SoQL Socrata would compile from the parameters (quoted in error messages)."""
    parts = [f"select {given.get('$select', '*')}"]
    for key, word in (("$where", "where"), ("$order", "order by")):
        if key in given:
            parts.append(f"{word} {given[key]}")
    for key in ("$limit", "$offset"):
        if key in given:
            parts.append(f"{key[1:]} {given[key]}")
    return " ".join(parts)


def malformed(text: str, fragment: str, position: int, expected: str, got: str) -> SoqlError:
    """Socrata's ``query.compiler.malformed`` for the token at ``position`` of ``fragment``."""
    char = text.find(fragment) + position + 1 if fragment in text else 1
    message = (
        f'Could not parse SoQL query "{text}" at line 1 character {char}: '
        f"Expected {expected}, but got `{got}'"
    )
    return SoqlError(
        {
            "code": "query.compiler.malformed",
            "error": True,
            "message": message,
            "data": {"query": text, "position": {}},
        }
    )


def no_such_column(column: str) -> SoqlError:
    return SoqlError(
        {"code": "query.soql.no-such-column", "error": True, "message": f"No such column: {column}"}
    )


def type_mismatch(op: str, column_type: str, value_type: str) -> SoqlError:
    return SoqlError(
        {
            "code": "query.soql.type-mismatch",
            "error": True,
            "message": f"Type mismatch for op${op}, is {column_type}, {value_type}",
        }
    )


def _number(value: str | None, default: int, name: str, text: str) -> int:
    if value is None:
        return default
    stripped = value.strip()
    if not stripped.isdigit():
        raise malformed(text, f"{name} {value}", len(name) + 1, "an integer", stripped or "end")
    number = int(stripped)
    if name == "limit" and number > MAX_LIMIT:
        raise SoqlError(
            {
                "code": "query.compiler.malformed",
                "error": True,
                "message": f"Limit must be less than or equal to {MAX_LIMIT}",
                "data": {"query": text},
            }
        )
    return number


def _select(
    value: str | None, columns: Sequence[str], text: str
) -> tuple[tuple[str, ...] | None, bool]:
    if value is None or value.strip() == "*":
        return None, False
    if re.fullmatch(r"\s*count\(\s*\*\s*\)\s*", value, re.IGNORECASE):
        return None, True
    names = tuple(name.strip() for name in value.split(","))
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise malformed(text, value, value.find(name), "a column name", name or ",")
        if name not in columns:
            raise no_such_column(name)
    return names, False


def _order(value: str | None, columns: Sequence[str], text: str) -> tuple[OrderKey, ...]:
    if value is None:
        return ()
    keys: list[OrderKey] = []
    for item in value.split(","):
        words = item.split()
        if not words or len(words) > 2:
            raise malformed(text, value, value.find(item), "a column name", item.strip() or ",")
        column = words[0]
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise malformed(text, value, value.find(words[1]), "`ASC' or `DESC'", words[1])
        if column != ROW_ID and column not in columns:
            raise no_such_column(column)
        keys.append(OrderKey(column, direction == "DESC"))
    return tuple(keys)


_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_:][A-Za-z0-9_]*)|(?P<op>!=|<>|[=(),<>]))"
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    at: int


def _tokens(value: str, text: str) -> list[_Token]:
    found: list[_Token] = []
    at = 0
    while at < len(value) and len(found) <= len(value):
        if not value[at:].strip():
            break
        match = _TOKEN.match(value, at)
        if match is None or match.lastgroup is None:
            rest = value[at:].lstrip()
            raise malformed(text, value, len(value) - len(rest), "a value or column", rest[:10])
        found.append(
            _Token(match.lastgroup, match.group(match.lastgroup), match.start(match.lastgroup))
        )
        at = match.end()
    return found


def _where(value: str | None, columns: Sequence[str], text: str) -> tuple[Condition, ...]:
    if value is None:
        return ()
    parser = _WhereParser(_tokens(value, text), value, columns, text)
    return parser.parse()


class _WhereParser:
    """``cond (AND cond)*`` where cond is ``col = 'x'``, ``col != 'x'`` or ``col IN (...)``."""

    def __init__(self, tokens: list[_Token], value: str, columns: Sequence[str], text: str) -> None:
        self.tokens, self.value, self.columns, self.text = tokens, value, columns, text
        self.at = 0

    def parse(self) -> tuple[Condition, ...]:
        conditions = [self._condition()]
        while self.at < len(self.tokens):
            self._expect_word("AND")
            conditions.append(self._condition())
        return tuple(conditions)

    def _condition(self) -> Condition:
        name = self._take("a column name")
        if name.kind != "name":
            raise self._error(name, "a column name")
        if name.text not in self.columns:
            raise no_such_column(name.text)
        op = self._take("`=', `!=' or `IN'")
        if op.kind == "name" and op.text.upper() == "IN":
            return Condition(name.text, "in", self._list())
        if op.text not in ("=", "!=", "<>"):
            raise self._error(op, "`=', `!=' or `IN'")
        literal = self._literal(op.text)
        return Condition(name.text, "=" if op.text == "=" else "!=", (literal,))

    def _list(self) -> tuple[str, ...]:
        self._expect_op("(")
        values = [self._literal("in")]
        while (token := self._take("`,' or `)'")).text == ",":
            values.append(self._literal("in"))
        if token.text != ")":
            raise self._error(token, "`,' or `)'")
        return tuple(values)

    def _literal(self, op: str) -> str:
        token = self._take("a text value")
        if token.kind == "number":
            raise type_mismatch(op, "text", "number")
        if token.kind != "string":
            raise self._error(token, "a text value")
        return token.text[1:-1].replace("''", "'")

    def _expect_word(self, word: str) -> None:
        token = self._take(f"`{word}'")
        if token.kind != "name" or token.text.upper() != word:
            raise self._error(token, f"`{word}' (only AND is supported)")

    def _expect_op(self, op: str) -> None:
        token = self._take(f"`{op}'")
        if token.text != op:
            raise self._error(token, f"`{op}'")

    def _take(self, expected: str) -> _Token:
        if self.at >= len(self.tokens):
            raise malformed(self.text, self.value, len(self.value), expected, "end of input")
        token = self.tokens[self.at]
        self.at += 1
        return token

    def _error(self, token: _Token, expected: str) -> SoqlError:
        return malformed(self.text, self.value, token.at, expected, token.text)
