"""Typed decoding of a whole line in C (msgspec): the fast path of ``parse.py``.

``decode_event`` returns a struct only for a line that ``envelope_fields`` and
``type_payload`` would accept with a payload of a known (event_type, schema_version),
and raises ``DECODE_ERRORS`` for every other line, which the exact per-line path
then judges. The structs are generated from ``CATALOG``; ``payload_columns`` gives
the same typed values as ``type_payload``, column by column.

Exactness rests on two choices. Every struct forbids unknown fields and every value
has a concrete type, because msgspec skips an unknown value without the checks
orjson makes (valid UTF-8, numbers that overflow a double). And each rule that
msgspec cannot express leads to a raise, never to a guess. ``recorded_at`` is only
a string here: ``parse.py`` checks it for all rows at once.
"""

from __future__ import annotations

import math
from operator import attrgetter
from typing import Annotated, Literal, Union

import msgspec
from msgspec import Meta

from pipelines.ingest.catalog import (
    AGGREGATE_OF,
    CATALOG,
    MAX_TIME_MS,
    MAX_TIME_S,
    MIN_TIME_MS,
    MIN_TIME_S,
    ROOM_TYPES,
)
from pipelines.ingest.cid import cid_of
from pipelines.ingest.envelope import INT64_MAX

# What decoding a line the structs do not fit raises (RecursionError: deeper nesting
# than msgspec allows, which orjson may accept).
DECODE_ERRORS = (ValueError, RecursionError)

_NON_EMPTY = Annotated[str, Meta(min_length=1)]
_POSITIVE = Annotated[int, Meta(ge=1, le=INT64_MAX)]
_INT64 = Annotated[int, Meta(ge=-INT64_MAX - 1, le=INT64_MAX)]
_CHECK_TYPES = {
    "str": str,
    "int": _INT64,
    "number": _INT64 | float,
    "time": Annotated[int, Meta(ge=MIN_TIME_MS, le=MAX_TIME_MS)],
    "seconds": Annotated[int, Meta(ge=math.ceil(MIN_TIME_S), le=math.floor(MAX_TIME_S))]
    | Annotated[float, Meta(ge=MIN_TIME_S, le=MAX_TIME_S)],
    "str_list": list[str],
    "tags": list[list[str]],
    "room_type": Literal[tuple(sorted(ROOM_TYPES))],
}
# gc=False: the structs never form cycles, and untracked ones are cheaper to make.
_OPTIONS = {"forbid_unknown_fields": True, "gc": False}


class Metadata(msgspec.Struct, **_OPTIONS):
    """The metadata fields the spec names; any other field, or another type, defers."""

    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None
    source: str | None = None
    timestamp: str | _INT64 | float | None = None


class Source(msgspec.Struct, **_OPTIONS):
    """``MessageCreated`` v2 ``data.source``."""

    platform: str
    platform_id: str | None = None
    url: str | None = None


def _data_struct(event_type: str, version: int) -> type[msgspec.Struct]:
    # Attributes are named by payload column; ``rename`` maps them to the data names.
    required, optional = CATALOG[(event_type, version)]
    fields: list[tuple] = [(column, _CHECK_TYPES[check]) for _, check, column in required]
    fields += [(column, _CHECK_TYPES[check] | None, None) for _, check, column in optional]
    if (event_type, version) == ("MessageCreated", 2):
        fields.insert(0, ("source", Source))
    return msgspec.defstruct(
        f"{event_type}V{version}Data",
        fields,
        rename={column: name for name, _, column in required + optional},
        **_OPTIONS,
    )


def _envelope_struct(event_type: str, version: int) -> type[msgspec.Struct]:
    schema_version = ("schema_version", Literal[version]) + ((1,) if version == 1 else ())
    return msgspec.defstruct(
        f"{event_type}V{version}",
        [
            ("event_id", _NON_EMPTY),
            ("aggregate_type", Literal[AGGREGATE_OF[event_type]]),
            ("aggregate_id", _NON_EMPTY),
            ("version", _POSITIVE),
            ("recorded_at", str),
            ("data", _data_struct(event_type, version)),
            schema_version,
            ("metadata", Metadata, msgspec.field(default_factory=Metadata)),
        ],
        tag_field="event_type",
        tag=event_type,
        kw_only=True,
        **_OPTIONS,
    )


# struct -> (event_type, schema_version); one struct per catalog entry.
KEYS: dict[type[msgspec.Struct], tuple[str, int]] = {
    _envelope_struct(*key): key for key in sorted(CATALOG, key=lambda key: -key[1])
}


def _decoders() -> list[msgspec.json.Decoder]:
    # A tagged union holds one struct per tag, so decoder r has version r (newest first)
    # of each event type that has one, and the newest of the others: every decoder is a
    # union of all event types, since msgspec requires the tag only in a union.
    by_type: dict[str, list[type]] = {}
    for struct, (event_type, _) in KEYS.items():
        by_type.setdefault(event_type, []).append(struct)
    ranks = max(map(len, by_type.values()))
    return [
        msgspec.json.Decoder(Union[tuple(s[min(r, len(s) - 1)] for s in by_type.values())])  # noqa: UP007
        for r in range(ranks)
    ]


_FIRST, *_OTHERS = [decoder.decode for decoder in _decoders()]


def decode_event(line: bytes) -> msgspec.Struct:
    """The typed event of ``line``, or raise ``DECODE_ERRORS`` (see the module docstring)."""
    try:
        return _FIRST(line)
    except DECODE_ERRORS:
        for decode in _OTHERS:
            try:
                return decode(line)
            except DECODE_ERRORS:
                pass
        raise


def payload_columns(struct: type[msgspec.Struct], datas: list) -> dict[str, list]:
    """The payload columns that ``type_payload`` fills for events of ``struct``, from
    their decoded ``data`` (payload times in epoch milliseconds); the others are null."""
    event_type, version = KEYS[struct]
    required, optional = CATALOG[(event_type, version)]
    columns = {column: list(map(attrgetter(column), datas)) for _, _, column in required + optional}
    if event_type != "MessageCreated":
        return columns
    if version == 1:
        # the v1 upcast, as in catalog._message_created
        columns["created_at"] = [round(ts * 1000) for ts in columns["created_at"]]
        columns["content_cid"] = [cid_of(body.encode()) for body in columns["body_inline"]]
        columns["kind"] = [0] * len(datas)
        return columns
    sources = list(map(attrgetter("source"), datas))
    for name in ("platform", "platform_id", "url"):
        columns[name] = list(map(attrgetter(name), sources))
    return columns
