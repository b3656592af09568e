"""Deterministic generator of a sample message store (contract: docs/message-store.md).

``generate_store(out, events, days, seed)`` writes ``events/`` and ``content/`` under
``out`` and returns a :class:`StoreSummary`. The same arguments give byte-identical
files: every choice comes from one ``random.Random(seed)`` (faults from a second one
seeded from it), gzip headers carry ``mtime=0`` and nothing reads the clock.

A store is built in five steps:

1. the cast: accounts (Zipf activity, one platform each) and rooms (dm / group /
   channel) with members who join and sometimes leave;
2. imported history: a few importer batches of years-old messages, each recorded
   within one day;
3. live traffic: threads of power-law length with edits, deletions and reactions,
   until the event budget is used;
4. read markers fill the budget exactly;
5. the events are sorted by ``recorded_at`` and laid out per recorded day in
   ``NNN.jsonl`` files (gzip for older days, the oldest days under
   ``events/archive``), with ``index.json`` for every day but the last.

``faults=True`` then adds every bad input of the contract at known places
(:mod:`pipelines.sample.faults`).
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import math
import os
import random
import shutil
from bisect import bisect, bisect_right
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path

import orjson

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MANIFEST = "sample-store.json"
STORE_ENTRIES = ("content", "events", MANIFEST)

# Shares and rates of the generated traffic.
PLATFORM_SHARE = {
    "telegram": 0.25,
    "discord": 0.24,
    "slack": 0.16,
    "github": 0.14,
    "email": 0.13,
    "claude-code": 0.08,
}
SOURCES = {
    "telegram": "telegram-bridge",
    "discord": "discord-bridge",
    "slack": "slack-bridge",
    "github": "github-sync",
    "email": "imap-bridge",
    "claude-code": "claude-code-plugin",
}
ROOM_TYPES = {
    "telegram": (("dm", 45), ("group", 40), ("channel", 15)),
    "discord": (("channel", 80), ("dm", 15), ("group", 5)),
    "slack": (("channel", 75), ("dm", 20), ("group", 5)),
    "github": (("channel", 100),),
    "email": (("group", 65), ("dm", 35)),
    "claude-code": (("dm", 100),),
}
ROOM_TYPE_ACTIVITY = {"dm": 0.6, "group": 1.0, "channel": 1.6}
EXPLICIT_THREAD_SHARE = {"slack": 0.7, "discord": 0.3, "github": 0.5}  # others: 0.15
LEGACY_PLATFORMS = ("telegram", "discord", "slack", "email")
LEGACY_SHARE = 0.04  # of messages on LEGACY_PLATFORMS: about 3% of all messages
IMPORT_PLATFORMS = ("email", "telegram", "slack")
IMPORT_SHARE = 0.02  # of the event budget
READ_MARKER_SHARE = 0.05  # of the event budget
ACCOUNT_UPDATE_SHARE = 0.15
ROOM_UPDATE_SHARE = 0.2
LATER_JOIN_SHARE = 0.25
LEAVE_SHARE = 0.08
BOOTSTRAP_ACCOUNTS = 0.7  # known to the bridges on the first day
BOOTSTRAP_ROOMS = 0.6
EDIT_SHARE = 0.06
DELETE_SHARE = 0.025
REACTION_SHARE = 0.22
ATTACHMENT_SHARE = 0.02
TAG_SHARE = 0.3
MENTION_SHARE = 0.05
LATE_SHARE = 0.003  # events recorded 1-3 days after their time
LATE_ROOT_SHARE = 0.01  # roots of multi-message threads recorded after their replies
THREAD_ALPHA = 1.25  # thread length ~ Pareto(alpha), capped
MAX_THREAD = 200
COMMON_SHARE = 0.09  # short bodies shared by many messages ("thanks!", "+1", ...)
MISSING_SHARE = 0.01  # fresh bodies never synced to content/
FRESH_BODY_FILES = 20_000  # fresh bodies (files) a store aims at: reposts beyond ...
FRESH_BODY_FILES_PER_EVENT = 0.01  # ... plus this many per event (creating files is slow)
BLOB_FILES = 500  # distinct attachments: beyond, attachments are earlier ones ...
BLOB_FILES_PER_EVENT = 0.002  # ... plus this many per event
MIN_FAULT_DAYS = 5  # four closed days for the index.json faults, and the open last day
GZIP_LEVEL = 1  # fast; the files are read far more often than written
HORIZON_MARGIN_MS = 2 * HOUR_MS  # no activity in the last two hours: lags stay inside
HOUR_WEIGHTS = (2, 1.5, 1, 1, 1, 1.5, 2.5, 4, 6, 8, 9, 9, 8, 9, 9, 9, 8, 8, 8, 7, 6, 5, 4, 3)
ZIPF_ACCOUNTS = 1.1
ZIPF_ROOMS = 1.0

CID_PREFIX = bytes([0x01, 0x55, 0x12, 0x20])  # CIDv1, raw codec, sha2-256, 32-byte digest
# recorded_at text by parts: "HH:MM:" per minute of the day, "SS.mmmZ" per ms of a minute
_HH_MM = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SS_MMM = tuple(f"{s:02d}.{ms:03d}Z" for s in range(60) for ms in range(1000))
# base32 digits two at a time (10 bits per lookup): much faster than base64.b32encode
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BASE32_PAIRS = tuple(a + b for a in _BASE32 for b in _BASE32)
_CROCKFORD_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
_CID_SHIFTS = tuple(range(280, -1, -10))  # 36 bytes + 2 padding bits = 290 bits, 58 digits


# --------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Topic:
    """A vocabulary messages are written from; ``tech`` topics get `code` spans."""

    name: str
    title: str
    tech: bool
    terms: tuple[str, ...]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _topic(name: str, title: str, tech: bool, terms: str) -> Topic:
    return Topic(name, title, tech, tuple(term.strip() for term in terms.split(",")))


TOPICS = (
    _topic(
        "rust",
        "Rust",
        True,
        "borrow checker, lifetimes, cargo, crates.io, trait objects, tokio, async runtime, "
        "serde, proc macros, unsafe code, ownership, clippy, rustc, compile times, iterators, "
        "the Result type, pattern matching, generics, Arc and Mutex, the wasm target, "
        "rust-analyzer, const generics, error handling, the 2024 edition",
    ),
    _topic(
        "databases",
        "Databases",
        True,
        "postgres, the query planner, indexes, vacuum, the write-ahead log, sqlite, duckdb, "
        "replication, connection pooling, transactions, isolation levels, deadlocks, schema "
        "migrations, parquet files, columnar storage, b-trees, query latency, foreign keys, "
        "materialized views, backups, sharding, the slow query log",
    ),
    _topic(
        "kubernetes",
        "Kubernetes",
        True,
        "kubectl, helm charts, pods, deployments, the ingress controller, the service mesh, "
        "node pools, autoscaling, persistent volumes, configmaps, secrets, liveness probes, "
        "CrashLoopBackOff, the control plane, etcd, namespaces, resource limits, operators, "
        "cert-manager, rolling updates, the scheduler",
    ),
    _topic(
        "python",
        "Python",
        True,
        "type hints, virtualenvs, pip, asyncio, pandas, polars, decorators, generators, the GIL, "
        "pytest fixtures, dataclasses, packaging, pyproject files, ruff, mypy, comprehensions, "
        "the standard library, numpy arrays, context managers, wheels",
    ),
    _topic(
        "cooking",
        "Cooking",
        False,
        "sourdough starter, the cast iron pan, risotto, fresh basil, olive oil, garlic, the slow "
        "cooker, pasta dough, sea salt, roast chicken, miso soup, chili flakes, the oven "
        "temperature, lemon zest, bread flour, a good knife, caramelized onions, curry paste, "
        "the pizza stone, fermentation",
    ),
    _topic(
        "travel",
        "Travel",
        False,
        "night trains, cheap flights, hostels, the old town, travel insurance, rail passes, "
        "carry-on bags, street food, museums, hiking trails, ferries, visa rules, jet lag, the "
        "airport lounge, local markets, mountain huts, city walks, rental cars, the coastline, "
        "packing lists",
    ),
    _topic(
        "music",
        "Music",
        False,
        "vinyl records, synthesizers, guitar pedals, the new album, live shows, jazz standards, "
        "drum machines, headphones, music theory, chord progressions, the festival lineup, bass "
        "lines, mixing, mastering, the studio, setlists, piano lessons, playlists, modular "
        "synths, open mic night",
    ),
    _topic(
        "football",
        "Football",
        False,
        "the transfer window, the derby, the offside rule, VAR, the league table, clean sheets, "
        "the manager, set pieces, penalty shootouts, the starting eleven, season tickets, the "
        "away game, midfield, injury time, the cup final, academy players, the striker, "
        "formations, pressing, the referee",
    ),
    _topic(
        "gardening",
        "Gardening",
        False,
        "tomato seedlings, compost, raised beds, mulch, the greenhouse, pruning, perennials, "
        "aphids, the watering schedule, seed catalogs, potting soil, fruit trees, herbs, the "
        "vegetable patch, cuttings, slugs, wildflowers, frost dates, rainwater barrels, bulbs",
    ),
    _topic(
        "photography",
        "Photography",
        False,
        "prime lenses, aperture, shutter speed, golden hour, film cameras, RAW files, light "
        "meters, tripods, street photography, portraits, lightroom presets, ISO noise, "
        "composition, the histogram, long exposure, darkroom prints, autofocus, white balance, "
        "mirrorless bodies, contact sheets",
    ),
    _topic(
        "astronomy",
        "Astronomy",
        False,
        "the telescope, star charts, Jupiter, the Orion nebula, light pollution, meteor showers, "
        "eyepieces, the lunar eclipse, dark skies, the rings of Saturn, astrophotography, red "
        "dwarfs, the Milky Way, star parties, binoculars, the equatorial mount, comets, "
        "exoplanets, galaxies, the planisphere",
    ),
    _topic(
        "cycling",
        "Cycling",
        False,
        "gravel bikes, tubeless tires, chain wax, climbing gears, bikepacking, saddle height, "
        "disc brakes, group rides, the commute, bike lanes, wheel truing, cleats, rain jackets, "
        "the long descent, power meters, cadence, touring bags, inner tubes, headwinds, the "
        "velodrome",
    ),
)
TECH_TOPICS = tuple(topic for topic in TOPICS if topic.tech)
TEMPLATES = (
    "has anyone tried {a} with {b}?",
    "I think {a} is much better than {b} for this",
    "we switched to {a} last week and {b} got a lot simpler",
    "does {a} still break when you use {b}?",
    "quick question about {a}: how do you deal with {b}?",
    "the docs on {a} finally explain {b} properly",
    "turns out {a} was the problem, not {b}",
    "I spent the whole evening on {a} and {b}",
    "can someone recommend a good guide to {a}?",
    "my {a} keeps acting up since I changed {b}",
    "love how {a} and {b} work together",
    "hot take: {a} is overrated and {b} is underrated",
    "just read a long thread about {a} versus {b}",
    "what is your setup for {a} these days?",
    "still learning about {a}, any tips on {b}?",
    "{a} and {b} again, every single week",
    "finally got {a} working after fighting with {b}",
    "is {a} worth it if you already have {b}?",
    "nobody warned me that {a} depends so much on {b}",
    "the best thing I did this year was to look into {a}",
)
TAILS = (
    "to be honest",
    "at least for now",
    "but I am not sure yet",
    "if that makes sense",
    "according to the changelog",
    "which surprised me",
    "in my experience",
    "as far as I can tell",
    "no idea why",
    "and it was worth it",
    "for what it is worth",
    "so far so good",
)
COMMON_BODIES = (
    "thanks!",
    "+1",
    "lgtm",
    "👍",
    "ok",
    "nice!",
    "haha",
    "agreed",
    "on it",
    "done",
    "same here",
    "thank you!",
    "sounds good",
    "ty",
    "brb",
    "lol",
    "🎉",
    "makes sense",
)
EMOJIS = ("👍", "❤️", "😂", "🎉", "🚀", "👀", "🙏", "🔥", "✅", "😮", "+1", "eyes")
DELETE_REASONS = ("spam", "posted in the wrong room", "duplicate", "contained personal data")
FIRST_NAMES = _words(
    "Ada Alan Amara Ana Ben Bruno Chen Chloe Dana Dev Elena Emil Farah Felix Grace Hana Ines "
    "Ivan Jamal Jana Jonas Kai Kenji Lara Leo Lina Marco Maya Mei Nadia Noah Omar Olga Pablo "
    "Priya Quinn Rosa Sam Sara Tariq Theo Uma Vera Wei Yara Yusuf Zoe"
)
LAST_NAMES = _words(
    "Abe Baker Costa Dubois Eriksen Fischer Garcia Haddad Ito Jensen Kowalski Lopez Muller "
    "Nakamura Okafor Petrov Quist Rossi Sato Schmidt Silva Tanaka Umarov Varga Weber Xu "
    "Yilmaz Zhang"
)
GITHUB_ORGS = ("acme", "openlab", "tinyco", "datafolk", "cloudnine", "rustbelt")
BLOB_HEADERS = (b"\x89PNG\r\n\x1a\n", b"%PDF-1.7\n", b"\xff\xd8\xff\xe0JFIF", b"PK\x03\x04")


def compose(rng: random.Random, topic: Topic, max_words: int = 40) -> str:
    """A message body of one or more sentences, 5 to ``max_words`` words, about ``topic``."""
    target = min(max_words, 5 + int(rng.expovariate(1 / 9)))
    sentences: list[str] = []
    words = 0
    while words < target:
        a, b = rng.sample(topic.terms, 2)
        if topic.tech and rng.random() < 0.15:
            a = f"`{a}`"
        sentence = rng.choice(TEMPLATES).format(a=a, b=b)
        if rng.random() < 0.3 and not sentence.endswith("?"):
            sentence = f"{sentence}, {rng.choice(TAILS)}"
        count = sentence.count(" ") + 1
        if sentences and words + count > max_words:
            break
        if not sentence.endswith("?"):
            sentence += rng.choice(".....!")
        sentences.append(sentence[0].upper() + sentence[1:])
        words += count
    if len(sentences) >= 3 and rng.random() < 0.2:
        return sentences[0] + "\n\n" + "\n".join(f"- {s}" for s in sentences[1:])
    return " ".join(sentences)


# --------------------------------------------------------------------------- encodings


def cid_of(data: bytes) -> str:
    """CIDv1 (raw codec, sha2-256) of ``data`` in multibase base32 lower case: ``bafkrei...``.

    The same as ``"b" + base64.b32encode(CID_PREFIX + sha256).decode().lower().rstrip("=")``.
    """
    value = int.from_bytes(CID_PREFIX + hashlib.sha256(data).digest(), "big") << 2
    return "b" + "".join([_BASE32_PAIRS[(value >> shift) & 1023] for shift in _CID_SHIFTS])


def ulid(ms: int, entropy: int) -> str:
    """A 26-character ULID: 48-bit millisecond time (``ms < 2**48``) then 80 bits of
    ``entropy`` (``< 2**80``), in Crockford base32, two digits per 10 bits."""
    p = _CROCKFORD_PAIRS  # unrolled: this runs once per event
    return "".join(
        (
            p[ms >> 40 & 1023],
            p[ms >> 30 & 1023],
            p[ms >> 20 & 1023],
            p[ms >> 10 & 1023],
            p[ms & 1023],
            p[entropy >> 70 & 1023],
            p[entropy >> 60 & 1023],
            p[entropy >> 50 & 1023],
            p[entropy >> 40 & 1023],
            p[entropy >> 30 & 1023],
            p[entropy >> 20 & 1023],
            p[entropy >> 10 & 1023],
            p[entropy & 1023],
        )  # fmt: skip
    )


def message_id(number: int) -> str:
    """A message id that looks random but is unique per ``number`` (an odd-multiplier hash)."""
    return f"msg_{(number * 0x9E3779B1) & 0xFFFF_FFFF:08x}"


def epoch_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


class Clock:
    """Recorded days of the store, ``recorded_at`` text, and plausible activity times.

    Activity is weighted by day (weekends quieter, slow growth, noise) and by hour of day.
    Sampled times never pass ``horizon``, two hours before the end of the last day.
    """

    def __init__(self, start: date, days: int, rng: random.Random) -> None:
        self.start = start
        self.days = days
        self.start_ms = epoch_ms(start)
        self.end_ms = self.start_ms + days * DAY_MS
        self.horizon = self.end_ms - HORIZON_MARGIN_MS
        self.dates = [start + timedelta(days=i) for i in range(days)]
        self._prefixes = [f"{day.isoformat()}T" for day in self.dates]
        weights = [
            (0.55 if day.weekday() >= 5 else 1.0)
            * (1.0 + 0.5 * i / max(1, days - 1))
            * rng.uniform(0.75, 1.25)
            for i, day in enumerate(self.dates)
        ]
        self._day_cum = list(accumulate(weights))
        self._hour_cum = list(accumulate(HOUR_WEIGHTS))

    def day_index(self, ms: int) -> int:
        return (ms - self.start_ms) // DAY_MS

    def iso(self, ms: int) -> str:
        """``recorded_at`` text of a time inside the store's days, e.g. 2025-10-01T08:15:02.120Z."""
        day, rest = divmod(ms - self.start_ms, DAY_MS)
        minute, rest = divmod(rest, 60_000)
        return self._prefixes[day] + _HH_MM[minute] + _SS_MMM[rest]

    def sample(self, rng: random.Random, not_before: int | None = None) -> int:
        """A weighted activity time in ``[not_before, horizon]``."""
        lo = self.start_ms if not_before is None else not_before
        for _ in range(4):
            day = bisect(self._day_cum, rng.random() * self._day_cum[-1])
            hour = bisect(self._hour_cum, rng.random() * self._hour_cum[-1])
            t = self.start_ms + day * DAY_MS + hour * HOUR_MS + int(rng.random() * HOUR_MS)
            if lo <= t <= self.horizon:
                return t
        return rng.randint(min(lo, self.horizon), self.horizon)

    def bootstrap(self, rng: random.Random) -> int:
        """A time in the first three hours: bridges announce what they already know."""
        return self.start_ms + rng.randrange(3 * HOUR_MS)


