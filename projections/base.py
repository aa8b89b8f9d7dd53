"""The projection framework: a read model declares what it reads and how it applies it.

A ``Projection`` has a name, a version, the topics it reads, the tables it keeps (declared once,
created by the view store of either backend) and ``apply``, which turns one event into row
operations. The follower engine (``core.followers``) runs it: a batch's operations and the
tracked position are written in one transaction by the view store (``projections.stores``);
an event it cannot apply is parked per patient. Changing what a table holds means a new
version: the store builds it beside the live one and switches when it has caught up
(``smd projections rebuild``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from eventsourcing.persistence import Notification

#: Column types every backend knows: text, int, bool, uuid, time (aware datetime), real.
TYPES = ("text", "int", "bool", "uuid", "time", "real")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a view table."""

    name: str
    type: str
    not_null: bool = False

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"column {self.name}: type {self.type!r} is not one of {TYPES}")


@dataclass(frozen=True, slots=True)
class Table:
    """A view table: columns, primary key, unique keys and indexes (column tuples)."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    unique: tuple[tuple[str, ...], ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def types(self) -> dict[str, str]:
        return {c.name: c.type for c in self.columns}


@dataclass(frozen=True, slots=True)
class Insert:
    """Insert a row; a row with the same primary or unique key already there is kept."""

    table: str
    row: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Upsert:
    """Insert a row or replace the one with the same primary key."""

    table: str
    row: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Update:
    """Set ``values`` on the rows whose columns equal ``where``."""

    table: str
    where: Mapping[str, Any]
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete the rows whose columns equal ``where``."""

    table: str
    where: Mapping[str, Any]


Op = Insert | Upsert | Update | Delete


@dataclass
class Batch:
    """The row operations of one batch, in order (what ``apply`` appends to)."""

    ops: list[Op] = field(default_factory=list)

    def add(self, op: Op) -> None:
        self.ops.append(op)


class Projection(Protocol):
    """A read model on the follower engine."""

    name: str
    version: int
    topics: Sequence[str]
    tables: Sequence[Table]

    def apply(self, event: Any, notification: Notification, batch: Batch) -> None:
        """Append the row operations for one event (raise if it cannot be applied: it is parked)."""
