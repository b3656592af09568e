"""The envelope rules (spec decision 4) and the splitting of a file into lines.

``envelope_fields`` is the fast check run on every line; ``envelope_error``
explains, for a line that fails it, what is wrong (the quarantine reason).
``recorded_at`` is only pre-checked here (a string ending in Z or +00:00); it is
parsed for all rows at once in ``parse.py``. Pure functions: no I/O, no Dagster.
"""

from __future__ import annotations

from pipelines.ingest.catalog import AGGREGATE_OF

MAX_LINE_BYTES = 1 << 20
AGGREGATE_TYPES = frozenset({"message", "account", "room", "read_marker"})
INT64_MAX = (1 << 63) - 1
_BOM = b"\xef\xbb\xbf"
_ABSENT = object()

Envelope = tuple[str, str, int, str, str, int, str, dict, object]


def utc_text(value: object) -> bool:
    """The pre-check of recorded_at: a string with a "T", ending in Z or +00:00."""
    return type(value) is str and "T" in value and (value[-1] == "Z" or value.endswith("+00:00"))


def envelope_fields(obj: object) -> Envelope | None:
    """``(event_id, event_type, schema_version, aggregate_type, aggregate_id, version,
    recorded_at, data, metadata)`` of a valid envelope, else None.

    ``metadata`` is None when absent.
    """
    if type(obj) is not dict:
        return None
    get = obj.get
    event_id = get("event_id")
    event_type = get("event_type")
    aggregate_type = get("aggregate_type")
    aggregate_id = get("aggregate_id")
    version = get("version")
    schema_version = get("schema_version", 1)
    recorded_at = get("recorded_at")
    data = get("data")
    metadata = get("metadata", _ABSENT)
    if (
        type(event_id) is str
        and event_id
        and type(event_type) is str
        and event_type
        and type(aggregate_type) is str
        and aggregate_type in AGGREGATE_TYPES
        and type(aggregate_id) is str
        and aggregate_id
        and type(version) is int
        and 0 < version <= INT64_MAX
        and type(schema_version) is int
        and 0 < schema_version <= INT64_MAX
        and utc_text(recorded_at)
        and type(data) is dict
        and (metadata is _ABSENT or type(metadata) is dict)
        and AGGREGATE_OF.get(event_type, aggregate_type) == aggregate_type
    ):
        return (
            event_id,
            event_type,
            schema_version,
            aggregate_type,
            aggregate_id,
            version,
            recorded_at,
            data,
            None if metadata is _ABSENT else metadata,
        )
    return None


def _string_error(obj: dict, name: str) -> str | None:
    if name not in obj:
        return f"envelope field {name!r} is missing"
    value = obj[name]
    if type(value) is not str:
        return f"envelope field {name!r} is not a string: {value!r:.40}"
    if not value:
        return f"envelope field {name!r} is empty"
    return None


def _integer_error(obj: dict, name: str, default: object = _ABSENT) -> str | None:
    value = obj.get(name, default)
    if value is _ABSENT:
        return f"envelope field {name!r} is missing"
    if type(value) is not int:
        return f"envelope field {name!r} is not an integer: {value!r:.40}"
    if not 0 < value <= INT64_MAX:
        return f"envelope field {name!r} must be an integer >= 1, got {value}"
    return None


def envelope_error(obj: object) -> str:
    """Why ``obj`` is not a valid envelope (call only when ``envelope_fields`` said so)."""
    if type(obj) is not dict:
        return f"line is a JSON {type(obj).__name__}, not an object"
    for name in ("event_id", "event_type", "aggregate_type", "aggregate_id"):
        if error := _string_error(obj, name):
            return error
    aggregate_type, event_type = obj["aggregate_type"], obj["event_type"]
    if aggregate_type not in AGGREGATE_TYPES:
        return f"aggregate_type {aggregate_type!r:.40} is not message, account, room or read_marker"
    if AGGREGATE_OF.get(event_type, aggregate_type) != aggregate_type:
        return f"aggregate_type {aggregate_type!r} does not match {event_type}"
    if error := _integer_error(obj, "version") or _integer_error(obj, "schema_version", 1):
        return error
    if "recorded_at" not in obj:
        return "envelope field 'recorded_at' is missing"
    if not utc_text(obj["recorded_at"]):
        return recorded_at_error(obj["recorded_at"])
    if type(obj.get("data")) is not dict:
        if "data" not in obj:
            return "envelope field 'data' is missing"
        return f"envelope field 'data' is not an object: {obj['data']!r:.40}"
    return f"envelope field 'metadata' is not an object: {obj.get('metadata')!r:.40}"


def recorded_at_error(value: object) -> str:
    return f"recorded_at is not an ISO-8601 UTC time (ending in Z or +00:00): {value!r:.40}"


def split_lines(content: bytes) -> tuple[list[bytes], bool]:
    """Split decompressed file bytes into lines, stripping a leading BOM.

    Returns the lines (CR not yet stripped) and whether the last one ended with a newline.
    """
    if content.startswith(_BOM):
        content = content[len(_BOM) :]
    if not content:
        return [], True
    lines = content.split(b"\n")
    terminated = lines[-1] == b""
    if terminated:
        lines.pop()
    return lines, terminated
