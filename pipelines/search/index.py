"""Full-text index of the documents (tantivy): BM25, phrases, prefixes, filters, snippets.

One tantivy document per search document (see ``documents.py``), stored under
``<lake>/search/fulltext``. Updates delete by ``message_id`` term and add, so
applying the same change twice gives the same index.

Query syntax (:func:`parse_query`), words are stemmed (English) and case/accent folded:

- ``word``: may match; more and rarer matching words rank higher (BM25);
- ``"a phrase"``: must match as consecutive words; ``+word`` must match;
- ``pref*``: words starting with ``pref`` (the 64 most frequent such words; matched
  against the unstemmed words of ``body_words``, so ``synthesiz*`` finds "synthesizer");
- ``-word`` / ``-"a phrase"``: must not match.

Anything else (punctuation, ``:``, parentheses) is just text: no query is a syntax error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import tantivy
from tantivy import Filter, Occur, Query, TextAnalyzerBuilder, Tokenizer

from pipelines.search.documents import Filters

ANALYZER = "body_en"
WORDS_ANALYZER = "body_words"
PREFIX_EXPANSIONS = 64
SNIPPET_CHARS = 160
HIGHLIGHT = ("**", "**")
RAW_FIELDS = ("message_id", "platform", "room_id", "account_id", "thread_id")
_TOKEN = re.compile(r'([+-]?)(?:"([^"]*)"?|(\S+))')


def _analyzer(stem: bool) -> tantivy.TextAnalyzer:
    builder = (
        TextAnalyzerBuilder(Tokenizer.simple())
        .filter(Filter.remove_long(40))
        .filter(Filter.lowercase())
        .filter(Filter.ascii_fold())
    )
    if stem:
        builder = builder.filter(Filter.stemmer("english"))
    return builder.build()


_STEMMED = _analyzer(stem=True)
_FOLDED = _analyzer(stem=False)


def schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    for name in RAW_FIELDS:
        builder.add_text_field(name, stored=True, tokenizer_name="raw")
    builder.add_text_field("body", stored=True, tokenizer_name=ANALYZER)
    # the same text, folded but not stemmed, for prefix queries (not stored)
    builder.add_text_field("body_words", tokenizer_name=WORDS_ANALYZER, index_option="freq")
    builder.add_integer_field("created_at", stored=True, indexed=True, fast=True)
    return builder.build()


@dataclass(frozen=True)
class Clause:
    """One part of a query: ``occur`` is "should", "must" or "must_not"; ``kind`` is
    "term", "phrase" or "prefix"; ``terms`` are analysed tokens."""

    occur: str
    kind: str
    terms: tuple[str, ...]


def parse_query(text: str) -> list[Clause]:
    """The clauses of a query string (see the module docstring); never fails."""
    clauses: list[Clause] = []
    for sign, phrase, word in _TOKEN.findall(text):
        occur = {"+": "must", "-": "must_not"}.get(sign, "should")
        if phrase:
            terms = tuple(_STEMMED.analyze(phrase))
            if len(terms) > 1:
                clauses.append(Clause("must" if occur == "should" else occur, "phrase", terms))
            elif terms:
                clauses.append(Clause(occur, "term", terms))
            continue
        if not word:
            continue
        if word.endswith("*") and len(word.rstrip("*")) > 0:
            tokens = _FOLDED.analyze(word.rstrip("*"))
            for token in tokens[:-1]:
                clauses.extend(Clause(occur, "term", (t,)) for t in _STEMMED.analyze(token))
            if tokens:
                clauses.append(Clause(occur, "prefix", (tokens[-1],)))
            continue
        terms = tuple(_STEMMED.analyze(word))
        if len(terms) > 1:  # e.g. "borrow-checker": its words in a row
            clauses.append(Clause(occur, "phrase", terms))
        elif terms:
            clauses.append(Clause(occur, "term", terms))
    return clauses


def plain_text(query: str) -> str:
    """The query as plain words for the embedding model: no quotes, ``+``, ``*``, and no
    ``-excluded`` parts."""
    parts = []
    for sign, phrase, word in _TOKEN.findall(query):
        if sign != "-" and (phrase or word):
            parts.append(phrase or word.rstrip("*"))
    return " ".join(part for part in parts if part)


class FullTextIndex:
    """A tantivy index in a directory (created if absent)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.schema = schema()
        self.index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
        self.index.register_tokenizer(ANALYZER, _STEMMED)
        self.index.register_tokenizer(WORDS_ANALYZER, _FOLDED)

    @property
    def num_docs(self) -> int:
        self.index.reload()
        return self.index.searcher().num_docs

    def apply(self, stale_ids: Sequence[str], added: pl.DataFrame) -> None:
        """Delete the documents of ``stale_ids``, then add ``added`` (with ``body``); commit."""
        if not stale_ids and added.is_empty():
            return
        threads = 2 if added.height > 50_000 else 1
        writer = self.index.writer(128_000_000 * threads, threads)
        for message_id in stale_ids:
            writer.delete_documents_by_term("message_id", message_id)
        columns = [*RAW_FIELDS, "body"]
        micros = added["created_at"].dt.epoch("us").to_list()
        for row, created in zip(added.select(columns).iter_rows(), micros, strict=True):
            fields = {name: value for name, value in zip(columns, row, strict=True) if value}
            fields["body_words"] = fields["body"]
            writer.add_document(tantivy.Document(**fields, created_at=created))
        writer.commit()
        writer.wait_merging_threads()

    def clear(self) -> None:
        writer = self.index.writer(50_000_000, 1)
        writer.delete_all_documents()
        writer.commit()
        writer.wait_merging_threads()

    # ------------------------------------------------------------------ queries

    def _clause_query(self, searcher: tantivy.Searcher, clause: Clause, snippet: bool) -> Query:
        """The clause's query; with ``snippet``, prefix expansions are given as the stems
        of the ``body`` field, which is the one snippets are cut from."""
        if clause.kind == "term":
            return Query.term_query(self.schema, "body", clause.terms[0], index_option="freq")
        if clause.kind == "phrase":
            return Query.phrase_query(self.schema, "body", list(clause.terms))
        words = sorted(
            word
            for word, _ in searcher.terms_with_prefix(
                "body_words", clause.terms[0], limit=PREFIX_EXPANSIONS
            )
        )
        if not words:
            return Query.empty_query()
        if snippet:
            field, terms = "body", sorted({stem for w in words for stem in _STEMMED.analyze(w)})
        else:
            field, terms = "body_words", words
        return Query.boolean_query(
            [
                (Occur.Should, Query.term_query(self.schema, field, t, index_option="freq"))
                for t in terms
            ]
        )

    def text_query(
        self, searcher: tantivy.Searcher, clauses: Iterable[Clause], snippet: bool = False
    ) -> Query | None:
        """The query of ``clauses`` without filters; None when nothing can match."""
        occurs = {"should": Occur.Should, "must": Occur.Must, "must_not": Occur.MustNot}
        parts = [(occurs[c.occur], self._clause_query(searcher, c, snippet)) for c in clauses]
        if not any(occur != Occur.MustNot for occur, _ in parts):
            return None
        return Query.boolean_query(parts)

    def _filter_queries(self, filters: Filters) -> list[tuple[Occur, Query]]:
        out = []
        for field, value in (
            ("platform", filters.platform),
            ("room_id", filters.room),
            ("account_id", filters.account),
        ):
            if value is not None:
                out.append(Query.term_query(self.schema, field, value))
        lower, upper = filters.bounds_us()
        if lower is not None or upper is not None:
            out.append(
                Query.range_query(
                    self.schema,
                    "created_at",
                    tantivy.FieldType.Integer,
                    lower_bound=lower,
                    upper_bound=upper,
                    include_upper=upper is None,
                )
            )
        return [(Occur.Must, Query.const_score_query(q, 0.0)) for q in out]

    def search(
        self, query: str, k: int = 10, filters: Filters | None = None, snippets: bool = True
    ) -> pl.DataFrame:
        """The ``k`` best documents for ``query`` by BM25 (ties: newest first, then by
        message_id).

        Columns: message_id, score, platform, room_id, account_id, thread_id,
        created_at, snippet (matches wrapped in ``**``; null unless ``snippets``).
        """
        self.index.reload()
        searcher = self.index.searcher()
        clauses = parse_query(query)
        text = self.text_query(searcher, clauses)
        if text is None or k <= 0:
            return _frame([])
        full = Query.boolean_query(
            [(Occur.Must, text), *self._filter_queries(filters or Filters())]
        )
        docs = _best(searcher, full, k)
        if not snippets:
            return _frame([_row(doc, score, None) for score, doc in docs])
        positive = [c for c in clauses if c.occur != "must_not"]
        snippet_query = self.text_query(searcher, positive, snippet=True)
        generator = tantivy.SnippetGenerator.create(searcher, snippet_query, self.schema, "body")
        generator.set_max_num_chars(SNIPPET_CHARS)
        return _frame([_row(doc, score, _snippet(generator, doc)) for score, doc in docs])

    def snippets(self, query: str, message_ids: Sequence[str]) -> dict[str, str]:
        """Snippets of the bodies of ``message_ids`` for ``query`` (leading text when no
        query word occurs); ids not in the index are left out."""
        if not message_ids:
            return {}
        self.index.reload()
        searcher = self.index.searcher()
        found = searcher.search(
            Query.term_set_query(self.schema, "message_id", list(message_ids)),
            len(message_ids),
        ).hits
        positive = [c for c in parse_query(query) if c.occur != "must_not"]
        text = self.text_query(searcher, positive, snippet=True)
        generator = None
        if text is not None:
            generator = tantivy.SnippetGenerator.create(searcher, text, self.schema, "body")
            generator.set_max_num_chars(SNIPPET_CHARS)
        out = {}
        for _, address in found:
            doc = searcher.doc(address)
            out[doc.get_first("message_id")] = _snippet(generator, doc)
        return out


