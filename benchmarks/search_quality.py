"""Retrieval quality of fts, vector and hybrid search on a small hand-labelled query set.

    .venv/bin/python benchmarks/search_quality.py [--background 3000] [--seed 7] [--show-misses]

28 hand-written target messages are hidden among ``--background`` messages written by
the sample generator's ``compose`` (the same topic vocabularies: databases, rust,
kubernetes, cooking, travel, music, football, gardening, ...), so every target has
look-alike neighbours. 29 hand-written queries each name the one target they are
about, in three kinds: ``keyword`` (shares a rare word or phrase with the target),
``paraphrase`` (shares almost no content word) and ``mixed``. Prints recall@10 (the
target is in the top 10) and MRR@10 per mode and kind. The lake is written straight
as a ``messages`` table under --work and indexed with the production code; the
embeddings table is kept there, so a second run embeds nothing.
"""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.ingest.cid import cid_of
from pipelines.lake.delta import Lake
from pipelines.model.views import CREATED_WEEK, MESSAGES_SCHEMA
from pipelines.sample.generator import COMMON_BODIES, TOPICS, compose
from pipelines.search.api import MODES, Searcher
from pipelines.search.build import update_embeddings, update_index

TARGETS = {
    "t01": "Our Postgres replica fell 40 minutes behind after the bulk import last night",
    "t02": "Rewriting the hot loop with iterators instead of index math removed the bounds checks",
    "t03": "The pod got OOMKilled because the memory limit was set to 256Mi",
    "t04": "Is it normal for a sourdough starter to smell like nail polish remover?",
    "t05": "We missed the last ferry to the island and slept in the car",
    "t06": "Spotted a quokka near the campsite this morning, it stole a biscuit",
    "t07": "My tomato leaves are curling and turning yellow from the bottom up",
    "t08": "The keeper saved two penalties in the shootout and we went through",
    "t09": "I finally replaced the broken string on my grandfather's mandolin",
    "t10": "Jupiter and four of its moons were visible through the small telescope tonight",
    "t11": "Cycling into a headwind for 60 km completely destroyed my legs",
    "t12": "Shooting at f/1.8 gives the portrait a creamy blurred background",
    "t13": "pytest fixtures with scope=session made the suite three times faster",
    "t14": "The deadlock only happens when two transactions update the same rows in opposite order",
    "t15": "Left the lasagna in the oven too long and the cheese turned black",
    "t16": "Our flight was cancelled so we took the overnight bus to Lisbon",
    "t17": "The synth patch uses a slow LFO on the filter cutoff for that wobble",
    "t18": "Applied a fresh layer of compost and mulch around the raspberry canes",
    "t19": "Quarterly budget review moved to Thursday at 3pm in the big meeting room",
    "t20": "The referee showed a red card after just four minutes",
    "t21": "Helm upgrade failed halfway and left the release in a pending state",
    "t22": "I keep getting 'cannot borrow as mutable more than once' in my parser",
    "t23": "The meteor shower peaks after midnight, find a dark spot away from the city",
    "t24": "Chain got really noisy after the rain, time to clean and wax it",
    "t25": "The museum was closed on Mondays so we walked along the river instead",
    "t26": "Our cat knocked the router off the shelf and the whole house lost wifi",
    "t27": "Migrating the schema added a NOT NULL column and locked the table for ten minutes",
    "t28": "Grandma's recipe uses buttermilk to make the pancakes fluffy",
}
QUERIES = [
    ("quokka", "keyword", "t06"),
    ("mandolin string", "keyword", "t09"),
    ("OOMKilled memory limit", "keyword", "t03"),
    ("buttermilk pancakes", "keyword", "t28"),
    ("LFO filter cutoff", "keyword", "t17"),
    ('"red card"', "keyword", "t20"),
    ("Lisbon bus", "keyword", "t16"),
    ("raspberr*", "keyword", "t18"),
    ("database copy lagging behind the primary", "paraphrase", "t01"),
    ("container killed for using too much RAM", "paraphrase", "t03"),
    ("my bread yeast culture has a strange chemical odor", "paraphrase", "t04"),
    ("we could not catch the boat and had to sleep in our vehicle", "paraphrase", "t05"),
    ("goalkeeper heroics decided the match on spot kicks", "paraphrase", "t08"),
    ("saw the largest planet and its satellites with my scope", "paraphrase", "t10"),
    ("riding against strong wind wrecked me", "paraphrase", "t11"),
    ("wide aperture makes the background out of focus", "paraphrase", "t12"),
    ("pet broke the internet equipment at home", "paraphrase", "t26"),
    ("finance meeting rescheduled", "paraphrase", "t19"),
    ("two concurrent writers block each other forever", "paraphrase", "t14"),
    ("burned the topping of my pasta bake", "paraphrase", "t15"),
    ("rust borrow error mutable twice", "mixed", "t22"),
    ("helm release stuck pending", "mixed", "t21"),
    ("tomato leaves yellow", "mixed", "t07"),
    ("meteor shower dark sky", "mixed", "t23"),
    ("noisy bike chain after rain", "mixed", "t24"),
    ("schema migration locked table", "mixed", "t27"),
    ("faster test suite with session fixtures", "mixed", "t13"),
    ("iterators remove bounds checks", "mixed", "t02"),
    ("museum closed on Monday", "mixed", "t25"),
]
PLATFORMS = ("slack", "discord", "telegram", "email")
START = datetime(2025, 10, 1, tzinfo=UTC)


