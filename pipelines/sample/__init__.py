"""The sample-store generator: ``python -m pipelines.sample --out DIR`` or ``generate_store``.

Writes a deterministic message store in the format of docs/message-store.md, with
``faults=True`` also every bad input the contract lists (see ``faults``).
"""

from pipelines.sample.generator import NotAStoreError, StoreSummary, cid_of, generate_store

__all__ = ["NotAStoreError", "StoreSummary", "cid_of", "generate_store"]