def recording_lag(r: float) -> int:
    """Milliseconds between a fact and its recording, from one uniform ``r`` in [0, 1):
    under 1.5 s for 85% of events, up to 90 s for 13%, up to 30 min for 2%."""
    if r < 0.85:
        return 5 + int(r / 0.85 * 1_495)
    if r < 0.98:
        return 1_500 + int((r - 0.85) / 0.13 * 88_500)
    return 90_000 + int((r - 0.98) / 0.02 * 1_710_000)


# --------------------------------------------------------------------------- event log


class EventLog:
    """Serialized events with their recording time, in emission order.

    ``rows`` holds ``(recorded_ms, sequence, line)``; sorting it gives the file order.
    Event ids are ULIDs of the intended recording time; a late event keeps its id but is
    recorded one to three days later (a later recorded day, never past the last day).
    """

    def __init__(self, rng: random.Random, clock: Clock) -> None:
        self.rng = rng
        self.clock = clock
        self.rows: list[tuple[int, int, bytes]] = []
        self.late = 0
        self.types: dict[str, int] = {}
        self.last_recorded = 0

    @property
    def count(self) -> int:
        return len(self.rows)

    def new_id(self, ms: int) -> str:
        return ulid(ms, self.rng.getrandbits(80))

    def delay(self, recorded: int) -> int:
        """``recorded`` moved one to three days later, if that stays inside the store."""
        later = recorded + self.rng.randint(1, 3) * DAY_MS + self.rng.randrange(4 * HOUR_MS)
        if later >= self.clock.end_ms:
            return recorded
        self.late += 1
        return later

    def emit(
        self,
        event_type: str,
        aggregate_type: str,
        aggregate_id: str,
        version: int,
        data: dict,
        at: int,
        actor: str,
        source: str,
        *,
        schema_version: int | None = 1,
        recorded: int | None = None,
        causation: str | None = None,
        late: bool | None = None,
    ) -> str:
        """Append one event that happened at ``at``; returns its event_id.

        ``recorded`` defaults to ``at`` plus a recording lag; ``late=None`` lets the event
        be delayed at random, True forces a delay, False forbids it.
        ``schema_version=None`` leaves the field out (it then means 1).
        """
        rng = self.rng
        if recorded is None:
            recorded = min(at + recording_lag(rng.random()), self.clock.end_ms - 1)
        event_id = ulid(recorded, rng.getrandbits(80))
        if late or (late is None and rng.random() < LATE_SHARE):
            recorded = self.delay(recorded)
        correlation = f"req_{rng.getrandbits(40):010x}"
        if causation is None:
            metadata = {"correlation_id": correlation, "actor": actor, "source": source}
        else:
            metadata = {
                "correlation_id": correlation,
                "causation_id": causation,
                "actor": actor,
                "source": source,
            }
        event = {
            "event_id": event_id,
            "event_type": event_type,
            "schema_version": schema_version,
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "version": version,
            "recorded_at": self.clock.iso(recorded),
            "data": data,
            "metadata": metadata,
        }
        if schema_version is None:
            del event["schema_version"]
        # a copy: orjson's result keeps its whole (4 KiB) output buffer allocated
        self.rows.append((recorded, len(self.rows), bytes(memoryview(orjson.dumps(event)))))
        self.types[event_type] = self.types.get(event_type, 0) + 1
        self.last_recorded = recorded
        return event_id


