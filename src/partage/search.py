"""Searches shared by the APIs and the portal: named parameters mapped to SQL conditions,
and keyset paging.

A domain describes what can be searched (`SearchSpec`: its parameters, each turning the
values a caller gave into one SQL condition, and a total order); FHIR routes and portal pages
parse their own inputs into `Criterion`s and call `run_search`. Paging is by keyset (the sort
key of the last row seen), not by offset: a page is the same whatever was inserted before
it, and page 1,000 costs what page 1 costs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, cast

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, and_, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from partage.security import b64url

T = TypeVar("T")

ParameterType = Literal["string", "token", "reference", "uri", "date", "number", "boolean"]
# Folded values to index prefixes on: a prefix "ABC" is every value in ["ABC", "ABD").
_LIKE_ESCAPE = "\\"


class InvalidSearch(ValueError):
    """A search the caller must correct: the message says what is wrong, in their terms."""


@dataclass(frozen=True)
class Criterion:
    """One search parameter as given: `values` are alternatives (any may match); repeating a
    parameter (two criteria of the same name) asks for all to match."""

    name: str
    values: tuple[str, ...]
    modifier: str | None = None


ConditionBuilder = Callable[[Criterion], ColumnElement[bool]]


@dataclass(frozen=True)
class Parameter:
    name: str
    type: ParameterType
    description: str
    build: ConditionBuilder
    modifiers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SearchSpec(Generic[T]):
    """What can be searched on one kind of row, and the total order pages follow (the last
    key must be unique, e.g. the id)."""

    model: type[T]
    parameters: dict[str, Parameter]
    # Columns, or `column.desc()` for a descending part.
    order: tuple[SQLColumnExpression[Any], ...]
    # Conditions every search of this kind carries (e.g. leaving out aliases of other rows).
    always: tuple[ColumnElement[bool], ...] = ()


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    # The sort key of the last row when another page follows (give it back as `after`).
    next_after: tuple[Any, ...] | None
    total: int | None


def run_search(
    session: Session,
    spec: SearchSpec[T],
    *,
    criteria: Sequence[Criterion],
    count: int,
    after: tuple[Any, ...] | None = None,
    with_total: bool = False,
) -> Page[T]:
    conditions = [condition_for(spec, criterion) for criterion in criteria]
    statement: Select[T] = select(spec.model).where(*spec.always, *conditions)
    total = None
    if with_total:
        total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    if count == 0:
        return Page([], None, total)
    if after is not None:
        if len(after) != len(spec.order):
            raise InvalidSearch("the page link is not valid for this search")
        key = tuple(
            _coerce(_column(column), part) for column, part in zip(spec.order, after, strict=True)
        )
        statement = statement.where(_after(spec.order, key))
    rows = list(session.scalars(statement.order_by(*spec.order).limit(count + 1)))
    next_after = None
    if len(rows) > count:
        rows = rows[:count]
        next_after = tuple(session.execute(_key_of(spec, rows[-1])).one())
    return Page(rows, next_after, total)


def condition_for(spec: SearchSpec[Any], criterion: Criterion) -> ColumnElement[bool]:
    parameter = spec.parameters.get(criterion.name)
    if parameter is None:
        raise InvalidSearch(f"unknown search parameter '{criterion.name}'")
    if criterion.modifier is not None and criterion.modifier not in parameter.modifiers:
        raise InvalidSearch(
            f"the modifier ':{criterion.modifier}' is not supported on '{criterion.name}'"
        )
    if not criterion.values or any(v == "" for v in criterion.values):
        raise InvalidSearch(f"the search parameter '{criterion.name}' has an empty value")
    return parameter.build(criterion)


def _coerce(column: SQLColumnExpression[Any], value: Any) -> Any:
    """A key part read back from a page link, as the column's type (ids are UUIDs)."""
    try:
        python_type = cast(ColumnElement[Any], column).type.python_type
    except NotImplementedError:
        return value
    if value is None or isinstance(value, python_type):
        return value
    try:
        if python_type is uuid.UUID:
            return uuid.UUID(value)
        if python_type is datetime:
            return datetime.fromisoformat(value)
        return python_type(value)
    except (TypeError, ValueError):
        raise InvalidSearch("the page link is not valid") from None


def _after(
    order: tuple[SQLColumnExpression[Any], ...], key: tuple[Any, ...]
) -> ColumnElement[bool]:
    # (a, b, c) > (x, y, z) spelt out: row values are not comparable on every database with
    # every type, and this form lets the first column's index bound the scan.
    columns = [_column(part) for part in order]
    descending = [_descending(part) for part in order]
    alternatives = []
    for depth in range(len(order)):
        equal = [columns[i] == key[i] for i in range(depth)]
        beyond = columns[depth] < key[depth] if descending[depth] else columns[depth] > key[depth]
        alternatives.append(and_(*equal, beyond))
    first = columns[0] <= key[0] if descending[0] else columns[0] >= key[0]
    return and_(first, or_(*alternatives))


def _descending(part: SQLColumnExpression[Any]) -> bool:
    return isinstance(part, UnaryExpression) and part.modifier is operators.desc_op


def _column(part: SQLColumnExpression[Any]) -> SQLColumnExpression[Any]:
    """The column of an order part (`column` or `column.desc()`)."""
    return cast(SQLColumnExpression[Any], part.element) if _descending(part) else part  # type: ignore[attr-defined]


def _key_of(spec: SearchSpec[Any], row: Any) -> Select[Any]:
    identity = spec.model.id
    return select(*(_column(part) for part in spec.order)).where(identity == row.id)


# --- helpers for condition builders --------------------------------------------------------


def prefix_condition(column: SQLColumnExpression[str | None], prefix: str) -> ColumnElement[bool]:
    """`column` starts with `prefix` (both already folded), in a form both databases answer
    from an ordinary index: a range on the column, then LIKE for exactness."""
    escaped = prefix.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(column >= prefix, column < upper, column.like(escaped + "%", escape=_LIKE_ESCAPE))


def any_of(conditions: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    return conditions[0] if len(conditions) == 1 else or_(*conditions)


def parse_boolean(criterion: Criterion) -> bool:
    if len(criterion.values) != 1 or criterion.values[0] not in ("true", "false"):
        raise InvalidSearch(f"'{criterion.name}' takes true or false")
    return criterion.values[0] == "true"


def split_token(value: str) -> tuple[str | None, str]:
    """FHIR token `system|code`, `|code` (no system) or `code` (any system)."""
    if "|" not in value:
        return None, value
    system, _, code = value.partition("|")
    return system, code


# --- page links ---------------------------------------------------------------------------


def encode_after(key: tuple[Any, ...]) -> str:
    text = json.dumps([str(part) if part is not None else None for part in key])
    return b64url.encode(text.encode())


def decode_after(token: str) -> tuple[str | None, ...]:
    try:
        parts = json.loads(b64url.decode(token))
    except ValueError:
        raise InvalidSearch("the page link is not valid") from None
    if not isinstance(parts, list) or not all(p is None or isinstance(p, str) for p in parts):
        raise InvalidSearch("the page link is not valid")
    return tuple(parts)
