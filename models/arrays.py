"""Lists bound as PostgreSQL arrays, packed by `struct` and `bytes.join` rather than psycopg's loop per element.

psycopg dumps a list one element at a time in Python (~0.7 µs an element in binary, ~1 µs in text, where a
regex decides each element's quoting); a HubSpot contacts page binds ~27,000 elements in its lookups and bulk
writes, a Gmail page of 500 messages ~40,000 in its bulk writes. `packed` wraps a list of int8-range ints, of
strings without NUL, of booleans or of tz-aware datetimes (each may hold NULLs) in a list subclass (still a
list, so models.db runs its statement unprepared) whose dumper packs the whole binary array in a few C loops.
Any other list stays a plain list for psycopg's own dumpers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain, repeat
from typing import Any, ClassVar

import psycopg
from psycopg.adapt import AdaptersMap, Dumper, PyFormat
from psycopg.pq import Format

INT8_OID, INT8_ARRAY_OID, TEXT_OID, TEXT_ARRAY_OID = 20, 1016, 25, 1009
BOOL_OID, BOOL_ARRAY_OID, TIMESTAMPTZ_OID, TIMESTAMPTZ_ARRAY_OID = 16, 1000, 1184, 1185
INT8_MIN, INT8_MAX = -(2**63), 2**63 - 1
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # timestamptz counts microseconds from here
_HEAD = struct.Struct("!iiIii")  # dimensions, has NULLs, element type, length, lower bound
_INT8 = struct.Struct("!iq")  # an element: its length (8) and value
_LENGTH = struct.Struct("!i")
_NULL = _LENGTH.pack(-1)  # an element's length of -1: NULL, no bytes follow
_BOOLS = {True: struct.pack("!ib", 1, 1), False: struct.pack("!ib", 1, 0), None: _NULL}


class Packed(list[Any]):
    """A list sent as one binary array of `element_oid` (the statement casts it to its column's type)."""

    element_oid: ClassVar[int]
    nulls: bool = False


class Int8s(Packed):
    """Ints (or None) sent as one binary int8[]."""

    element_oid = INT8_OID


class Texts(Packed):
    """Strings (or None) sent as one binary text[]."""

    element_oid = TEXT_OID


class Bools(Packed):
    """Booleans (or None) sent as one binary bool[]."""

    element_oid = BOOL_OID


class Timestamps(Packed):
    """Tz-aware datetimes (or None) sent as one binary timestamptz[]."""

    element_oid = TIMESTAMPTZ_OID


def _array(obj: Packed, elements: Iterable[bytes]) -> bytes:
    """PostgreSQL's binary array: its one-dimension header, then each element's length and bytes."""
    return _HEAD.pack(1, int(obj.nulls), obj.element_oid, len(obj), 1) + b"".join(elements)


class _Int8sDumper(Dumper):
    format = Format.BINARY
    oid = INT8_ARRAY_OID

    def dump(self, obj: Packed) -> bytes:
        if not obj.nulls:
            return _array(obj, map(_INT8.pack, repeat(8, len(obj)), obj))
        return _array(obj, (_NULL if v is None else _INT8.pack(8, v) for v in obj))


class _TextsDumper(Dumper):
    format = Format.BINARY
    oid = TEXT_ARRAY_OID

    def dump(self, obj: Packed) -> bytes:
        encoding = self.connection.info.encoding if self.connection is not None else "utf-8"
        values = [v or "" for v in obj] if obj.nulls else obj
        items = "\x00".join(values).encode(encoding).split(b"\x00")  # `packed` lets no NUL in
        lengths = [-1 if v is None else len(b) for v, b in zip(obj, items, strict=True)] if obj.nulls else None
        packed_lengths = map(_LENGTH.pack, lengths if lengths is not None else map(len, items))
        return _array(obj, chain.from_iterable(zip(packed_lengths, items, strict=True)))


class _BoolsDumper(Dumper):
    format = Format.BINARY
    oid = BOOL_ARRAY_OID

    def dump(self, obj: Packed) -> bytes:
        return _array(obj, map(_BOOLS.__getitem__, obj))


class _TimestampsDumper(Dumper):
    format = Format.BINARY
    oid = TIMESTAMPTZ_ARRAY_OID

    def dump(self, obj: Packed) -> bytes:
        return _array(obj, (_NULL if v is None else _INT8.pack(8, _micros(v - PG_EPOCH)) for v in obj))


def _micros(delta: Any) -> int:
    return int(delta.microseconds + 1_000_000 * (86_400 * delta.days + delta.seconds))


DUMPERS = ((Int8s, _Int8sDumper), (Texts, _TextsDumper), (Bools, _BoolsDumper), (Timestamps, _TimestampsDumper))


def ready(adapters: AdaptersMap) -> None:
    """Give a connection's adapters the packed dumpers (models.db calls it on every new PostgreSQL connection).

    SQLAlchemy's psycopg dialect copies psycopg's global map when the engine is made: an engine made before this
    module was imported (the benches) dumped every list element by element.
    """
    try:
        if adapters.get_dumper(Int8s, PyFormat.BINARY) is _Int8sDumper:
            return
    except psycopg.ProgrammingError:  # a map without even psycopg's list dumpers
        pass
    for cls, dumper in DUMPERS:
        adapters.register_dumper(cls, dumper)


ready(psycopg.adapters)


def packed(values: Sequence[Any]) -> list[Any]:
    """A `Packed` list when the values but NULLs are all of one packed kind (NULLs alone: text[]); else a plain list."""
    kinds = set(map(type, values))
    nulls = type(None) in kinds
    kinds.discard(type(None))
    present = [v for v in values if v is not None] if nulls else values
    out: Packed
    if not kinds and values:
        out = Texts(values)  # NULLs alone: a text[] of NULLs casts to any column's type
    elif kinds == {str} and "\x00" not in "".join(present):
        out = Texts(values)
    elif kinds == {int} and min(present) >= INT8_MIN and max(present) <= INT8_MAX:
        out = Int8s(values)
    elif kinds == {bool}:
        out = Bools(values)
    elif kinds == {datetime} and all(v.utcoffset() is not None for v in present):
        out = Timestamps(values)
    else:
        return list(values)
    out.nulls = nulls
    return out