def corpus(background: int, seed: int) -> pl.DataFrame:
    """``messages`` rows: the targets and ``background`` generated messages (deterministic)."""
    rng = random.Random(seed)
    rows = [(mid, text) for mid, text in TARGETS.items()]
    for i in range(background):
        text = (
            rng.choice(COMMON_BODIES) if rng.random() < 0.09 else compose(rng, rng.choice(TOPICS))
        )
        rows.append((f"b{i:06d}", text))
    created = [START + timedelta(minutes=37 * i) for i in range(len(rows))]
    frame = pl.DataFrame(
        {
            "message_id": [mid for mid, _ in rows],
            "account_id": [f"acct_{rng.randrange(50)}" for _ in rows],
            "room_id": [f"room_{rng.randrange(20)}" for _ in rows],
            "platform": [rng.choice(PLATFORMS) for _ in rows],
            "created_at": created,
            "body": [text for _, text in rows],
            "content_cid": [cid_of(text.encode()) for _, text in rows],
        }
    ).with_columns(
        thread_id=pl.col("message_id"),
        body_status=pl.lit("ok"),
        body_utf8_valid=pl.lit(True),
        deleted=pl.lit(False),
        edit_count=pl.lit(0),
        version=pl.lit(1),
        created_week=CREATED_WEEK,
    )
    missing = [
        pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in MESSAGES_SCHEMA.items()
        if name not in frame.columns
    ]
    return frame.with_columns(missing).select(MESSAGES_SCHEMA.names()).cast(MESSAGES_SCHEMA)


def evaluate(searcher: Searcher, show_misses: bool) -> dict[tuple[str, str], tuple[float, float]]:
    """(mode, kind) -> (recall@10, MRR@10); kind "all" over every query."""
    hits: dict[tuple[str, str], list[float]] = {}
    ranks: dict[tuple[str, str], list[float]] = {}
    for mode in MODES:
        for query, kind, target in QUERIES:
            found = searcher.search(query, mode, 10)["message_id"].to_list()
            rank = found.index(target) + 1 if target in found else None
            for group in (kind, "all"):
                hits.setdefault((mode, group), []).append(1.0 if rank else 0.0)
                ranks.setdefault((mode, group), []).append(1.0 / rank if rank else 0.0)
            if show_misses and rank is None:
                print(f"  miss  {mode:<6} {kind:<10} {query!r} -> {target}; top 3: {found[:3]}")
    return {
        key: (sum(values) / len(values), sum(ranks[key]) / len(ranks[key]))
        for key, values in hits.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--background", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=Path("/tmp/search-quality"))
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    lake = Lake(args.work / f"lake-{args.background}-{args.seed}")
    messages = corpus(args.background, args.seed)
    lake.write("messages", messages, partition_by=["created_week"])
    embedded = update_embeddings(lake)
    update_index(lake)
    print(
        f"{messages.height} messages ({len(TARGETS)} targets, {args.background} generated), "
        f"{embedded.embedded} bodies embedded now, {len(QUERIES)} queries"
    )
    scores = evaluate(Searcher.open(lake), args.show_misses)
    kinds = ["keyword", "paraphrase", "mixed", "all"]
    counts = {kind: sum(1 for _, k, _ in QUERIES if k == kind) for kind in kinds[:-1]}
    counts["all"] = len(QUERIES)
    print("recall@10 (MRR@10)  " + "  ".join(f"{k} ({counts[k]})".ljust(15) for k in kinds))
    for mode in MODES:
        cells = [f"{scores[mode, k][0]:.2f} ({scores[mode, k][1]:.2f})".ljust(15) for k in kinds]
        print(f"{mode:<19} " + "  ".join(cells))


if __name__ == "__main__":
    main()