# --------------------------------------------------------------------------- content


class Content:
    """Bodies and attachments by CID; identical bytes share one file.

    A draw is a common short body (shared by many messages), a fresh text, or, with
    probability ``1 - fresh_share``, an earlier body of the same topic (a repost): this
    bounds the number of files of large stores. About 1% of fresh bodies are never
    written (``missing``: not yet synced).
    """

    def __init__(self, rng: random.Random, fresh_share: float, blob_files: int) -> None:
        self.rng = rng
        self.fresh_share = fresh_share
        self.blob_files = blob_files
        self.bodies: dict[str, bytes] = {}
        self.missing: dict[str, None] = {}
        self.blobs: dict[str, bytes] = {}
        self._blob_list: list[str] = []
        self._pools: dict[str, list[str]] = {topic.name: [] for topic in TOPICS}
        self._common: dict[str, str] = {}  # CIDs of COMMON_BODIES, once used

    def register(self, data: bytes, missing: bool = False) -> str:
        """The CID of ``data``, stored as a body file unless ``missing``."""
        cid = cid_of(data)
        if cid not in self.bodies and cid not in self.missing:
            if missing:
                self.missing[cid] = None
            else:
                self.bodies[cid] = data
        return cid

    def body(self, topic: Topic, common: bool = True) -> str:
        """The CID of a message body about ``topic``."""
        rng = self.rng
        if common and rng.random() < COMMON_SHARE:
            text = COMMON_BODIES[int(rng.random() * len(COMMON_BODIES))]
            cid = self._common.get(text)
            if cid is None:
                cid = self._common[text] = self.register(text.encode())
            return cid
        pool = self._pools[topic.name]
        if pool and rng.random() >= self.fresh_share:
            return pool[int(rng.random() * len(pool))]
        cid = self.register(compose(rng, topic).encode(), missing=rng.random() < MISSING_SHARE)
        pool.append(cid)
        return cid

    def inline_text(self, topic: Topic) -> str:
        """A body for a legacy v1 message, carried inline (no file)."""
        if self.rng.random() < COMMON_SHARE:
            return self.rng.choice(COMMON_BODIES)
        return compose(self.rng, topic)

    def blob(self) -> str:
        """The CID of an attachment: new bytes, or now and then one already posted."""
        rng = self.rng
        if self._blob_list and (rng.random() < 0.3 or len(self._blob_list) >= self.blob_files):
            return rng.choice(self._blob_list)
        data = rng.choice(BLOB_HEADERS) + rng.randbytes(rng.randint(200, 6_000))
        cid = cid_of(data)
        if cid not in self.blobs:
            self.blobs[cid] = data
            self._blob_list.append(cid)
        return cid


# --------------------------------------------------------------------------- the cast


