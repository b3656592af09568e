"""Search over the live messages: full text (tantivy BM25), embeddings (MiniLM) and both
fused by reciprocal rank fusion.

- :func:`search` (``api.py``): the query API; ``python -m pipelines.search`` the CLI.
- :func:`update_embeddings`, :func:`update_index` (``build.py``): incremental upkeep,
  run by the ``embeddings`` and ``search_index`` assets.

Design and measurements: docs/search.md.
"""

from pipelines.search.api import IndexMissingError, Searcher, open_searcher, search
from pipelines.search.build import update_embeddings, update_index

__all__ = [
    "IndexMissingError",
    "Searcher",
    "open_searcher",
    "search",
    "update_embeddings",
    "update_index",
]
