"""Scan the content-addressed store: verify each file against the CID in its name.

``content/by-cid/<cid>.md`` holds message bodies and ``content/blobs/<cid>`` holds
attachments. Symbolic links, directories and names that are not CIDs are
reported and never opened. Files already verified are not read again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.ingest.cid import InvalidCid, cid_of, decode_cid

CONTENT_SCHEMA = pl.Schema(
    {
        "cid": pl.String(),
        "kind": pl.String(),
        "path": pl.String(),
        "size": pl.Int64(),
        "status": pl.String(),
        "text": pl.String(),
        "utf8_valid": pl.Boolean(),
    }
)
CONTENT_REPORT_SCHEMA = pl.Schema(
    {"path": pl.String(), "reason": pl.String(), "detail": pl.String()}
)
FOLDERS = (("by-cid", "body", ".md"), ("blobs", "blob", ""))


@dataclass
class ContentScan:
    """Rows for files read this scan (``content``) and for everything set aside (``reports``)."""

    content: pl.DataFrame
    reports: pl.DataFrame
    skipped_known: int


def _cid_from_name(name: str, suffix: str) -> str | None:
    if suffix and not name.endswith(suffix):
        return None
    cid = name[: len(name) - len(suffix)] if suffix else name
    try:
        decode_cid(cid)
    except InvalidCid:
        return None
    return cid


def verify_file(data: bytes, cid: str, kind: str, path: str) -> dict:
    """One content row: the file's status against its CID and, for a good body, its text."""
    ok = hashlib.sha256(data).digest() == decode_cid(cid)
    text = utf8_valid = None
    if ok and kind == "body":
        try:
            text, utf8_valid = data.decode("utf-8"), True
        except UnicodeDecodeError:
            text, utf8_valid = data.decode("utf-8", errors="replace"), False
    return {
        "cid": cid,
        "kind": kind,
        "path": path,
        "size": len(data),
        "status": "ok" if ok else "hash_mismatch",
        "text": text,
        "utf8_valid": utf8_valid,
    }


def scan_content(store: Path, known: Mapping[str, str]) -> ContentScan:
    """Verify the content files not yet known as "ok".

    ``known`` maps a store-relative path to the status it was ingested with.
    """
    store = store.resolve()
    rows, reports, skipped = [], [], 0
    for folder, kind, suffix in FOLDERS:
        directory = store / "content" / folder
        if not directory.is_dir() or directory.is_symlink():
            continue
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = f"content/{folder}/{entry.name}"
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    inside = Path(target).is_relative_to(store)
                    reason = "symlink" if inside else "outside_store"
                    reports.append({"path": path, "reason": reason, "detail": f"-> {target}"})
                    continue
                if not entry.is_file(follow_symlinks=False):
                    reports.append({"path": path, "reason": "not_a_regular_file", "detail": None})
                    continue
                cid = _cid_from_name(entry.name, suffix)
                if cid is None:
                    reports.append({"path": path, "reason": "not_a_cid", "detail": None})
                    continue
                if known.get(path) == "ok":
                    skipped += 1
                    continue
                with open(entry.path, "rb") as handle:
                    row = verify_file(handle.read(), cid, kind, path)
                rows.append(row)
                if row["status"] == "hash_mismatch":
                    detail = f"name says {cid}, bytes hash to {_actual_cid(entry.path)}"
                    reports.append({"path": path, "reason": "hash_mismatch", "detail": detail})
    return ContentScan(
        content=pl.DataFrame(rows, schema=CONTENT_SCHEMA).sort("path"),
        reports=pl.DataFrame(reports, schema=CONTENT_REPORT_SCHEMA).sort("path"),
        skipped_known=skipped,
    )


def _actual_cid(path: str) -> str:
    with open(path, "rb") as handle:
        return cid_of(handle.read())