@dataclass(eq=False, slots=True)
class Account:
    id: str
    platform: str
    weight: float
    since: int  # time of its AccountCreated event
    display_name: str
    did: str | None


@dataclass(eq=False, slots=True)
class Room:
    """A room and its members; member ``i`` is present during ``[joined[i], left[i])``."""

    id: str
    platform: str
    type: str
    name: str
    topic: Topic
    since: int
    weight: float
    external_id: str
    server: tuple[str, str] | None
    members: list[Account] = field(default_factory=list)
    joined: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    cum: list[float] = field(default_factory=list)
    message_times: list[int] = field(default_factory=list)

    def pick_any(self, rng: random.Random) -> Account:
        """A member by activity weight, present or not (imported history)."""
        return self.members[bisect(self.cum, rng.random() * self.cum[-1])]

    def pick_member(self, rng: random.Random, t: int, avoid: Account | None = None) -> Account:
        """A member present at ``t`` by activity weight, preferably not ``avoid``.

        Falls back to the creator (member 0), who joined at ``since`` and never leaves.
        """
        for _ in range(6):
            i = bisect(self.cum, rng.random() * self.cum[-1])
            if self.joined[i] <= t < self.left[i] and self.members[i] is not avoid:
                return self.members[i]
        return self.members[0]


@dataclass(eq=False, slots=True)
class Message:
    id: str
    number: int
    room: Room
    author: Account
    created_at: int
    event_id: str
    cid: str | None  # None for legacy v1 messages (body inline)
    version: int = 1
    last_recorded: int = 0
    deleted: bool = False
    imported: bool = False


def zipf_weights(rng: random.Random, n: int, exponent: float) -> list[float]:
    """Weights ``rank ** -exponent`` for ``n`` items, ranks shuffled: a few very active."""
    ranks = list(range(1, n + 1))
    rng.shuffle(ranks)
    return [rank**-exponent for rank in ranks]


def weighted_distinct(
    rng: random.Random, items: list[Account], cum: list[float], k: int
) -> list[Account]:
    """Up to ``k`` distinct items drawn by weight (``cum``: cumulative weights)."""
    chosen: dict[int, None] = {}
    for _ in range(k * 8):
        if len(chosen) >= k:
            break
        chosen[bisect(cum, rng.random() * cum[-1])] = None
    return [items[i] for i in chosen]


# --------------------------------------------------------------------------- generator


