"""Parse one decompressed event file into typed rows and quarantine rows.

One pass per line: orjson parse, envelope check, payload typing (with the v1
upcast). The result holds every envelope-valid line (what ``raw_events`` keeps)
with its typed payload and, where the catalog refuses the payload, the reason
(what the ``events`` stage quarantines). Pure: bytes in, frames out.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import polars as pl
import pyarrow as pa

from pipelines.ingest.catalog import (
    EPOCH_MS,
    PAYLOAD_COLUMNS,
    PAYLOAD_SCHEMA,
    TIME,
    PayloadError,
    type_payload,
)
from pipelines.ingest.envelope import (
    MAX_LINE_BYTES,
    envelope_error,
    envelope_fields,
    recorded_at_error,
    split_lines,
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


def parse_event_file(content: bytes) -> ParsedFile:
    """Sort every line of a decompressed event file into rows, quarantine, blank or pending."""
    lines, terminated = split_lines(content)
    last = len(lines)
    blank = pending = 0
    quarantine: list[tuple[int, str, str | None, str, str]] = []
    rows: list[tuple] = []
    loads, JSONDecodeError = orjson.loads, orjson.JSONDecodeError
    for number, line in enumerate(lines, 1):
        if line[-1:] == b"\r":
            line = line[:-1]
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
    frame = _rows_frame(rows)
    frame, bad_times = _parse_recorded_at(frame)
    bad_lines = {number for number, _ in bad_times}
    quarantine = [entry for entry in quarantine if entry[0] not in bad_lines]
    for number, value in bad_times:
        line = lines[number - 1]
        quarantine.append((number, "envelope", None, raw_text(line), recorded_at_error(value)))
    quarantine.sort()
    return ParsedFile(last, blank, pending, frame, quarantine)


def _rows_frame(rows: list[tuple]) -> pl.DataFrame:
    # pyarrow builds nested columns (tags, attachments) from Python lists far faster.
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in ROW_SCHEMA]
    arrays = {}
    for (name, dtype), values in zip(ROW_SCHEMA.items(), columns, strict=True):
        if name == "line":
            # the line's bytes, as read: valid UTF-8 (orjson parsed them), validated by the cast
            arrays[name] = pa.array(values, type=pa.large_binary()).cast(pa.large_string())
            continue
        if name == "recorded_at":
            dtype = pl.String()
        elif dtype == TIME:
            dtype = pl.Int64()  # epoch milliseconds, cast below
        arrays[name] = pa.array(values, type=_ARROW_TYPES[dtype])
    frame = pl.from_arrow(pa.table(arrays))
    times = [name for name, dtype in PAYLOAD_SCHEMA.items() if dtype == TIME]
    return frame.with_columns(pl.col(times).cast(EPOCH_MS).cast(TIME))


_ARROW_TYPES = {
    pl.String(): pa.large_string(),
    pl.Int64(): pa.int64(),
    pl.Boolean(): pa.bool_(),
    pl.List(pl.String()): pa.large_list(pa.large_string()),
    pl.List(pl.List(pl.String())): pa.large_list(pa.large_list(pa.large_string())),
}


def _parse_recorded_at(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """Parse recorded_at for all rows at once; rows whose time does not parse leave."""
    parsed = frame.with_columns(
        pl.col("recorded_at")
        .str.replace(r"Z$", "+00:00")
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="us")
        .dt.convert_time_zone("UTC")
        .alias("_recorded_at")
    )
    bad = parsed.filter(pl.col("_recorded_at").is_null())
    good = parsed.filter(pl.col("_recorded_at").is_not_null())
    good = good.with_columns(recorded_at=pl.col("_recorded_at")).drop("_recorded_at")
    return good, list(zip(bad["line_number"], bad["recorded_at"], strict=True))
