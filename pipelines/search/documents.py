"""What the search index holds: one document per live message with a body.

A document is a message that is not deleted and has a non-blank body (after
edits). Its ``cid`` names the body: the message's ``content_cid`` when the body
came from a verified content file, else (legacy inline text) the CID of the
text's UTF-8 bytes. ``key`` is the body's 63-bit vector-index key.

``search/documents`` is a Delta table (partitioned like ``messages`` by
``created_week``) of the documents the index holds, without bodies: the search
API filters and joins vector hits with it, and each update diffs the messages of
the changed partitions against it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import polars as pl
from deltalake.exceptions import DeltaError

from pipelines.ingest.cid import cid_of
from pipelines.lake.delta import Lake
from pipelines.model.views import MESSAGES_SCHEMA

MESSAGES = "messages"
SEARCH_DIR = "search"
DOCUMENTS = f"{SEARCH_DIR}/documents"
DOCUMENTS_SCHEMA = pl.Schema(
    {
        "message_id": pl.String(),
        "cid": pl.String(),
        "key": pl.Int64(),
        "platform": pl.String(),
        "room_id": pl.String(),
        "account_id": pl.String(),
        "thread_id": pl.String(),
        "created_at": MESSAGES_SCHEMA["created_at"],
        "created_week": pl.Date(),
    }
)
# Columns that, when they change, make a document be replaced in the index.
INDEXED = ["cid", "platform", "room_id", "account_id", "thread_id", "created_at"]
MESSAGE_COLUMNS = [
    "message_id",
    "account_id",
    "room_id",
    "platform",
    "thread_id",
    "created_at",
    "content_cid",
    "body",
    "body_status",
    "deleted",
    "created_week",
]


def vector_key(cid: str) -> int:
    """A body's vector-index key: 63 bits of blake2b(cid), stable across runs and versions."""
    digest = hashlib.blake2b(cid.encode("ascii"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def vector_keys(cids: pl.Series) -> pl.Series:
    return pl.Series("key", [vector_key(cid) for cid in cids.to_list()], dtype=pl.Int64)


def live_documents(messages: pl.DataFrame) -> pl.DataFrame:
    """Documents (DOCUMENTS_SCHEMA plus ``body``) of the live messages with a body, by id."""
    live = messages.filter(
        ~pl.col("deleted").fill_null(False)
        & pl.col("body").is_not_null()
        & (pl.col("body").str.strip_chars() != "")
    )
    from_file = (pl.col("body_status") == "ok") & pl.col("content_cid").is_not_null()
    inline = live.filter(~from_file)
    own_cids = pl.Series([cid_of(text.encode("utf-8")) for text in inline["body"].to_list()])
    live = pl.concat(
        [
            live.filter(from_file).with_columns(cid=pl.col("content_cid")),
            inline.with_columns(cid=own_cids.cast(pl.String)),
        ]
    )
    return (
        live.with_columns(key=vector_keys(live["cid"]))
        .select([*DOCUMENTS_SCHEMA.names(), "body"])
        .cast({**DOCUMENTS_SCHEMA, "body": pl.String()})
        .sort("message_id")
    )


def changed_weeks(lake: Lake, since: int | None, until: int | None) -> list[date] | None:
    """``created_week`` partitions of ``messages`` changed after version ``since`` up to
    version ``until`` (the version being indexed).

    None when that cannot be told (no previous build, a recreated table, a table in an
    earlier layout, or change-feed history that is gone): the caller then compares every
    partition.
    """
    if until is None:
        return []
    if since is None or until < since:
        return None
    if until == since:
        return []
    try:
        if lake.table(MESSAGES, version=since).metadata().partition_columns != ["created_week"]:
            return None
    except DeltaError:
        return None
    changes = lake.change_feed(MESSAGES, since, until, ["created_week"])
    if changes is None:
        return None
    return sorted(changes["created_week"].drop_nulls().unique().to_list())


@dataclass
class DocumentChanges:
    """The net change of the documents in some partitions (all when ``weeks`` is None)."""

    weeks: list[date] | None
    current: pl.DataFrame  # documents now, with body
    removed: pl.DataFrame  # documents held that are gone or changed (DOCUMENTS_SCHEMA)
    added: pl.DataFrame  # documents to (re)add, with body

    @property
    def stale_ids(self) -> list[str]:
        """Message ids whose indexed document must be deleted before ``added`` goes in."""
        ids = pl.concat([self.removed["message_id"], self.added["message_id"]])
        return ids.unique().sort().to_list()


def read_live_documents(
    lake: Lake, version: int | None, weeks: list[date] | None = None
) -> pl.DataFrame:
    """Live documents (with body) of ``messages`` at ``version``, of ``weeks`` if given."""
    frame = lake.scan(MESSAGES, MESSAGES_SCHEMA, version=version)
    if weeks is not None:
        frame = frame.filter(pl.col("created_week").is_in(weeks))
    return live_documents(frame.select(MESSAGE_COLUMNS).collect())


def document_changes(lake: Lake, version: int | None, weeks: list[date] | None) -> DocumentChanges:
    """Compare the live documents of ``weeks`` (every week if None) in ``messages`` at
    ``version`` with the documents held."""
    if weeks == []:
        empty = pl.DataFrame(schema={**DOCUMENTS_SCHEMA, "body": pl.String()})
        return DocumentChanges([], empty, empty.drop("body"), empty)
    where = None if weeks is None else pl.col("created_week").is_in(weeks)
    current = read_live_documents(lake, version, weeks)
    held = lake.read(DOCUMENTS, DOCUMENTS_SCHEMA, where=where)
    removed = held.join(
        current.select(["message_id", *INDEXED]), on=["message_id", *INDEXED], how="anti"
    )
    added = current.join(
        held.select(["message_id", *INDEXED]), on=["message_id", *INDEXED], how="anti"
    )
    return DocumentChanges(weeks, current, removed.sort("message_id"), added.sort("message_id"))


@dataclass(frozen=True)
class Filters:
    """Restrictions on results; None means any. ``since`` is inclusive, ``until`` exclusive;
    a date stands for midnight UTC, except that a date ``until`` includes that whole day."""

    platform: str | None = None
    room: str | None = None
    account: str | None = None
    since: datetime | date | None = None
    until: datetime | date | None = None

    def bounds_us(self) -> tuple[int | None, int | None]:
        """[lower, upper) of ``created_at`` in microseconds since the epoch."""
        return _micros(self.since, end_of_day=False), _micros(self.until, end_of_day=True)

    @property
    def empty(self) -> bool:
        return all(
            v is None for v in (self.platform, self.room, self.account, self.since, self.until)
        )


def _micros(value: datetime | date | None, end_of_day: bool) -> int | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        day = value + timedelta(days=1) if end_of_day else value
        value = datetime.combine(day, time(), tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