class Generator:
    """Builds the events and content of one store in memory (see the module docstring)."""

    def __init__(
        self, events: int, days: int, seed: int, start: date, max_body_files: int | None
    ) -> None:
        self.rng = random.Random(seed)
        self.target = events
        self.clock = Clock(start, days, self.rng)
        self.log = EventLog(self.rng, self.clock)
        files = max_body_files or FRESH_BODY_FILES + int(events * FRESH_BODY_FILES_PER_EVENT)
        draws = max(1.0, events * 0.7)
        blobs = BLOB_FILES + int(events * BLOB_FILES_PER_EVENT)
        self.content = Content(self.rng, min(1.0, files / draws), blobs)
        self.accounts: list[Account] = []
        self.by_platform: dict[str, list[Account]] = {p: [] for p in PLATFORM_SHARE}
        self.rooms: list[Room] = []
        self.messages: list[Message] = []
        self.legacy_messages = 0
        self.imported_messages = 0

    def run(self) -> None:
        """All five steps but the layout: the cast, history, traffic, read markers."""
        self.make_accounts()
        self.make_rooms()
        markers = int(self.target * READ_MARKER_SHARE)
        self.import_history(int(self.target * IMPORT_SHARE))
        self.live_traffic(stop=self.target - markers)
        self.read_markers(self.target - self.log.count)

    # -- accounts

    def make_accounts(self) -> None:
        """AccountCreated for every account, AccountUpdated for some; Zipf activity."""
        rng = self.rng
        total = max(24, min(20_000, self.target // 200))
        weights = zipf_weights(rng, total, ZIPF_ACCOUNTS)
        platforms = list(PLATFORM_SHARE)
        shares = list(accumulate(PLATFORM_SHARE.values()))
        for i in range(total):
            if i < 2 * len(platforms):  # at least two accounts per platform
                platform = platforms[i % len(platforms)]
            else:
                platform = platforms[min(bisect(shares, rng.random()), len(platforms) - 1)]
            self._make_account(i, platform, weights[i])

    def _make_account(self, i: int, platform: str, weight: float) -> None:
        rng, clock = self.rng, self.clock
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        bootstrap = rng.random() < BOOTSTRAP_ACCOUNTS
        if platform == "claude-code" and not self.by_platform[platform]:
            # the agent itself: in every claude-code session, very active
            first, last, bootstrap, weight = "Claude", "", True, 2.0
        since = clock.bootstrap(rng) if bootstrap else clock.sample(rng)
        since = min(since, clock.start_ms + int((clock.horizon - clock.start_ms) * 0.85))
        created_at = since - rng.randint(30 * DAY_MS, 6 * 365 * DAY_MS) if bootstrap else since
        did = f"did:plc:{rng.getrandbits(120):030x}" if rng.random() < 0.2 else None
        name = f"{first} {last}".strip()
        account = Account(f"acct_{i + 1}", platform, weight, since, name, did)
        self.accounts.append(account)
        self.by_platform[platform].append(account)
        data: dict = {"display_name": account.display_name, "platform": platform}
        data["created_at"] = created_at
        if rng.random() < 0.8:
            data["handle"] = self._handle(platform, first, last)
        if did:
            data["did"] = did
        source = SOURCES[platform]
        self.log.emit("AccountCreated", "account", account.id, 1, data, since, account.id, source)
        if rng.random() < ACCOUNT_UPDATE_SHARE:
            times = sorted(rng.randint(since, clock.horizon) for _ in range(rng.randint(1, 2)))
            for version, at in enumerate(times, start=2):
                update = self._account_update(platform, first, last)
                self.log.emit(
                    "AccountUpdated", "account", account.id, version, update, at, account.id, source
                )

    def _handle(self, platform: str, first: str, last: str) -> str:
        n = self.rng.randint(1, 999)
        if platform == "email":
            return f"{first.lower()}.{last.lower()}@mail.example.org"
        if platform in ("slack", "github"):
            return f"{first.lower()}{last.lower()[:3]}{n}"
        return f"@{first.lower()}_{last.lower()}{n}"

    def _account_update(self, platform: str, first: str, last: str) -> dict:
        rng = self.rng
        data: dict = {}
        r = rng.random()
        if r < 0.5:
            names = (f"{first} {last[:1]}.", f"{first} ({last})", first) if last else (first,)
            data["display_name"] = rng.choice(names)
        if r >= 0.3:
            data["handle"] = self._handle(platform, first, last)
        if rng.random() < 0.1:
            data["did"] = f"did:plc:{rng.getrandbits(120):030x}"
        return data

    # -- rooms

    def make_rooms(self) -> None:
        """Rooms per platform with RoomCreated, MemberJoined/Left and RoomUpdated events."""
        rng = self.rng
        total = max(12, min(5_000, self.target // 500))
        weights = zipf_weights(rng, total, ZIPF_ROOMS)
        platforms = [p for p in PLATFORM_SHARE if self.by_platform[p]]
        servers = {p: self._servers(p) for p in ("discord", "slack")}
        for i in range(total):
            if i < len(platforms):
                platform = platforms[i]
            else:
                shares = [PLATFORM_SHARE[p] for p in platforms]
                platform = rng.choices(platforms, weights=shares)[0]
            kinds, kind_weights = zip(*ROOM_TYPES[platform], strict=True)
            room_type = rng.choices(kinds, weights=kind_weights)[0]
            if len(self.by_platform[platform]) < 2:
                room_type = "group"
            self._make_room(i, platform, room_type, weights[i], servers.get(platform))

    def _servers(self, platform: str) -> list[tuple[str, str]]:
        rng = self.rng
        result = []
        for topic in rng.sample(TOPICS, rng.randint(3, 6)):
            if platform == "discord":
                server_id = str(rng.randrange(10**17, 10**18))
                result.append((server_id, f"{topic.title} {rng.choice(('Club', 'Hub', 'Den'))}"))
            else:
                server_id = "T" + f"{rng.getrandbits(40):010X}"
                result.append((server_id, f"{topic.name}-{rng.choice(('team', 'folks', 'hq'))}"))
        return result

    def _make_room(
        self,
        i: int,
        platform: str,
        room_type: str,
        weight: float,
        servers: list[tuple[str, str]] | None,
    ) -> None:
        rng, clock = self.rng, self.clock
        people = self.by_platform[platform]
        cum = list(accumulate(a.weight for a in people))
        tech = platform in ("github", "claude-code")
        topic = rng.choice(TECH_TOPICS if tech else TOPICS)
        if platform == "claude-code":
            humans = people[1:] or people
            creator = weighted_distinct(rng, humans, list(accumulate(a.weight for a in humans)), 1)
            members = [creator[0], people[0]]
        else:
            size = {"dm": 2, "group": rng.randint(3, 12), "channel": rng.randint(5, 60)}[room_type]
            members = weighted_distinct(rng, people, cum, min(size, len(people)))
        creator = members[0]
        latest = clock.start_ms + int((clock.horizon - clock.start_ms) * 0.9)
        since = clock.bootstrap(rng) if rng.random() < BOOTSTRAP_ROOMS else clock.sample(rng)
        since = min(max(since, creator.since + rng.randint(1_000, 600_000)), latest)
        since = max(since, creator.since + 1)
        server = rng.choice(servers) if servers and room_type == "channel" else None
        name = self._room_name(platform, room_type, topic, members)
        room = Room(
            id=f"room_{i + 1}",
            platform=platform,
            type=room_type,
            name=name,
            topic=topic,
            since=since,
            weight=weight * ROOM_TYPE_ACTIVITY[room_type],
            external_id=(
                str(rng.randrange(10**17, 10**18))  # a snowflake
                if platform == "discord"
                else f"C{rng.getrandbits(40):010X}"
            ),
            server=server,
        )
        self.rooms.append(room)
        self._populate(room, members)

    def _room_name(self, platform: str, room_type: str, topic: Topic, members: list) -> str:
        rng = self.rng
        if platform == "claude-code":
            return f"session: {rng.choice(GITHUB_ORGS)}/{topic.name}-{rng.randint(1, 99)}"
        if room_type == "dm":
            return " & ".join(m.display_name for m in members[:2])
        if platform == "github":
            return f"{rng.choice(GITHUB_ORGS)}/{topic.name}-{rng.choice(('core', 'cli', 'docs'))}"
        if platform == "email":
            return f"{topic.name}-users@lists.example.org"
        suffix = rng.choice(("general", "help", "chat", "news", "offtopic", "meetups"))
        if platform in ("discord", "slack"):
            return f"{topic.name}-{suffix}"
        return f"{topic.title} {suffix}"

    def _populate(self, room: Room, members: list[Account]) -> None:
        """Membership intervals and the room's events, in time order."""
        rng, clock = self.rng, self.clock
        events: list[tuple[int, str, dict, Account]] = []
        data: dict = {"name": room.name, "type": room.type, "platform": room.platform}
        bootstrap = room.since < clock.start_ms + 3 * HOUR_MS
        data["created_at"] = (
            room.since - rng.randint(DAY_MS, 3 * 365 * DAY_MS) if bootstrap else room.since
        )
        if room.server:
            data["server_id"], data["server_name"] = room.server
        if room.type != "dm" or rng.random() < 0.1:
            terms = ", ".join(rng.sample(room.topic.terms, 3))
            data["topic"] = f"Everything about {room.topic.name}: {terms}"
        events.append((room.since, "RoomCreated", data, members[0]))
        for k, account in enumerate(members):
            start = max(room.since, account.since + 1)
            if k and room.type != "dm" and rng.random() < LATER_JOIN_SHARE:
                start = rng.randint(start, max(start, clock.horizon - DAY_MS))
            else:
                start += rng.randint(0, 600_000) if k else 0
            if start > clock.horizon:
                continue
            leave = clock.end_ms + DAY_MS
            leaves = k and room.type != "dm" and rng.random() < LEAVE_SHARE
            if leaves and start + HOUR_MS < clock.horizon:
                leave = rng.randint(start + HOUR_MS, clock.horizon)
                events.append(
                    (leave, "MemberLeft", {"account_id": account.id, "at": leave}, account)
                )
            room.members.append(account)
            room.joined.append(start)
            room.left.append(leave)
            events.append((start, "MemberJoined", {"account_id": account.id, "at": start}, account))
        for _ in range(rng.randint(1, 2) if rng.random() < ROOM_UPDATE_SHARE else 0):
            at = rng.randint(room.since + 1, clock.horizon)
            if rng.random() < 0.7:
                update = {"topic": f"{room.topic.title}: {rng.choice(room.topic.terms)} this week"}
            else:
                update = {"name": f"{room.name}-{rng.choice(('archive', 'old', '2'))}"}
            events.append((at, "RoomUpdated", update, members[0]))
        room.cum = list(accumulate(a.weight for a in room.members))
        events.sort(key=lambda e: e[0])
        source = SOURCES[room.platform]
        for version, (at, event_type, payload, actor) in enumerate(events, start=1):
            self.log.emit(event_type, "room", room.id, version, payload, at, actor.id, source)

    # -- messages

    def next_message(self) -> tuple[str, int]:
        number = len(self.messages) + 1
        return message_id(number), number

    def live_traffic(self, stop: int) -> None:
        """Threads in rooms chosen by activity until ``stop`` events exist."""
        rng = self.rng
        rooms = [room for room in self.rooms if room.members]
        if not rooms:
            return
        cum = list(accumulate(room.weight for room in rooms))
        while self.log.count < stop:
            room = rooms[bisect(cum, rng.random() * cum[-1])]
            t = self.clock.sample(rng, not_before=room.since + 1_000)
            self.thread(room, t, stop)

    def thread(self, room: Room, t: int, stop: int) -> None:
        """A root message and replies of power-law count; replies point at earlier ones."""
        rng = self.rng
        length = min(MAX_THREAD, int(rng.paretovariate(THREAD_ALPHA)))
        late_root = length > 1 and rng.random() < LATE_ROOT_SHARE
        thread: list[Message] = []
        author: Account | None = None
        for k in range(length):
            if self.log.count >= stop:
                return
            if k:
                t += max(2_000, int(rng.lognormvariate(math.log(240_000), 1.3)))
                if t > self.clock.horizon:
                    return
            author = room.pick_member(rng, t, avoid=author)
            parent = None
            if thread:
                parent = thread[-1] if rng.random() < 0.7 else rng.choice(thread)
            root = thread[0] if thread else None
            message = self.message(room, author, t, parent, root, stop, late=late_root and k == 0)
            thread.append(message)

    def message(
        self,
        room: Room,
        author: Account,
        t: int,
        parent: Message | None,
        root: Message | None,
        stop: int,
        late: bool = False,
    ) -> Message:
        """MessageCreated (v2, or legacy v1 now and then) and the message's later events."""
        rng = self.rng
        msg_id, number = self.next_message()
        topic = room.topic if rng.random() < 0.85 else rng.choice(TOPICS)
        causation = parent.event_id if parent else None
        if room.platform in LEGACY_PLATFORMS and rng.random() < LEGACY_SHARE:
            data = self.legacy_data(room, author, t, parent, root, self.content.inline_text(topic))
            schema, source, cid = (1 if rng.random() < 0.5 else None), "legacy-bridge", None
            self.legacy_messages += 1
        else:
            cid = self.content.body(topic)
            data = self.created_data(room, author, t, parent, root, cid, number, topic)
            schema, source = 2, SOURCES[room.platform]
        event_id = self.log.emit(
            "MessageCreated",
            "message",
            msg_id,
            1,
            data,
            t,
            author.id,
            source,
            schema_version=schema,
            causation=causation,
            late=True if late else None,
        )
        message = Message(msg_id, number, room, author, t, event_id, cid)
        message.last_recorded = self.log.last_recorded
        self.messages.append(message)
        room.message_times.append(t)
        budget = stop - self.log.count
        if budget > 0:
            self.follow_ups(message, topic, budget)
        return message

    def created_data(
        self,
        room: Room,
        author: Account,
        t: int,
        parent: Message | None,
        root: Message | None,
        cid: str,
        number: int,
        topic: Topic,
    ) -> dict:
        """``data`` of a MessageCreated v2."""
        rng = self.rng
        data = {"account_id": author.id, "content_cid": cid, "kind": 0, "created_at": t}
        data["source"] = self.platform_ref(room, number, t, root)
        data["room_id"] = room.id
        if parent is not None and root is not None:
            if rng.random() < EXPLICIT_THREAD_SHARE.get(room.platform, 0.15):
                data["thread_id"] = root.id
            data["reply_to"] = parent.id
        if author.did and rng.random() < 0.6:
            data["author_did"] = author.did
        tags = []
        if rng.random() < TAG_SHARE:
            tags.append(["t", topic.name])
        if rng.random() < MENTION_SHARE:
            tags.append(["p", room.pick_any(rng).id])
        if tags:
            data["tags"] = tags
        if rng.random() < ATTACHMENT_SHARE:
            data["attachments"] = [self.content.blob() for _ in range(1 + (rng.random() < 0.3))]
        return data

    def legacy_data(
        self,
        room: Room,
        author: Account,
        t: int,
        parent: Message | None,
        root: Message | None,
        text: str,
    ) -> dict:
        """``data`` of a legacy MessageCreated v1: body inline, time in float seconds."""
        data: dict = {"author": author.id, "text": text, "channel": room.id, "ts": t / 1000}
        data["platform"] = room.platform
        if parent is not None and root is not None:
            if self.rng.random() < 0.5:
                data["thread"] = root.id
            data["parent"] = parent.id
        return data

    def platform_ref(self, room: Room, number: int, t: int, root: Message | None) -> dict:
        """``source`` of a message: its platform, the platform's id for it, maybe a URL."""
        rng = self.rng
        platform = room.platform
        ref: dict = {"platform": platform}
        if platform == "discord":
            pid = str(((t - 1_420_070_400_000) << 22) | rng.getrandbits(22))
            ref["platform_id"] = pid
            server = room.server[0] if room.server else "@me"
            ref["url"] = f"https://discord.com/channels/{server}/{room.external_id}/{pid}"
        elif platform == "slack":
            pid = f"{t // 1000}.{rng.randrange(1_000_000):06d}"
            ref["platform_id"] = pid
            workspace = room.server[1] if room.server else "app"
            ref["url"] = (
                f"https://{workspace}.slack.com/archives/{room.external_id}/p{pid.replace('.', '')}"
            )
        elif platform == "github":
            issue = (root.number if root else number) % 997 + 1
            ref["platform_id"] = f"IC_kwDO{rng.getrandbits(60):015X}"
            ref["url"] = f"https://github.com/{room.name}/issues/{issue}#issuecomment-{number}"
        elif platform == "email":
            ref["platform_id"] = f"<{rng.getrandbits(64):016x}@mail.example.org>"
        elif platform == "claude-code":
            ref["platform_id"] = f"{rng.getrandbits(64):016x}"
        else:
            ref["platform_id"] = str(100_000 + number)
        return ref

    def follow_ups(self, message: Message, topic: Topic, budget: int) -> None:
        """Edits, reactions (with redundant adds and removes) and maybe a deletion.

        At most ``budget`` events, versions 2, 3, ... in time order. After a deletion
        nothing follows, except now and then one event (valid input, ignored). An edit's
        new body is drawn only when the edit is kept, so every body is referenced.
        """
        rng = self.rng
        t = message.created_at
        acts: list[tuple[int, str, dict, Account]] = []
        if rng.random() < EDIT_SHARE:
            at = t
            for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 3)):
                at += rng.randint(5_000, HOUR_MS)
                acts.append((at, "MessageEdited", {"edited_at": at}, message.author))
        if rng.random() < REACTION_SHARE:
            acts.extend(self.reactions(message))
        if rng.random() < DELETE_SHARE:
            deleted_at = t + rng.randint(30_000, 3 * DAY_MS)
            data: dict = {"deleted_at": deleted_at}
            if rng.random() < 0.4:
                data["reason"] = rng.choice(DELETE_REASONS)
            acts.append((deleted_at, "MessageDeleted", data, message.author))
        if not acts:
            return
        acts = sorted((act for act in acts if act[0] <= self.clock.horizon), key=lambda a: a[0])
        kinds = [act[1] for act in acts]
        if "MessageDeleted" in kinds:
            after = kinds.index("MessageDeleted") + 1
            acts = acts[: after + (1 if rng.random() < 0.1 else 0)]
        source = SOURCES[message.room.platform]
        for version, (at, event_type, data, actor) in enumerate(acts[:budget], start=2):
            if event_type == "MessageEdited":
                data = {"content_cid": self.content.body(topic, common=False), "edited_at": at}
            self.log.emit(
                event_type,
                "message",
                message.id,
                version,
                data,
                at,
                actor.id,
                source,
                causation=message.event_id,
            )
            message.version = version
            message.last_recorded = max(message.last_recorded, self.log.last_recorded)
            message.deleted = message.deleted or event_type == "MessageDeleted"

    def reactions(self, message: Message) -> list[tuple[int, str, dict, Account]]:
        """ReactionAdded/Removed of members present, including ones that change nothing."""
        rng = self.rng
        room = message.room
        acts = []
        added: list[tuple[Account, str]] = []
        at = message.created_at
        for _ in range(1 + int(rng.expovariate(0.6))):
            at += max(1_000, int(rng.lognormvariate(math.log(120_000), 1.5)))
            who = room.pick_member(rng, at)
            emoji = EMOJIS[int(rng.random() * len(EMOJIS))]
            added.append((who, emoji))
            pair = {"account_id": who.id, "emoji": emoji}
            acts.append((at, "ReactionAdded", {**pair, "at": at}, who))
            if rng.random() < 0.04:  # added again while present: no change
                again = at + rng.randint(1_000, 600_000)
                acts.append((again, "ReactionAdded", {**pair, "at": again}, who))
            if rng.random() < 0.15:
                gone = at + rng.randint(5_000, DAY_MS)
                acts.append((gone, "ReactionRemoved", {**pair, "at": gone}, who))
        if rng.random() < 0.05:  # removing a pair that was never added: no change
            who = room.pick_member(rng, at)
            emoji = rng.choice(EMOJIS)
            if (who, emoji) not in added:
                gone = at + rng.randint(1_000, HOUR_MS)
                acts.append(
                    (
                        gone,
                        "ReactionRemoved",
                        {"account_id": who.id, "emoji": emoji, "at": gone},
                        who,
                    )
                )
        return acts

    # -- imported history

    def import_history(self, budget: int) -> None:
        """Importer batches: years-old messages, each batch recorded within one day."""
        rng, clock = self.rng, self.clock
        rooms = [r for r in self.rooms if r.platform in IMPORT_PLATFORMS and len(r.members) >= 2]
        if budget <= 0 or not rooms:
            return
        batches = 1 if budget < 200 else 2 if budget < 5_000 else 3
        for b in range(batches):
            size = budget // batches + (budget % batches if b == batches - 1 else 0)
            room = rng.choice(rooms)
            day = rng.randrange(1, clock.days) if clock.days > 1 else 0
            self.import_batch(room, day, size)

    def import_batch(self, room: Room, day: int, size: int) -> None:
        """``size`` messages written one to three years ago, recorded in a burst on ``day``.

        The importer writes them oldest first, a few milliseconds apart; each carries
        ``imported_at`` (its recording time) and ``metadata.source = "importer"``.
        """
        rng, clock = self.rng, self.clock
        oldest, newest = clock.start_ms - 3 * 365 * DAY_MS, clock.start_ms - 14 * DAY_MS
        # (created_at, parent position, root position, author); -1: none
        planned: list[tuple[int, int, int, Account]] = []
        while len(planned) < size:
            t = rng.randint(oldest, newest)
            root = len(planned)
            length = min(MAX_THREAD, int(rng.paretovariate(THREAD_ALPHA)), size - root)
            for k in range(length):
                if k == 0:
                    planned.append((t, -1, -1, room.pick_any(rng)))
                    continue
                t += max(2_000, int(rng.lognormvariate(math.log(600_000), 1.5)))
                last = len(planned) - 1
                parent = last if rng.random() < 0.7 else rng.randint(root, last)
                planned.append((t, parent, root, room.pick_any(rng)))
        order = sorted(range(len(planned)), key=lambda i: planned[i][0])
        steps = [rng.randint(10, 200) for _ in order]
        window = DAY_MS - HORIZON_MARGIN_MS - min(sum(steps), DAY_MS // 2)
        recorded = clock.start_ms + day * DAY_MS + rng.randrange(window)
        made: dict[int, Message] = {}
        for i, step in zip(order, steps, strict=True):
            t, parent_at, root_at, author = planned[i]
            recorded = min(recorded + step, clock.end_ms - 1)
            parent, root = made.get(parent_at), made.get(root_at)
            msg_id, number = self.next_message()
            topic = room.topic if rng.random() < 0.8 else rng.choice(TOPICS)
            cid = self.content.body(topic)
            data = self.created_data(room, author, t, parent, root, cid, number, topic)
            data["imported_at"] = recorded
            event_id = self.log.emit(
                "MessageCreated",
                "message",
                msg_id,
                1,
                data,
                t,
                author.id,
                "importer",
                schema_version=2,
                recorded=recorded,
                late=False,
            )
            message = Message(msg_id, number, room, author, t, event_id, cid, imported=True)
            message.last_recorded = recorded
            self.messages.append(message)
            made[i] = message
            room.message_times.append(t)
            self.imported_messages += 1

    # -- read markers

    def read_markers(self, budget: int) -> None:
        """``budget`` ReadMarkerMoved events: members reading up to a message of their room."""
        rng, clock = self.rng, self.clock
        rooms = [room for room in self.rooms if room.message_times]
        if budget <= 0 or not rooms:
            return
        for room in rooms:
            room.message_times.sort()
        cum = list(accumulate(len(room.message_times) for room in rooms))
        marks: dict[str, list[tuple[int, int, Account, Room]]] = {}
        made = tries = 0
        while made < budget and tries < budget * 50:
            tries += 1
            room = rooms[bisect(cum, rng.random() * cum[-1])]
            i = rng.randrange(len(room.members))
            lo, hi = room.joined[i], min(room.left[i], clock.horizon)
            if hi <= lo:
                continue
            t = rng.randint(lo, hi)
            k = bisect_right(room.message_times, t - rng.randint(0, 600_000))
            if k == 0:
                continue
            account = room.members[i]
            key = f"{account.id}/{room.id}"
            marks.setdefault(key, []).append((t, room.message_times[k - 1], account, room))
            made += 1
        for key, moves in marks.items():
            moves.sort(key=lambda move: move[0])
            for version, (t, up_to, account, room) in enumerate(moves, start=1):
                data = {"account_id": account.id, "room_id": room.id, "read_up_to": up_to}
                self.log.emit(
                    "ReadMarkerMoved",
                    "read_marker",
                    key,
                    version,
                    data,
                    t,
                    account.id,
                    SOURCES[room.platform],
                )


# --------------------------------------------------------------------------- layout


@dataclass
class DayLines:
    """The lines of one recorded day before they are cut into files.

    ``tags`` maps a line's position to the fault it carries (faults only).
    """

    index: int
    day: date
    lines: list[bytes]
    tags: dict[int, str] = field(default_factory=dict)


def lay_out(log: EventLog, clock: Clock) -> list[DayLines]:
    """The events sorted by recording time, split by recorded day."""
    log.rows.sort()
    days = [DayLines(i, day, []) for i, day in enumerate(clock.dates)]
    for recorded, _, line in log.rows:
        days[(recorded - clock.start_ms) // DAY_MS].lines.append(line)
    return days


@dataclass(frozen=True)
class Layout:
    """Which days are gzip-compressed, archived, or still open (no index.json)."""

    days: int
    compressed_before: int
    archived_before: int

    @staticmethod
    def of(days: int) -> Layout:
        recent = min(7, max(1, days // 3))
        archived = min(14, max(1, days // 10)) if days >= 3 else 0
        return Layout(days, days - recent, archived)

    def compressed(self, i: int) -> bool:
        return i < self.compressed_before

    def archived(self, i: int) -> bool:
        return i < self.archived_before

    def closed(self, i: int) -> bool:
        return i < self.days - 1

    def directory(self, root: Path, i: int, day: date) -> Path:
        parts = ("archive",) if self.archived(i) else ()
        return root.joinpath("events", *parts, f"{day:%Y}", f"{day:%m}", f"{day:%d}")


def file_cuts(rng: random.Random, n: int) -> list[tuple[int, int]]:
    """``(start, end)`` line ranges of a day's files: a size limit plus producer restarts."""
    if n == 0:
        return []
    limit = rng.randint(5_000, 20_000)
    files = -(-n // limit) + rng.choice((0, 0, 1, 1, 2))
    files = max(1, min(files, n))
    cuts = [0, *sorted(rng.sample(range(1, n), files - 1)), n]
    return list(zip(cuts, cuts[1:], strict=False))


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class StoreSummary:
    """What a generated store holds; ``faults`` and ``fault_places`` are empty without faults.

    ``events`` counts the generated (valid, distinct) events; ``lines`` every line of the
    event files, fault lines, blank lines and an unterminated last line included.
    ``fault_places`` maps a fault name to where it is: ``<file>:<line>`` for a line,
    ``<file>`` for a whole file or a content file, ``<index.json>#<file name>`` for an
    index entry (paths relative to the store).
    """

    events: int
    lines: int
    files: int
    compressed_files: int
    days: int
    first_day: date
    last_day: date
    archived_days: int
    index_files: int
    messages: int
    legacy_messages: int
    imported_messages: int
    late_events: int
    content_files: int
    missing_bodies: int
    blob_files: int
    event_types: dict[str, int]
    faults: dict[str, int]
    fault_places: dict[str, tuple[str, ...]]

    def line(self) -> str:
        """The one-line summary printed by the CLI."""
        faults = sum(self.faults.values())
        return (
            f"{self.events} events ({self.lines} lines) in {self.files} files, "
            f"{self.days} days {self.first_day}..{self.last_day}; {self.messages} messages "
            f"({self.legacy_messages} legacy, {self.imported_messages} imported), "
            f"{self.late_events} late; {self.content_files} content files "
            f"({self.missing_bodies} bodies missing), {self.blob_files} blobs; "
            f"{faults} faults ({len(self.faults)} kinds)"
        )

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


# --------------------------------------------------------------------------- writing


class NotAStoreError(ValueError):
    """The output directory is not empty and does not look like a message store."""


def prepare_output(out: Path) -> None:
    """Make ``out`` ready: create it, or clear a previous store (its events/ and content/).

    Refuses a non-empty directory holding anything but ``events/``, ``content/`` and the
    manifest (sample-store.json): that is not a store this generator would replace.
    """
    if out.exists() and not out.is_dir():
        raise NotAStoreError(f"{out} exists and is not a directory")
    if out.is_dir():
        entries = sorted(entry.name for entry in out.iterdir())
        if entries:
            foreign = [name for name in entries if name not in STORE_ENTRIES]
            if foreign:
                raise NotAStoreError(
                    f"refusing to write into {out}: it is not empty and does not look like a "
                    f"message store (unexpected entries: {', '.join(foreign)[:200]})"
                )
            for name in ("events", "content"):
                if (out / name).is_dir():
                    shutil.rmtree(out / name)
            (out / MANIFEST).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def write_file(path: Path | str, data: bytes) -> None:
    """Create or replace ``path`` with ``data`` (plain os calls: many small files)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def write_content(root: Path, content: Content) -> None:
    """``content/by-cid/<cid>.md`` for every body not missing, ``content/blobs/<cid>``."""
    bodies = root / "content" / "by-cid"
    blobs = root / "content" / "blobs"
    bodies.mkdir(parents=True, exist_ok=True)
    blobs.mkdir(parents=True, exist_ok=True)
    prefix = str(bodies) + os.sep
    for cid, data in content.bodies.items():
        write_file(f"{prefix}{cid}.md", data)
    for cid, data in content.blobs.items():
        write_file(blobs / cid, data)


@dataclass
class FileStyle:
    """Text-level oddities of single files (faults): CRLF endings, a BOM, an open tail."""

    crlf: tuple[int, int] | None = None  # (day, file number) written with CRLF
    bom: tuple[int, int] | None = None  # (day, file number) starting with a UTF-8 BOM
    tail: bytes = b""  # appended, without newline, to the last file of the last day


@dataclass
class Written:
    lines: int = 0
    files: int = 0
    compressed: int = 0
    indexes: int = 0
    places: dict[str, list[str]] = field(default_factory=dict)


def store_file(path: Path, text: bytes, gz: bool) -> tuple[int, str]:
    """Write ``text`` to ``path``, gzip-compressed if ``gz``; returns the stored size and
    sha256. Runs in worker threads: zlib, hashlib and writes release the GIL."""
    stored = gzip.compress(text, compresslevel=GZIP_LEVEL, mtime=0) if gz else text
    write_file(path, stored)
    return len(stored), hashlib.sha256(stored).hexdigest()


@dataclass
class _DayFiles:
    day: DayLines
    directory: Path
    files: list[tuple[str, int, Future]]  # name, lines, future of store_file


def write_events(
    root: Path,
    days: list[DayLines],
    layout: Layout,
    rng: random.Random,
    style: FileStyle,
    index_faults: dict[int, list[str]],
    fault_rng: random.Random | None,
    pool: ThreadPoolExecutor,
) -> Written:
    """Every day's files and, for closed days, its index.json; records fault places.

    Files are compressed and written by ``pool``; a day's index.json is written once
    its files are (at most three days in flight).
    """
    written = Written()
    in_flight: list[_DayFiles] = []
    for day in days:
        directory = layout.directory(root, day.index, day.day)
        directory.mkdir(parents=True, exist_ok=True)
        relative = directory.relative_to(root).as_posix()
        gz = layout.compressed(day.index)
        cuts = file_cuts(rng, len(day.lines))
        if not cuts and style.tail and day.index == len(days) - 1:
            cuts = [(0, 0)]  # the file being written holds only its unfinished line
        files = []
        for number, (start, end) in enumerate(cuts, start=1):
            name = f"{number:03d}.jsonl" + (".gz" if gz else "")
            here = (day.index, number)
            newline = b"\r\n" if style.crlf == here else b"\n"
            text = newline.join(day.lines[start:end]) + newline if end > start else b""
            lines = end - start
            if style.bom == here:
                text = b"\xef\xbb\xbf" + text
                written.places.setdefault("bom_file", []).append(f"{relative}/{name}")
            if style.crlf == here:
                written.places.setdefault("crlf_file", []).append(f"{relative}/{name}")
            if style.tail and day.index == len(days) - 1 and number == len(cuts):
                text += style.tail
                lines += 1
                place = f"{relative}/{name}:{lines}"
                written.places.setdefault("truncated_last_line", []).append(place)
            for position, tag in sorted(day.tags.items()):
                if start <= position < end:
                    place = f"{relative}/{name}:{position - start + 1}"
                    written.places.setdefault(tag, []).append(place)
            files.append((name, lines, pool.submit(store_file, directory / name, text, gz)))
            written.lines += lines
            written.files += 1
            written.compressed += gz
        in_flight.append(_DayFiles(day, directory, files))
        if len(in_flight) > 3:
            _finish_day(root, in_flight.pop(0), layout, index_faults, fault_rng, written)
    for pending in in_flight:
        _finish_day(root, pending, layout, index_faults, fault_rng, written)
    return written


def _finish_day(
    root: Path,
    pending: _DayFiles,
    layout: Layout,
    index_faults: dict[int, list[str]],
    fault_rng: random.Random | None,
    written: Written,
) -> None:
    """Wait for a day's files; write its index.json if the day is closed."""
    from pipelines.sample.faults import break_index

    listed: dict[str, dict] = {}
    for name, lines, future in pending.files:
        size, digest = future.result()
        listed[name] = {"lines": lines, "bytes": size, "sha256": digest}
    day = pending.day
    if not layout.closed(day.index):
        return
    index = {"day": day.day.isoformat(), "files": listed}
    index["total_lines"] = sum(entry["lines"] for entry in listed.values())
    relative = pending.directory.relative_to(root).as_posix()
    for fault in index_faults.get(day.index, ()) if fault_rng else ():
        detail = break_index(fault, index, fault_rng)
        written.places.setdefault(fault, []).append(f"{relative}/index.json#{detail}")
    text = orjson.dumps(index, option=orjson.OPT_INDENT_2) + b"\n"
    write_file(pending.directory / "index.json", text)
    written.indexes += 1


# --------------------------------------------------------------------------- public API


def generate_store(
    out: Path,
    events: int = 20_000,
    days: int = 30,
    seed: int = 7,
    start: date = date(2025, 10, 1),
    faults: bool = False,
    max_body_files: int | None = None,
) -> StoreSummary:
    """Write a deterministic sample store into ``out`` and describe it.

    ``events`` is the number of generated events (exact once it exceeds what the accounts
    and rooms alone need, about 2,000); ``days`` recorded days from ``start``;
    ``faults`` adds every bad input of the contract (:mod:`pipelines.sample.faults`).
    ``max_body_files`` is about how many distinct fresh bodies (files) to write (default
    20,000 + 1% of events); beyond, messages repost earlier bodies of their topic.
    Raises NotAStoreError when ``out`` is a non-empty directory that is not a store; a
    previous store there is replaced.
    """
    if events < 1 or days < 1:
        raise ValueError("events and days must be at least 1")
    if faults and days < MIN_FAULT_DAYS:
        raise ValueError(f"faults need at least {MIN_FAULT_DAYS} days (one per index.json fault)")
    out = Path(out)
    prepare_output(out)
    was_enabled = gc.isenabled()
    gc.disable()  # millions of small objects that live until the end: no cycles to find
    try:
        return _generate(out, events, days, seed, start, faults, max_body_files)
    finally:
        if was_enabled:
            gc.enable()


def _generate(
    out: Path,
    events: int,
    days: int,
    seed: int,
    start: date,
    faults: bool,
    max_body_files: int | None,
) -> StoreSummary:
    from pipelines.sample import faults as fault_module

    generator = Generator(events, days, seed, start, max_body_files)
    generator.run()
    clean_events = generator.log.count
    event_types = dict(sorted(generator.log.types.items()))
    day_lines = lay_out(generator.log, generator.clock)
    layout = Layout.of(days)
    style = FileStyle()
    index_faults: dict[int, list[str]] = {}
    fault_rng = random.Random(f"faults:{seed}") if faults else None
    plan = None
    if fault_rng is not None:
        plan = fault_module.plan(generator, day_lines, layout, fault_rng)
        style, index_faults = plan.style, plan.index_faults
    with ThreadPoolExecutor(max_workers=3) as pool:
        content_written = pool.submit(write_content, out, generator.content)
        written = write_events(
            out, day_lines, layout, generator.rng, style, index_faults, fault_rng, pool
        )
        content_written.result()
    places = written.places
    if plan is not None:
        for name, where in fault_module.break_content(out, plan, fault_rng).items():
            places.setdefault(name, []).extend(where)
    fault_places = {name: tuple(places[name]) for name in sorted(places)}
    content_dir = out / "content" / "by-cid"
    summary = StoreSummary(
        events=clean_events,
        lines=written.lines,
        files=written.files,
        compressed_files=written.compressed,
        days=days,
        first_day=start,
        last_day=start + timedelta(days=days - 1),
        archived_days=min(layout.archived_before, days),
        index_files=written.indexes,
        messages=event_types.get("MessageCreated", 0),
        legacy_messages=generator.legacy_messages,
        imported_messages=generator.imported_messages,
        late_events=generator.log.late,
        content_files=sum(
            1 for entry in os.scandir(content_dir) if entry.is_file(follow_symlinks=False)
        ),
        missing_bodies=len(generator.content.missing),
        blob_files=len(generator.content.blobs),
        event_types=event_types,
        faults={name: len(where) for name, where in fault_places.items()},
        fault_places=fault_places,
    )
    write_file(out / MANIFEST, summary.to_json() + b"\n")
    return summary