def _best(searcher: tantivy.Searcher, query: Query, k: int) -> list[tuple[float, tantivy.Document]]:
    """The ``k`` best hits as (score, document), ordered by score, then newest first, then
    message_id: the index's internal order (which differs between an incremental and a
    rebuilt index) never decides. Every hit tying with the k-th is fetched (thousands for
    a common body like "thanks!"), but only their ``created_at`` fast field is read."""
    limit = k + 16
    while True:
        hits = searcher.search(query, limit, count=False).hits
        if len(hits) <= k or len(hits) < limit or hits[-1][0] < hits[k - 1][0]:
            break
        limit *= 4
    if len(hits) > k:
        hits = [hit for hit in hits if hit[0] >= hits[k - 1][0]]
    created = searcher.fast_field_values("created_at", [address for _, address in hits])
    ranked = sorted(zip(hits, created, strict=True), key=lambda h: (-h[0][0], -(h[1] or 0)))
    if len(ranked) > k:  # keep every hit that ties with the k-th on score and time
        last = (ranked[k - 1][0][0], ranked[k - 1][1])
        ranked = [h for i, h in enumerate(ranked) if i < k or (h[0][0], h[1]) == last]
    docs = [(score, created, searcher.doc(address)) for (score, address), created in ranked]
    docs.sort(key=lambda d: (-d[0], -(d[1] or 0), d[2].get_first("message_id")))
    return [(score, doc) for score, _, doc in docs[:k]]


