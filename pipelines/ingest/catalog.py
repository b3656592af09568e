"""The event catalog: payload rules per (event_type, schema_version) and the v1 upcast.

``type_payload`` turns the ``data`` of an envelope-valid event into the values of
the typed payload columns of the ``events`` table, or into a quarantine reason.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from pipelines.ingest.cid import cid_of

MESSAGE_EVENTS = (
    "MessageCreated",
    "MessageEdited",
    "MessageDeleted",
    "ReactionAdded",
    "ReactionRemoved",
)
AGGREGATE_OF = {
    **dict.fromkeys(MESSAGE_EVENTS, "message"),
    "AccountCreated": "account",
    "AccountUpdated": "account",
    "RoomCreated": "room",
    "RoomUpdated": "room",
    "MemberJoined": "room",
    "MemberLeft": "room",
    "ReadMarkerMoved": "read_marker",
}
ROOM_TYPES = frozenset({"dm", "group", "channel"})

# Delta stores timestamps in microseconds; payload times (epoch ms) are widened to them.
TIME = pl.Datetime("us", "UTC")
EPOCH_MS = pl.Datetime("ms", "UTC")
# Typed payload columns of the events table, after the v1 -> v2 upcast.
PAYLOAD_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.String(),
    "room_id": pl.String(),
    "content_cid": pl.String(),
    "body_inline": pl.String(),
    "kind": pl.Int64(),
    "platform": pl.String(),
    "platform_id": pl.String(),
    "url": pl.String(),
    "thread_id": pl.String(),
    "reply_to": pl.String(),
    "author_did": pl.String(),
    "tags": pl.List(pl.List(pl.String())),
    "attachments": pl.List(pl.String()),
    "created_at": TIME,
    "imported_at": TIME,
    "edited_at": TIME,
    "deleted_at": TIME,
    "at": TIME,
    "read_up_to": TIME,
    "reason": pl.String(),
    "emoji": pl.String(),
    "display_name": pl.String(),
    "handle": pl.String(),
    "did": pl.String(),
    "name": pl.String(),
    "room_type": pl.String(),
    "server_id": pl.String(),
    "server_name": pl.String(),
    "topic": pl.String(),
}
PAYLOAD_COLUMNS = tuple(PAYLOAD_SCHEMA)
_SLOT = {name: i for i, name in enumerate(PAYLOAD_COLUMNS)}


class PayloadError(ValueError):
    """The payload breaks the catalog; the message is the quarantine reason."""


def _is_str(value: object) -> bool:
    return type(value) is str


def _is_int(value: object) -> bool:
    return type(value) is int and -(1 << 63) <= value < (1 << 63)


def _is_number(value: object) -> bool:
    return type(value) is float or _is_int(value)


# Payload times: epoch milliseconds from 0001-01-01 to 9999-12-31 (what a datetime
# holds); a larger value would overflow the microsecond columns and stop the run.
MIN_TIME_MS = -62_135_596_800_000
MAX_TIME_MS = 253_402_300_799_999
# v1 ``ts`` in seconds, kept where ``round(ts * 1000)`` stays inside that range
MIN_TIME_S = (MIN_TIME_MS + 1) / 1000
MAX_TIME_S = (MAX_TIME_MS - 1) / 1000


def _is_time(value: object) -> bool:
    return type(value) is int and MIN_TIME_MS <= value <= MAX_TIME_MS


def _is_seconds(value: object) -> bool:
    return (type(value) is float or type(value) is int) and MIN_TIME_S <= value <= MAX_TIME_S


def _is_str_list(value: object) -> bool:
    return type(value) is list and all(type(item) is str for item in value)


def _is_tags(value: object) -> bool:
    return type(value) is list and all(_is_str_list(tag) for tag in value)


def _is_room_type(value: object) -> bool:
    return type(value) is str and value in ROOM_TYPES


_CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "str": (_is_str, "a string"),
    "int": (_is_int, "an integer"),
    "number": (_is_number, "a number"),
    "time": (_is_time, "an integer"),
    "seconds": (_is_seconds, "a number"),
    "str_list": (_is_str_list, "a list of strings"),
    "tags": (_is_tags, "a list of lists of strings"),
    "room_type": (_is_room_type, "one of dm, group, channel"),
}

# (event_type, schema_version) -> (required fields, optional fields); a field maps to
# its check and to the payload column it fills (data name -> column name).
Field = tuple[str, str, str]  # (data name, check, column)


def _f(name: str, check: str, column: str | None = None) -> Field:
    return (name, check, column or name)


CATALOG: dict[tuple[str, int], tuple[tuple[Field, ...], tuple[Field, ...]]] = {
    ("MessageCreated", 2): (
        (
            _f("account_id", "str"),
            _f("content_cid", "str"),
            _f("kind", "int"),
            _f("created_at", "time"),
        ),
        (
            _f("thread_id", "str"),
            _f("reply_to", "str"),
            _f("room_id", "str"),
            _f("author_did", "str"),
            _f("imported_at", "time"),
            _f("tags", "tags"),
            _f("attachments", "str_list"),
        ),
    ),
    ("MessageCreated", 1): (
        (
            _f("author", "str", "account_id"),
            _f("text", "str", "body_inline"),
            _f("channel", "str", "room_id"),
            _f("ts", "seconds", "created_at"),
            _f("platform", "str"),
        ),
        (_f("thread", "str", "thread_id"), _f("parent", "str", "reply_to")),
    ),
    ("MessageEdited", 1): ((_f("content_cid", "str"), _f("edited_at", "time")), ()),
    ("MessageDeleted", 1): ((_f("deleted_at", "time"),), (_f("reason", "str"),)),
    ("ReactionAdded", 1): ((_f("account_id", "str"), _f("emoji", "str"), _f("at", "time")), ()),
    ("ReactionRemoved", 1): ((_f("account_id", "str"), _f("emoji", "str"), _f("at", "time")), ()),
    ("AccountCreated", 1): (
        (_f("display_name", "str"), _f("platform", "str"), _f("created_at", "time")),
        (_f("handle", "str"), _f("did", "str")),
    ),
    ("AccountUpdated", 1): ((), (_f("display_name", "str"), _f("handle", "str"), _f("did", "str"))),
    ("RoomCreated", 1): (
        (
            _f("name", "str"),
            _f("type", "room_type", "room_type"),
            _f("platform", "str"),
            _f("created_at", "time"),
        ),
        (_f("server_id", "str"), _f("server_name", "str"), _f("topic", "str")),
    ),
    ("RoomUpdated", 1): ((), (_f("name", "str"), _f("topic", "str"))),
    ("MemberJoined", 1): ((_f("account_id", "str"), _f("at", "time")), ()),
    ("MemberLeft", 1): ((_f("account_id", "str"), _f("at", "time")), ()),
    ("ReadMarkerMoved", 1): (
        (_f("account_id", "str"), _f("room_id", "str"), _f("read_up_to", "time")),
        (),
    ),
}
KNOWN_TYPES = frozenset(AGGREGATE_OF)


def _compile(fields: tuple[Field, ...], required: bool) -> tuple:
    # (name, slot, plain type or None, full check, check name, required): the plain type
    # decides most fields with one `type(v) is t`; the full check handles the rest.
    plain = {"str": str, "int": int}
    return tuple(
        (name, _SLOT[column], plain.get(check), _CHECKS[check][0], check, required)
        for name, check, column in fields
    )


# Per (event_type, schema_version): how to read each field of the payload.
_COMPILED = {key: _compile(req, True) + _compile(opt, False) for key, (req, opt) in CATALOG.items()}


_RANGES = {
    "time": (_is_int, "epoch milliseconds"),
    "seconds": (_is_number, "epoch seconds"),
}


def _field_error(name: str, value: object, check: str, required: bool) -> str:
    kind = "required" if required else "optional"
    if check in _RANGES and _RANGES[check][0](value):
        unit = _RANGES[check][1]
        return f"{kind} data field {name!r} is out of range ({unit} of years 1-9999): {value!r:.40}"
    return f"{kind} data field {name!r} is not {_CHECKS[check][1]}: {value!r:.40}"


def type_payload(event_type: str, schema_version: int, data: dict) -> list | None:
    """Typed payload values in PAYLOAD_COLUMNS order, None for an unknown event type.

    Raises PayloadError when a known type has an unsupported schema version or
    a required field is absent or mistyped (spec decisions 5 and 6). For optional
    fields ``null`` means absent; a present optional field is type-checked too.
    """
    fields = _COMPILED.get((event_type, schema_version))
    if fields is None:
        if event_type not in KNOWN_TYPES:
            return None
        raise PayloadError(f"unsupported schema version {schema_version} for {event_type}")
    values = list(_EMPTY)
    get = data.get
    for name, slot, plain, check, check_name, required in fields:
        value = get(name)
        if value is None:
            if required:
                raise PayloadError(f"required data field {name!r} is missing")
            continue
        if type(value) is not plain and not check(value) or plain is int and not check(value):
            raise PayloadError(_field_error(name, value, check_name, required))
        values[slot] = value
    if event_type == "MessageCreated":
        _message_created(schema_version, data, values)
    return values


_EMPTY = (None,) * len(PAYLOAD_COLUMNS)


def _message_created(schema_version: int, data: dict, values: list) -> None:
    if schema_version == 1:
        # Upcast: ts is seconds (any number); the inline text is the body.
        values[_SLOT["created_at"]] = round(values[_SLOT["created_at"]] * 1000)
        values[_SLOT["content_cid"]] = cid_of(values[_SLOT["body_inline"]].encode())
        values[_SLOT["kind"]] = 0
        return
    source = data.get("source")
    if type(source) is not dict:
        raise PayloadError("required data field 'source' is missing or not an object")
    platform = source.get("platform")
    if type(platform) is not str:
        raise PayloadError(
            f"required data field 'source.platform' is not a string: {platform!r:.40}"
        )
    values[_SLOT["platform"]] = platform
    for name in ("platform_id", "url"):
        value = source.get(name)
        if value is not None:
            if type(value) is not str:
                raise PayloadError(_field_error(f"source.{name}", value, "str", False))
            values[_SLOT[name]] = value
