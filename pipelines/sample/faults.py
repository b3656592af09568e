"""Bad inputs of the contract (docs/message-store.md, "Bad input"), each at a known place.

``plan`` runs after the clean events are laid out per day and before anything is
written: it inserts fault lines into the days' line lists (tagging their positions),
chooses the files that get CRLF endings, a BOM and an unterminated last line, the
days whose index.json is broken, and registers the bodies of its own messages.
``break_index`` spoils one index.json as it is written; ``break_content`` spoils
content files once they are written. Every fault has a name; the summary counts
them and gives their places (``StoreSummary.fault_places``).

Messages created here for content faults have fixed ids, so other tests can look
for them: ``msg_fault_tampered`` (body hash mismatch), ``msg_fault_symlink`` and
``msg_fault_outside`` (body file is a symbolic link: missing), ``msg_fault_latin1``
(body not valid UTF-8), ``msg_fault_orphan`` (edit at version 1, create at 2),
``msg_fault_twice`` (MessageCreated at versions 1 and 2). Lines meant to be
quarantined use aggregate ids starting with ``msg_fault_q_`` (or ``room_fault_q_``),
so none of them may show up in a projection.

Fault lines are recorded in the day of their directory, except the two re-delivered
duplicates, which keep the ``recorded_at`` of the event they repeat.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from pipelines.sample.generator import (
    DAY_MS,
    EMOJIS,
    HORIZON_MARGIN_MS,
    TOPICS,
    DayLines,
    FileStyle,
    Generator,
    Layout,
    Room,
    compose,
    ulid,
)

SOURCE = "fault-injector"
LONG_LINE_BYTES = (1 << 20) + 200_000  # above the 1 MiB line limit
LATIN1_BODY = "Crème brûlée for the café: recipe attached, très facile.\n".encode("latin-1")
OUTSIDE_TARGET = "/etc/hosts"  # a file outside any store
INDEX_FAULTS = (
    "index_wrong_lines",
    "index_file_absent",
    "index_file_not_listed",
    "index_wrong_sha256",
)
MISSING_FIELDS = (
    "event_id",
    "event_type",
    "aggregate_type",
    "aggregate_id",
    "version",
    "recorded_at",
    "data",
)
_NAN = -987_654_321  # placeholder replaced by the bare token NaN


@dataclass
class FaultPlan:
    """What ``plan`` decided; ``places`` holds the places known before writing."""

    style: FileStyle
    index_faults: dict[int, list[str]]
    content_targets: dict[str, str] = field(default_factory=dict)  # fault name -> cid
    places: dict[str, list[str]] = field(default_factory=dict)


class _Faults:
    """Builds fault lines for the days of one store; ``rng`` is the faults' own."""

    def __init__(self, generator: Generator, days: list[DayLines], rng: random.Random) -> None:
        self.g = generator
        self.clock = generator.clock
        self.days = days
        self.rng = rng
        self.pending: dict[int, list[tuple[int, bytes, str | None]]] = {}
        self.room = next(room for room in generator.rooms if room.members)
        self.serial = 0
        self.used: set[str] = set()  # event ids already copied or contradicted

    # -- building blocks

    def time(self, day: int) -> int:
        """A recording time inside ``day``."""
        return self.clock.start_ms + day * DAY_MS + self.rng.randrange(DAY_MS - HORIZON_MARGIN_MS)

    def event(
        self,
        event_type: str,
        aggregate_type: str,
        aggregate_id: str,
        version: int,
        data: dict,
        day: int,
        schema_version: int | None = 1,
    ) -> dict:
        """A well-formed envelope recorded in ``day``."""
        recorded = self.time(day)
        event: dict = {
            "event_id": ulid(recorded, self.rng.getrandbits(80)),
            "event_type": event_type,
            "schema_version": schema_version,
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "version": version,
            "recorded_at": self.clock.iso(recorded),
            "data": data,
            "metadata": {"actor": self.room.members[0].id, "source": SOURCE},
        }
        if schema_version is None:
            del event["schema_version"]
        return event

    def created(
        self, message_id: str, day: int, cid: str | None = None, room: Room | None = None
    ) -> dict:
        """A valid MessageCreated v2 (version 1) in ``day`` with body ``cid`` (fresh if None)."""
        room = room or self.room
        if cid is None:
            cid = self.g.content.register(compose(self.rng, room.topic).encode())
        at = self.time(day) - 1_000
        data = {
            "account_id": room.members[0].id,
            "content_cid": cid,
            "kind": 0,
            "created_at": at,
            "source": {"platform": room.platform},
            "room_id": room.id,
        }
        return self.event("MessageCreated", "message", message_id, 1, data, day, schema_version=2)

    def quarantine_id(self) -> str:
        self.serial += 1
        return f"msg_fault_q_{self.serial:02d}"

    def insert(self, day: int, line: bytes | dict, tag: str | None) -> None:
        """Queue ``line`` for a random position of ``day``, tagged with a fault name."""
        raw = line if isinstance(line, bytes) else orjson.dumps(line)
        position = self.rng.randint(0, len(self.days[day].lines))
        self.pending.setdefault(day, []).append((position, raw, tag))

    def any_day(self) -> int:
        return self.rng.randrange(len(self.days))

    def later_day(self, day: int) -> int:
        return self.rng.randint(min(day + 1, len(self.days) - 1), len(self.days) - 1)

    def find_line(self, event_type: str) -> tuple[int, bytes, dict] | None:
        """A clean line of ``event_type`` recorded before the last day: its day, bytes and
        parsed event; never the same event twice."""
        candidates = [d for d in range(len(self.days) - 1) if self.days[d].lines]
        for _ in range(2_000):
            if not candidates:
                return None
            day = self.rng.choice(candidates)
            raw = self.rng.choice(self.days[day].lines)
            event = orjson.loads(raw)
            if event["event_type"] == event_type and event["event_id"] not in self.used:
                self.used.add(event["event_id"])
                return day, raw, event
        return None

    # -- the faults

    def malformed_lines(self) -> None:
        """Lines that are not JSON objects or break an envelope rule (all quarantined)."""
        day = self.any_day
        self.insert(
            day(), b'{"event_id": "01K0000000000000000000000X", "event_type": "Messa', "not_json"
        )
        self.insert(day(), b"<html><body>502 Bad Gateway</body></html>", "not_json")
        d = day()
        nan = orjson.dumps(self.created(self.quarantine_id(), d) | {"version": _NAN})
        self.insert(d, nan.replace(str(_NAN).encode(), b"NaN"), "nan_literal")
        for raw in (b"[1, 2, 3]", b'"MessageCreated"', b"null"):
            self.insert(day(), raw, "not_object")
        for name in MISSING_FIELDS:
            d = day()
            event = self.created(self.quarantine_id(), d)
            del event[name]
            self.insert(d, event, "missing_envelope_field")
        mistyped = (
            ("version_string", "version", "3"),
            ("version_float", "version", 2.0),
            ("version_bool", "version", True),
            ("version_zero", "version", 0),
            ("schema_version_zero", "schema_version", 0),
            ("null_event_id", "event_id", None),
            ("empty_aggregate_id", "aggregate_id", ""),
            ("unknown_aggregate_type", "aggregate_type", "channel"),
            ("aggregate_type_mismatch", "aggregate_type", "room"),
            ("data_not_object", "data", ["not", "an", "object"]),
            ("metadata_not_object", "metadata", "telegram-bridge"),
        )
        for name, key, value in mistyped:
            d = day()
            event = self.created(self.quarantine_id(), d)
            event[key] = value
            self.insert(d, event, name)
        for suffix in ("", "+02:00"):
            d = day()
            event = self.created(self.quarantine_id(), d)
            event["recorded_at"] = event["recorded_at"].removesuffix("Z") + suffix
            self.insert(d, event, "recorded_at_not_utc")

    def bad_payloads(self) -> None:
        """Known types whose data or schema version the catalog refuses (quarantined)."""
        d = self.any_day()
        event = self.created(self.quarantine_id(), d)
        del event["data"]["content_cid"]
        self.insert(d, event, "data_missing_field")
        d = self.any_day()
        reaction = {"account_id": self.room.members[0].id, "at": self.time(d) - 500}
        self.insert(
            d,
            self.event("ReactionAdded", "message", self.quarantine_id(), 1, reaction, d),
            "data_missing_field",
        )
        d = self.any_day()
        event = self.created(self.quarantine_id(), d)
        event["data"]["created_at"] = event["recorded_at"]
        self.insert(d, event, "data_wrong_type")
        d = self.any_day()
        room = {
            "name": "forum room",
            "type": "forum",
            "platform": "discord",
            "created_at": self.time(d),
        }
        self.insert(
            d, self.event("RoomCreated", "room", f"room_fault_q_{d}", 1, room, d), "data_wrong_type"
        )
        d = self.any_day()
        edit = {
            "content_cid": self.g.content.register(b"edited with a future schema"),
            "edited_at": self.time(d),
        }
        event = self.event(
            "MessageEdited", "message", self.quarantine_id(), 2, edit, d, schema_version=5
        )
        self.insert(d, event, "unsupported_schema_version")

    def odd_text(self, layout: Layout) -> FileStyle:
        """Blank and whitespace-only lines, a CRLF file, a BOM, a long line, an open tail."""
        for raw, name in (
            (b"", "blank_line"),
            (b"   ", "whitespace_line"),
            (b" \t ", "whitespace_line"),
        ):
            self.insert(self.any_day(), raw, name)
        self.insert(self.any_day(), b"", "blank_line")
        d = self.any_day()
        event = self.created(self.quarantine_id(), d)
        words = " ".join(self.rng.choice(TOPICS).terms)
        event["data"]["note"] = (words * (LONG_LINE_BYTES // len(words) + 1))[:LONG_LINE_BYTES]
        self.insert(d, event, "long_line")
        last = len(self.days) - 1
        plain = [d for d in range(last) if not layout.compressed(d) and self.days[d].lines]
        packed = [d for d in range(last) if layout.compressed(d) and self.days[d].lines]
        anywhere = [d for d in range(last) if self.days[d].lines] or [0]
        crlf_day = self.rng.choice(plain or anywhere)
        bom_day = self.rng.choice([d for d in (packed or anywhere) if d != crlf_day] or anywhere)
        tail = self.event("ReactionAdded", "message", "msg_fault_tail", 1, {}, last)
        tail_bytes = orjson.dumps(tail)[:60]
        return FileStyle(crlf=(crlf_day, 1), bom=(bom_day, 1), tail=tail_bytes)

    def repeated_events(self) -> None:
        """Duplicates (identical and differing), a version conflict, a gap, an unknown type."""
        found = self.find_line("MessageCreated")
        if found:
            day, raw, _ = found
            self.insert(self.later_day(day), raw, "duplicate_identical")
        found = self.find_line("ReactionAdded")
        if found:
            day, _, event = found
            event["data"]["emoji"] = next(e for e in EMOJIS if e != event["data"]["emoji"])
            self.insert(self.later_day(day), event, "duplicate_differing")
        found = self.find_line("ReactionAdded")
        if found:
            day, _, original = found
            later = self.later_day(day)
            data = {"account_id": self.room.members[0].id, "emoji": "🐛", "at": self.time(later)}
            event = self.event(
                "ReactionAdded",
                "message",
                original["aggregate_id"],
                original["version"],
                data,
                later,
            )
            self.insert(later, event, "version_conflict")
        targets = [m for m in self.g.messages if not m.deleted and not m.imported]
        if len(targets) >= 2:
            gap, pinned = self.rng.sample(targets, 2)
            d = self.later_day(self.clock.day_index(gap.last_recorded))
            data = {"account_id": self.room.members[0].id, "emoji": "🕳️", "at": self.time(d)}
            event = self.event("ReactionAdded", "message", gap.id, gap.version + 2, data, d)
            self.insert(d, event, "version_gap")
            d = self.later_day(self.clock.day_index(pinned.last_recorded))
            data = {"account_id": pinned.author.id, "at": self.time(d)}
            event = self.event("MessagePinned", "message", pinned.id, pinned.version + 1, data, d)
            self.insert(d, event, "unknown_event_type")

    def message_order(self) -> None:
        """An edit before its message's MessageCreated, and a second MessageCreated."""
        d = self.any_day()
        edit = {
            "content_cid": self.g.content.register(b"edited before it was created"),
            "edited_at": self.time(d),
        }
        self.insert(
            d,
            self.event("MessageEdited", "message", "msg_fault_orphan", 1, edit, d),
            "orphan_message_event",
        )
        created = self.created("msg_fault_orphan", d)
        created["version"] = 2
        self.insert(d, created, None)
        d = self.any_day()
        self.insert(d, self.created("msg_fault_twice", d), None)
        d2 = self.later_day(d)
        second = self.created("msg_fault_twice", d2)
        second["version"] = 2
        self.insert(d2, second, "second_message_created")

    def content_messages(self, plan: FaultPlan) -> None:
        """Messages whose bodies ``break_content`` will spoil, and a body not in UTF-8."""
        for name, message_id in (
            ("tampered_content", "msg_fault_tampered"),
            ("symlink_in_store", "msg_fault_symlink"),
            ("symlink_outside_store", "msg_fault_outside"),
        ):
            text = f"{compose(self.rng, self.room.topic)} ({name.replace('_', ' ')})"
            cid = self.g.content.register(text.encode())
            plan.content_targets[name] = cid
            d = self.any_day()
            self.insert(d, self.created(message_id, d, cid), None)
        cid = self.g.content.register(LATIN1_BODY)
        d = self.any_day()
        self.insert(d, self.created("msg_fault_latin1", d, cid), None)
        plan.places.setdefault("invalid_utf8_body", []).append(f"content/by-cid/{cid}.md")

    def merge(self) -> None:
        """Put the queued lines into the days, recording their positions as tags."""
        for day, items in self.pending.items():
            target = self.days[day]
            items.sort(key=lambda item: item[0])
            lines: list[bytes] = []
            tags: dict[int, str] = {}
            cursor = 0
            for position, raw, tag in items:
                lines.extend(target.lines[cursor:position])
                cursor = position
                if tag is not None:
                    tags[len(lines)] = tag
                lines.append(raw)
            lines.extend(target.lines[cursor:])
            target.lines, target.tags = lines, tags


def plan(
    generator: Generator, days: list[DayLines], layout: Layout, rng: random.Random
) -> FaultPlan:
    """Insert the fault lines into ``days`` and decide the file, index and content faults."""
    faults = _Faults(generator, days, rng)
    faults.repeated_events()  # reads clean lines: first
    faults.malformed_lines()
    faults.bad_payloads()
    style = faults.odd_text(layout)
    faults.message_order()
    closed = [d for d in range(len(days) - 1)]
    chosen = rng.sample(closed, min(len(closed), len(INDEX_FAULTS)))
    index_faults: dict[int, list[str]] = {}
    for i, name in enumerate(INDEX_FAULTS):
        index_faults.setdefault(chosen[i % len(chosen)], []).append(name)
    result = FaultPlan(style=style, index_faults=index_faults)
    faults.content_messages(result)
    faults.merge()
    return result


def break_index(name: str, index: dict, rng: random.Random) -> str:
    """Spoil ``index`` (a day's index.json) by fault ``name``; returns the file concerned."""
    files: dict[str, dict] = index["files"]
    names = sorted(files)
    if name == "index_wrong_lines" and names:
        files[names[0]]["lines"] += rng.randint(1, 9)
        return names[0]
    if name == "index_wrong_sha256" and names:
        files[names[-1]]["sha256"] = hashlib.sha256(b"not these bytes").hexdigest()
        return names[-1]
    if name == "index_file_not_listed" and names:
        del files[names[-1]]
        return names[-1]
    suffix = ".jsonl.gz" if any(n.endswith(".gz") for n in names) else ".jsonl"
    absent = f"{len(names) + 1:03d}{suffix}"
    files[absent] = {
        "lines": 42,
        "bytes": 4096,
        "sha256": hashlib.sha256(absent.encode()).hexdigest(),
    }
    return absent


def break_content(root: Path, plan: FaultPlan, rng: random.Random) -> dict[str, list[str]]:
    """Spoil written content files; returns fault name -> places (with ``plan.places``)."""
    places = {name: list(where) for name, where in plan.places.items()}
    by_cid = root / "content" / "by-cid"

    def note(name: str, path: Path) -> None:
        places.setdefault(name, []).append(path.relative_to(root).as_posix())

    cid = plan.content_targets["tampered_content"]
    path = by_cid / f"{cid}.md"
    path.write_bytes(path.read_bytes() + b" (tampered after hashing)")
    note("tampered_content", path)

    cid = plan.content_targets["symlink_in_store"]
    staging = root / "content" / "staging"
    staging.mkdir(exist_ok=True)
    path = by_cid / f"{cid}.md"
    (staging / f"{cid}.md").write_bytes(path.read_bytes())
    path.unlink()
    os.symlink(f"../staging/{cid}.md", path)
    note("symlink_in_store", path)

    cid = plan.content_targets["symlink_outside_store"]
    path = by_cid / f"{cid}.md"
    path.unlink()
    os.symlink(OUTSIDE_TARGET, path)
    note("symlink_outside_store", path)

    path = by_cid / "notacid.md"
    path.write_bytes(b"a body under a name that is not a CID\n")
    note("invalid_cid_name", path)
    path = root / "content" / "blobs" / "not-a-cid.bin"
    path.write_bytes(rng.randbytes(64))
    note("invalid_cid_name", path)
    return places