def _snippet(generator: tantivy.SnippetGenerator | None, doc: tantivy.Document) -> str:
    body = doc.get_first("body") or ""
    if generator is not None:
        snippet = generator.snippet_from_doc(doc)
        fragment = snippet.fragment()
        if fragment and snippet.highlighted():
            return _flat(_highlight(fragment, snippet.highlighted()))
    return _flat(_lead(body))


def _highlight(fragment: str, ranges: Iterable) -> str:
    """``fragment`` with the byte ``ranges`` (tantivy offsets) wrapped in HIGHLIGHT marks."""
    data = fragment.encode("utf-8")
    out, at = [], 0
    for r in sorted(ranges, key=lambda r: r.start):
        out += [data[at : r.start], HIGHLIGHT[0].encode(), data[r.start : r.end]]
        out.append(HIGHLIGHT[1].encode())
        at = r.end
    out.append(data[at:])
    return b"".join(out).decode("utf-8", errors="replace")


def _lead(body: str) -> str:
    if len(body) <= SNIPPET_CHARS:
        return body
    cut = body.rfind(" ", 0, SNIPPET_CHARS)
    return body[: cut if cut > SNIPPET_CHARS // 2 else SNIPPET_CHARS].rstrip() + " …"


def _flat(text: str) -> str:
    return " ".join(text.split())


def _row(doc: tantivy.Document, score: float, snippet: str | None) -> dict:
    row = {name: doc.get_first(name) for name in RAW_FIELDS}
    row.update(score=float(score), created_at=doc.get_first("created_at"), snippet=snippet)
    return row


FULLTEXT_RESULT_SCHEMA = pl.Schema(
    {
        "message_id": pl.String(),
        "score": pl.Float64(),
        "platform": pl.String(),
        "room_id": pl.String(),
        "account_id": pl.String(),
        "thread_id": pl.String(),
        "created_at": pl.Int64(),
        "snippet": pl.String(),
    }
)


def _frame(rows: list[dict]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=FULLTEXT_RESULT_SCHEMA)
    return frame.with_columns(
        created_at=pl.col("created_at").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    )
