"""Search over live messages: full text, vectors, hybrid, filters and incremental upkeep.

The lake is built by the real pipeline (store files -> ingest -> projections) from a
small hand-written corpus; a second day deletes, edits and adds messages.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from conftest import DAY0, StoreWriter, created, ms

from pipelines.assets import search as search_assets
from pipelines.ingest.load import load_content, load_event_days
from pipelines.ingest.store import list_days
from pipelines.lake.delta import Lake
from pipelines.lake.projections import refresh_projections
from pipelines.resources import LakehouseResource
from pipelines.search import open_searcher, search, update_embeddings, update_index
from pipelines.search.build import EmbeddingUpdate, IndexUpdate
from pipelines.search.documents import DOCUMENTS, Filters
from pipelines.search.embed import EMBEDDINGS, Embedder
from pipelines.search.index import parse_query, plain_text
from pipelines.search.rank import reciprocal_rank_fusion

DAY1 = DAY0 + timedelta(days=1)
LATER = DAY0 + timedelta(days=40)  # another created_week partition

# id: ("platform room account", text); all created on DAY0 but m_rust_later (LATER)
CORPUS = {
    "m_rust": ("discord room_rust acct_a", "The borrow checker rejected my code until I cloned it"),
    "m_tokio": ("discord room_rust acct_b", "Tokio tasks need Send futures when you spawn them"),
    "m_vacuum": (
        "slack room_db acct_a",
        "Postgres vacuum is running for hours on the orders table",
    ),
    "m_index": (
        "slack room_db acct_c",
        "Adding a composite index made the slow query ten times faster",
    ),
    "m_bread": ("telegram room_food acct_b", "Feed the sourdough starter twice a day with flour"),
    "m_risotto": (
        "telegram room_food acct_c",
        "My risotto needs more parmesan and a splash of wine",
    ),
    "m_train": ("telegram room_travel acct_a", "The night train from Vienna to Venice was cheaper"),
    "m_garden": (
        "telegram room_garden acct_b",
        "Tomato seedlings are ready to move into raised beds",
    ),
    "m_synth": (
        "discord room_music acct_c",
        "Picked up a used analog synthesizer with a great filter",
    ),
    "m_var": ("slack room_sport acct_a", "The referee disallowed the goal after a long VAR review"),
    "m_pod": (
        "slack room_ops acct_b",
        "The pod keeps restarting with CrashLoopBackOff after deploy",
    ),
    "m_quokka": ("telegram room_travel acct_c", "Spotted a quokka near the campsite this morning"),
    "m_thanks1": ("slack room_db acct_b", "thanks for the help!"),
    "m_thanks2": ("discord room_rust acct_c", "thanks for the help!"),
    "m_secret": ("discord room_music acct_a", "Secret xylophone tuning notes for the recital"),
    "m_jam": ("telegram room_food acct_a", "I love marmalade on toast every morning"),
    "m_rust_later": ("discord room_rust acct_b", "Lifetimes and the borrow checker make sense now"),
}
# A paraphrase that shares almost no word with its message, and that message.
PARAPHRASES = {
    "how often should I feed my bread culture": "m_bread",
    "container crashes again and again in kubernetes": "m_pod",
    "cheap rail journey between Austrian and Italian cities": "m_train",
    "database maintenance job takes forever": "m_vacuum",
    "video assistant cancelled a goal": "m_var",
}
NEW_TEXT = "I love persimmon jam on toast every morning"
NEW_MESSAGE = "The quarterly pierogi night moves to Thursday"


def _created(w: StoreWriter, mid: str, seconds: int) -> dict:
    (platform, room, account), text = CORPUS[mid][0].split(), CORPUS[mid][1]
    day = LATER if mid == "m_rust_later" else DAY0
    return created(
        w, mid, text, day, seconds, account=account, room=room, source={"platform": platform}
    )


def project(store: StoreWriter, lake: Lake, days: list[date] | None = None) -> None:
    """Ingest ``days`` (every day of the store if None) and refresh the projections."""
    load_event_days(lake, store.root, days or list_days(store.root))
    load_content(lake, store.root)
    refresh_projections(lake)


def write_corpus(w: StoreWriter) -> None:
    lines = [_created(w, mid, 60 * seconds) for seconds, mid in enumerate(CORPUS)]
    w.write(DAY0, [line for line in lines if line["aggregate_id"] != "m_rust_later"])
    w.write(LATER, [line for line in lines if line["aggregate_id"] == "m_rust_later"])


def write_second_day(w: StoreWriter) -> None:
    """Delete m_secret, edit m_jam, add m_new and m_repost (m_rust's body again)."""
    edit = {"content_cid": w.body(NEW_TEXT), "edited_at": ms(DAY1, 10)}
    w.write(
        DAY1,
        [
            w.event("MessageDeleted", "message", "m_secret", 2, {"deleted_at": ms(DAY1, 5)}, DAY1),
            w.event("MessageEdited", "message", "m_jam", 2, edit, DAY1),
            created(w, "m_new", NEW_MESSAGE, DAY1, 20, account="acct_c", room="room_food"),
            created(w, "m_repost", CORPUS["m_rust"][1], DAY1, 30, room="room_rust"),
        ],
        name="002.jsonl",
    )


@dataclass
class Built:
    lake: Lake
    first: tuple[EmbeddingUpdate, IndexUpdate]
    again: tuple[EmbeddingUpdate, IndexUpdate]
    after_changes: tuple[EmbeddingUpdate, IndexUpdate]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture(scope="module")
def built(tmp_path_factory, embedder) -> Built:
    """Corpus built and indexed, indexed again, then a second day applied incrementally."""
    root = tmp_path_factory.mktemp("search")
    store, lake = StoreWriter(root / "store"), Lake(root / "lake")
    write_corpus(store)
    project(store, lake)
    first = (update_embeddings(lake, embedder), update_index(lake))
    again = (update_embeddings(lake, embedder), update_index(lake))
    write_second_day(store)
    project(store, lake, [DAY1])
    after = (update_embeddings(lake, embedder), update_index(lake))
    return Built(lake, first, again, after)


def ids(frame: pl.DataFrame) -> list[str]:
    return frame["message_id"].to_list()


def test_exact_rare_word_finds_its_message(built):
    found = search(built.lake, "quokka", mode="fts")
    assert ids(found) == ["m_quokka"]
    assert "**quokka**" in found["snippet"][0]
    assert found["rank"].to_list() == [1]
    row = found.row(0, named=True)
    assert (row["account_id"], row["room_id"], row["platform"]) == (
        "acct_c",
        "room_travel",
        "telegram",
    )


def test_phrase_and_prefix_queries(built):
    assert set(ids(search(built.lake, '"borrow checker"', mode="fts"))) == {
        "m_rust",
        "m_repost",
        "m_rust_later",
    }
    assert ids(search(built.lake, '"checker borrow"', mode="fts")) == []
    assert ids(search(built.lake, "synthesiz*", mode="fts")) == ["m_synth"]
    assert ids(search(built.lake, "crashloop*", mode="fts")) == ["m_pod"]
    assert ids(search(built.lake, '"borrow checker" -lifetimes', mode="fts")) == sorted(
        ["m_rust", "m_repost"]
    )


def test_query_parsing_never_fails():
    clauses = parse_query('+tokio "Borrow Checkers" -vacuum synth* what\'s up? (a AND')
    kinds = [(c.occur, c.kind, c.terms) for c in clauses]
    assert ("must", "term", ("tokio",)) in kinds
    assert ("must", "phrase", ("borrow", "checker")) in kinds
    assert ("must_not", "term", ("vacuum",)) in kinds
    assert ("should", "prefix", ("synth",)) in kinds
    assert parse_query("") == [] and parse_query('"" * -') == []
    assert plain_text('+tokio "borrow checker" synth* -vacuum') == "tokio borrow checker synth"


def test_deleted_message_is_never_returned(built):
    secret = CORPUS["m_secret"][1]
    for mode in ("fts", "vector", "hybrid"):
        assert "m_secret" not in ids(search(built.lake, secret, mode=mode, k=50)), mode
    assert ids(search(built.lake, "xylophone", mode="fts")) == []
    docs = built.lake.read(DOCUMENTS)
    assert "m_secret" not in docs["message_id"].to_list()


def test_edited_message_is_found_by_its_new_text_only(built):
    assert ids(search(built.lake, "persimmon", mode="fts")) == ["m_jam"]
    assert ids(search(built.lake, "marmalade", mode="fts")) == []
    best = search(built.lake, NEW_TEXT, mode="vector", k=1)
    assert ids(best) == ["m_jam"] and best["score"][0] > 0.99
    snippets = search(built.lake, "toast", mode="hybrid", k=3)["snippet"].to_list()
    assert any("persimmon" in snippet for snippet in snippets)


def test_filters_restrict_results(built):
    lake = built.lake
    everywhere = set(ids(search(lake, "borrow checker", mode="fts")))
    assert {"m_rust", "m_repost", "m_rust_later"} <= everywhere
    assert set(ids(search(lake, "borrow checker", mode="fts", account="acct_b"))) == {
        "m_rust_later"
    }
    assert set(ids(search(lake, "borrow checker", mode="fts", until=DAY0))) == {"m_rust"}
    assert set(ids(search(lake, "borrow checker", mode="fts", since=LATER))) == {"m_rust_later"}
    assert set(ids(search(lake, "borrow checker", mode="fts", since=DAY1, until=DAY1))) == {
        "m_repost"
    }
    for mode in ("fts", "vector", "hybrid"):
        found = search(lake, "thanks for the help", mode=mode, platform="slack", k=20)
        assert set(found["platform"]) == {"slack"}, mode
        assert "m_thanks1" in ids(found) and "m_thanks2" not in ids(found), mode
        in_room = search(lake, "toast", mode=mode, room="room_food", k=20)
        assert set(in_room["room_id"]) <= {"room_food"} and "m_jam" in ids(in_room), mode
    assert ids(search(lake, "quokka", mode="fts", platform="discord")) == []


def test_bodies_are_embedded_once(built):
    first, _ = built.first
    distinct = len({text for _, text in CORPUS.values()})
    assert first.embedded == distinct == len(CORPUS) - 1  # two messages say "thanks"
    again_embeddings, again_index = built.again
    assert again_embeddings.embedded == 0 and again_embeddings.weeks == []
    assert (again_index.added, again_index.removed, again_index.rebuilt) == (0, 0, False)
    changed_embeddings, changed_index = built.after_changes
    # the edit's new text and the new message; the repost reuses m_rust's vector
    assert changed_embeddings.embedded == 2
    assert built.lake.read(EMBEDDINGS).height == distinct + 2
    assert (
        changed_embeddings.weeks == changed_index.weeks == [DAY0 - timedelta(days=DAY0.weekday())]
    )
    assert not changed_index.rebuilt
    assert changed_index.removed == 2  # m_secret deleted, m_jam's old body
    assert changed_index.added == 3  # m_jam's new body, m_new, m_repost
    assert changed_index.vectors_removed == 2 and changed_index.vectors_added == 2


def test_a_rebuild_embeds_nothing_and_matches_the_incremental_index(built, tmp_path, embedder):
    copy = Lake(tmp_path / "lake")
    shutil.copytree(built.lake.root, copy.root)
    assert update_embeddings(copy, embedder).embedded == 0
    rebuilt = update_index(copy, rebuild=True)
    assert rebuilt.rebuilt and rebuilt.state == built.after_changes[1].state
    assert (
        copy.read(DOCUMENTS)
        .sort("message_id")
        .equals(built.lake.read(DOCUMENTS).sort("message_id"))
    )
    for query in ("borrow checker", "toast", "thanks"):
        for mode in ("fts", "vector"):
            assert ids(search(copy, query, mode=mode)) == ids(search(built.lake, query, mode=mode))


def test_an_index_of_an_earlier_layout_is_rebuilt(built, tmp_path, embedder):
    copy = Lake(tmp_path / "lake")
    shutil.copytree(built.lake.root, copy.root)
    # documents as an earlier release wrote them: partitioned by month, not by week
    documents = copy.read(DOCUMENTS).with_columns(
        created_month=pl.col("created_week").dt.strftime("%Y-%m")
    )
    copy.write(DOCUMENTS, documents, partition_by=["created_month"])
    update = update_index(copy)
    assert update.rebuilt and update.state == built.after_changes[1].state
    assert copy.partition_columns(DOCUMENTS) == ["created_week"]


def test_vector_search_finds_paraphrases(built):
    for query, expected in PARAPHRASES.items():
        found = ids(search(built.lake, query, mode="vector", k=3))
        assert expected in found, (query, found)


def test_hybrid_fuses_both_rankings(built):
    query = "how often should I feed my bread culture"
    searcher = open_searcher(built.lake)
    text = ids(searcher.fulltext.search(query, 50, Filters()))
    vector = ids(searcher.nearest(query, 50, Filters()))
    hybrid = search(built.lake, query, mode="hybrid", k=5)
    expected = reciprocal_rank_fusion([text, vector])[:5]
    assert ids(hybrid) == [m for m, _ in expected]
    assert hybrid["score"].to_list() == pytest.approx([s for _, s in expected])
    assert ids(hybrid)[0] == "m_bread"  # first in both rankings
    assert hybrid["rank"].to_list() == [1, 2, 3, 4, 5]
    assert hybrid["snippet"].null_count() == 0


def test_reciprocal_rank_fusion():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60)
    assert [m for m, _ in fused] == ["a", "c", "b"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert reciprocal_rank_fusion([["x"], ["y"]]) == [("x", 1 / 61), ("y", 1 / 61)]


def test_assets_materialize(tmp_path):
    w = StoreWriter(tmp_path / "store")
    w.write(DAY0, [_created(w, "m_quokka", 0), _created(w, "m_bread", 60)])
    lake = Lake(tmp_path / "lake")
    project(w, lake)
    resources = {"lakehouse": LakehouseResource(store_dir=str(w.root), lake_dir=str(lake.root))}
    result = dg.materialize(
        [search_assets.embeddings, search_assets.search_index], resources=resources
    )
    assert result.success
    meta = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert meta["embeddings"]["embedded"].value == 2
    assert meta["search_index"]["dagster/row_count"].value == 2
    assert meta["search_index"]["refresh"].value == "full rebuild"
    assert ids(search(lake, "quokka", mode="fts")) == ["m_quokka"]


def test_search_without_an_index_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no search index"):
        search(Lake(tmp_path / "empty"), "anything")


def test_cli_prints_ranked_results(built, capsys):
    from pipelines.search.__main__ import main

    assert main(["quokka", "--mode", "fts", "--lake", str(built.lake.root)]) == 0
    out = capsys.readouterr().out
    assert "m_quokka" in out and "acct_c" in out and "room_travel" in out
    assert "**quokka**" in out and f"{DAY0:%Y-%m-%d}" in out


def test_lake_root_path_is_accepted(built):
    assert ids(search(Path(built.lake.root), "quokka", mode="fts")) == ["m_quokka"]
    assert ids(search(str(built.lake.root), "quokka", mode="fts")) == ["m_quokka"]
