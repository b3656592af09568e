"""Parse one decompressed event file into typed rows and quarantine rows.

One parse per line. The fast path decodes a line straight into typed structs
(``decode.py``, msgspec) and builds the columns of all such lines at once; a line
it cannot take (a fault, an unknown event type, an unexpected field) goes through
the exact per-line rules: orjson parse, envelope check, payload typing with the v1
upcast (``envelope.py``, ``catalog.py``). Both give the same rows and reasons. The
result holds every envelope-valid line (what ``raw_events`` keeps) with its typed
payload and, where the catalog refuses the payload, the reason (what the ``events``
stage quarantines). Pure: bytes in, frames out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter

import orjson
import polars as pl
import pyarrow as pa

from pipelines.ingest.catalog import (
    AGGREGATE_OF,
    EPOCH_MS,
    PAYLOAD_COLUMNS,
    PAYLOAD_SCHEMA,
    TIME,
    PayloadError,
    type_payload,
)
from pipelines.ingest.decode import DECODE_ERRORS, KEYS, decode_event, payload_columns
from pipelines.ingest.envelope import (
    MAX_LINE_BYTES,
    envelope_error,
    envelope_fields,
    recorded_at_error,
    split_lines,
    utc_text,
)

RAW_TEXT_LIMIT = 1 << 16

# What raw_events keeps of a line: its number, its envelope and the line itself.
LINE_SCHEMA = pl.Schema(
    {
        "line_number": pl.Int64(),
        "event_id": pl.String(),
        "event_type": pl.String(),
        "schema_version": pl.Int64(),
        "aggregate_type": pl.String(),
        "aggregate_id": pl.String(),
        "version": pl.Int64(),
        "recorded_at": pl.Datetime("us", "UTC"),
        "line": pl.String(),
    }
)
# Columns of ParsedFile.rows, in order: the line, metadata fields, typed payload.
ROW_SCHEMA = pl.Schema(
    {
        **LINE_SCHEMA,
        "actor": pl.String(),
        "source": pl.String(),
        "known_type": pl.Boolean(),
        "payload_error": pl.String(),
        **PAYLOAD_SCHEMA,
    }
)
_NO_PAYLOAD = (None,) * len(PAYLOAD_COLUMNS)


@dataclass
class ParsedFile:
    """The lines of one file, sorted out.

    ``rows`` are the envelope-valid lines; those with a ``payload_error`` are also in
    ``quarantine``, whose entries are ``(line_number, stage, event_id, raw_text, reason)``
    with stage "envelope" or "payload". Invariant:
    ``lines == rows.height + envelope rejects + blank + pending``.
    """

    lines: int
    blank: int
    pending: int
    rows: pl.DataFrame
    quarantine: list[tuple[int, str, str | None, str, str]]

    @property
    def envelope_rejects(self) -> int:
        return sum(1 for entry in self.quarantine if entry[1] == "envelope")


def raw_text(line: bytes) -> str:
    """A line as quarantine keeps it: decoded with replacement, at most 64 KiB."""
    return line[:RAW_TEXT_LIMIT].decode("utf-8", errors="replace")


def parse_event_file(content: bytes, fast: bool = True) -> ParsedFile:
    """Sort every line of a decompressed event file into rows, quarantine, blank or pending.

    With ``fast=False`` every line goes through the per-line rules; the result is the same.
    """
    lines, terminated = split_lines(content)
    stripped = (
        [line[:-1] if line[-1:] == b"\r" else line for line in lines] if b"\r" in content else lines
    )
    groups, slow = _decode(stripped) if fast else ({}, range(1, len(lines) + 1))
    columns: dict[str, list] = {name: [] for name in ROW_SCHEMA}
    for struct, group in groups.items():
        _add_group(columns, struct, *group)
    rows, quarantine, blank, pending = _parse_lines(stripped, slow, terminated)
    if rows:
        for column, values in zip(columns.values(), zip(*rows, strict=True), strict=True):
            column.extend(values)
    frame, bad_times = _frame(columns, in_order=len(groups) + bool(rows) <= 1)
    bad_lines = {number for number, _ in bad_times}
    quarantine = [entry for entry in quarantine if entry[0] not in bad_lines]
    for number, value in bad_times:
        # quoted as the per-line rules quote it: without its CR when utc_text fails
        # (envelope_error), with it when only the parse of the time fails
        line = lines[number - 1] if utc_text(value) else stripped[number - 1]
        quarantine.append((number, "envelope", None, raw_text(line), recorded_at_error(value)))
    quarantine.sort()
    return ParsedFile(len(lines), blank, pending, frame, quarantine)


def _decode(lines: list[bytes]) -> tuple[dict[type, tuple[list, list, list]], list[int]]:
    """The decoded events of ``lines`` by struct, as ``(line numbers, events, lines)``,
    and the numbers of the lines left to the per-line rules."""
    groups: dict[type, tuple[list, list, list]] = {}
    slow = []
    for number, line in enumerate(lines, 1):
        if len(line) <= MAX_LINE_BYTES:
            try:
                event = decode_event(line)
            except DECODE_ERRORS:
                pass
            else:
                group = groups.get(type(event))
                if group is None:
                    group = groups[type(event)] = ([], [], [])
                group[0].append(number)
                group[1].append(event)
                group[2].append(line)
                continue
        slow.append(number)
    return groups, slow


def _add_group(columns: dict[str, list], struct: type, numbers: list, events: list, lines: list):
    """Extend ``columns`` (ROW_SCHEMA; recorded_at as text, payload times in epoch ms) with
    the rows of decoded events of one struct."""
    n = len(numbers)
    event_type, schema_version = KEYS[struct]
    metadata = list(map(_METADATA, events))
    group = {
        "line_number": numbers,
        "event_id": map(_EVENT_ID, events),
        "event_type": [event_type] * n,
        "schema_version": [schema_version] * n,
        "aggregate_type": [AGGREGATE_OF[event_type]] * n,
        "aggregate_id": map(_AGGREGATE_ID, events),
        "version": map(_VERSION, events),
        "recorded_at": map(_RECORDED_AT, events),
        "line": lines,
        "actor": map(_ACTOR, metadata),
        "source": map(_SOURCE, metadata),
        "known_type": [True] * n,
        **payload_columns(struct, list(map(_DATA, events))),
    }
    nulls = [None] * n
    for name, column in columns.items():
        column.extend(group.get(name, nulls))


_EVENT_ID, _AGGREGATE_ID, _VERSION, _RECORDED_AT, _DATA, _METADATA, _ACTOR, _SOURCE = map(
    attrgetter,
    ("event_id", "aggregate_id", "version", "recorded_at", "data", "metadata", "actor", "source"),
)


def _parse_lines(
    lines: list[bytes], numbers: Iterable[int], terminated: bool
) -> tuple[list[tuple], list[tuple[int, str, str | None, str, str]], int, int]:
    """The per-line rules for lines ``numbers`` (CR stripped): their rows in ROW_SCHEMA
    order (recorded_at as text, payload times in epoch ms), their quarantine entries
    and the blank and pending counts."""
    last = len(lines)
    blank = pending = 0
    quarantine: list[tuple[int, str, str | None, str, str]] = []
    rows: list[tuple] = []
    loads, JSONDecodeError = orjson.loads, orjson.JSONDecodeError
    for number in numbers:
        line = lines[number - 1]
        if not line.strip(b" \t"):
            blank += 1
            continue
        if len(line) > MAX_LINE_BYTES:
            reason = f"line is longer than 1 MiB ({len(line)} bytes)"
            quarantine.append((number, "envelope", None, raw_text(line), reason))
            continue
        try:
            obj = loads(line)
        except JSONDecodeError as error:
            if number == last and not terminated:
                pending += 1
            else:
                quarantine.append((number, "envelope", None, raw_text(line), f"not JSON: {error}"))
            continue
        envelope = envelope_fields(obj)
        if envelope is None:
            quarantine.append((number, "envelope", None, raw_text(line), envelope_error(obj)))
            continue
        event_id, event_type, schema_version, agg_type, agg_id, version, recorded_at, data, meta = (
            envelope
        )
        try:
            payload = type_payload(event_type, schema_version, data)
            payload_error = None
        except PayloadError as error:
            payload, payload_error = None, str(error)
            quarantine.append((number, "payload", event_id, raw_text(line), payload_error))
        rows.append(
            (
                number,
                event_id,
                event_type,
                schema_version,
                agg_type,
                agg_id,
                version,
                recorded_at,
                line,
                actor if meta is not None and type(actor := meta.get("actor")) is str else None,
                source if meta is not None and type(source := meta.get("source")) is str else None,
                payload is not None,
                payload_error,
                *(payload or _NO_PAYLOAD),
            )
        )
    return rows, quarantine, blank, pending


def _frame(columns: dict[str, list], in_order: bool) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """The rows of ``columns`` typed as ROW_SCHEMA, in line order (sorted unless
    ``in_order``), and the ``(line_number, recorded_at)`` of the rows whose recorded_at
    lacks the shape of ``_ISO_UTC`` or does not parse, which leave the frame."""
    frame = pl.DataFrame([_series(name, values) for name, values in columns.items()])
    text = pl.col("recorded_at")
    utc = text.str.contains(_ISO_UTC)
    parsed = (
        text.str.replace(r"Z$", "+00:00")
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="us")
        .dt.convert_time_zone("UTC")
    )
    lazy = frame.lazy() if in_order else frame.lazy().sort("line_number")
    frame = lazy.with_columns(
        pl.col(_TIMES).cast(EPOCH_MS).cast(TIME), pl.when(utc).then(parsed).alias("recorded_at")
    ).collect()
    if not frame["recorded_at"].null_count():
        return frame, []
    texts = dict(zip(columns["line_number"], columns["recorded_at"], strict=True))
    bad = frame.filter(pl.col("recorded_at").is_null())["line_number"].to_list()
    return frame.filter(pl.col("recorded_at").is_not_null()), [(n, texts[n]) for n in bad]


# The shape of an ISO-8601 UTC time. The format below alone lets through what ISO-8601
# does not: a year of two or three digits or with a sign, fields without their leading
# zero, a space before the date or the offset. ASCII digits: ``\d`` is any Unicode digit.
_ISO_UTC = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|\+00:00)$"
_TIMES = [name for name, dtype in PAYLOAD_SCHEMA.items() if dtype == TIME]
# Payload times are built as epoch milliseconds, then cast.
_BUILD_TYPES = {name: pl.Int64() if dtype == TIME else dtype for name, dtype in ROW_SCHEMA.items()}
_BUILD_TYPES["recorded_at"] = pl.String()
_BUILD_TYPES["line"] = pl.Binary()


def _series(name: str, values: list) -> pl.Series:
    dtype = _BUILD_TYPES[name]
    if isinstance(dtype, pl.List):
        # pyarrow builds nested columns (tags, attachments) from Python lists far faster.
        return pl.Series(name, pa.array(values, type=_ARROW_TYPES[dtype]))
    series = pl.Series(name, values, dtype)
    # the line's bytes, as read: valid UTF-8 (the parse checked), validated by the cast
    return series.cast(pl.String()) if name == "line" else series


_ARROW_TYPES = {
    pl.List(pl.String()): pa.large_list(pa.large_string()),
    pl.List(pl.List(pl.String())): pa.large_list(pa.large_list(pa.large_string())),
}
