"""A table declared once: its record Struct gives the columns, the values and the row mapping.

Each stored entity is one msgspec Struct whose fields are the table's columns, in order. How a
field is stored follows from its type: text, integers and floats as they are, booleans as 0/1,
string enums by value, everything else (dicts, lists, Structs, `Any`) as JSON text decoded
back to the declared type. The DDL stays in `migrations.py`, which is history and must not
change when a Struct does; a test checks the two agree.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, Union, get_args, get_origin

import msgspec

from loopai.core.store.database import Database, Row

R = TypeVar("R", bound=msgspec.Struct)

_Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]


def _optional(hint: Any) -> tuple[Any, bool]:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(args) < len(get_args(hint)):
            return args[0], True
    return hint, False


def _codec(hint: Any) -> _Codec:
    """(to the database, from the database) for one field type."""
    inner, nullable = _optional(hint)
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]
    if inner is str:
        encode, decode = (lambda v: v), str
    elif inner is bool:
        encode, decode = int, bool
    elif inner is int:
        encode, decode = (lambda v: v), int
    elif inner is float:
        encode, decode = (lambda v: v), float
    elif isinstance(inner, type) and issubclass(inner, enum.Enum):
        encode, decode = (lambda v: v.value), inner
    else:
        decoder = msgspec.json.Decoder(inner)
        encode = lambda v: msgspec.json.encode(v).decode()  # noqa: E731
        decode = decoder.decode
    if inner is Any:  # JSON null is a value here (stored as 'null'); SQL NULL reads as None
        return encode, (lambda v: None if v is None else decode(v))
    if nullable:
        return ((lambda v: None if v is None else encode(v)),
                (lambda v: None if v is None else decode(v)))
    return encode, decode


def _codec_needed(hint: Any) -> bool:
    """False for the types stored as they are (text, integers, floats, and those or None)."""
    return _optional(hint)[0] not in (str, int, float)


class Table(Generic[R]):
    """SQL for one record type: `columns`, `values(record)`, `record(row)` and the common
    statements. Placeholders are `$n` (the Database layer adapts them for SQLite)."""

    def __init__(self, name: str, record: type[R], key: str = "id") -> None:
        self.name = name
        self.type = record
        self.key = key
        fields = msgspec.structs.fields(record)
        self.fields = tuple(f.name for f in fields)
        self._codecs = tuple(_codec(f.type) for f in fields)
        self._encoders = tuple((i, enc) for i, (f, (enc, _)) in enumerate(
            zip(fields, self._codecs, strict=True)) if _codec_needed(f.type))
        self.columns = ", ".join(self.fields)
        placeholders = ", ".join(f"${i}" for i in range(1, len(self.fields) + 1))
        self.insert_sql = f"INSERT INTO {name} ({self.columns}) VALUES ({placeholders})"
        others = [f for f in self.fields if f != key]
        assignments = ", ".join(f"{f} = ${i}" for i, f in enumerate(others, start=2))
        self.update_sql = f"UPDATE {name} SET {assignments} WHERE {key} = $1"
        self._update_order = (key, *others)

    def values(self, record: R) -> tuple[Any, ...]:
        row = list(msgspec.structs.astuple(record))
        for i, encode in self._encoders:  # text and numbers go as they are
            row[i] = encode(row[i])
        return tuple(row)

    def record(self, row: Row) -> R:
        return self.type(**{f: dec(v) for f, (_, dec), v in zip(self.fields, self._codecs,
                                                                 row, strict=True)})

    def select(self, where: str = "", tail: str = "") -> str:
        """`SELECT <every column> FROM <table> [WHERE …] [tail]`."""
        sql = f"SELECT {self.columns} FROM {self.name}"
        return sql + (f" WHERE {where}" if where else "") + (f" {tail}" if tail else "")

    async def insert(self, db: Database, record: R, on_conflict: str = "") -> int:
        sql = self.insert_sql + (f" ON CONFLICT {on_conflict}" if on_conflict else "")
        return await db.execute(sql, *self.values(record))

    async def insert_many(self, db: Database, records: Sequence[R],
                          on_conflict: str = "") -> None:
        sql = self.insert_sql + (f" ON CONFLICT {on_conflict}" if on_conflict else "")
        await db.executemany(sql, [self.values(r) for r in records])

    async def update(self, db: Database, record: R) -> int:
        by_name = dict(zip(self.fields, self.values(record), strict=True))
        return await db.execute(self.update_sql, *(by_name[f] for f in self._update_order))

    async def one(self, db: Database, where: str, *args: Any) -> R | None:
        row = await db.fetchrow(self.select(where), *args)
        return self.record(row) if row is not None else None

    async def many(self, db: Database, where: str = "", *args: Any, tail: str = "") -> list[R]:
        return [self.record(r) for r in await db.fetch(self.select(where, tail), *args)]

    async def get(self, db: Database, key: Any) -> R | None:
        return await self.one(db, f"{self.key} = $1", key)
