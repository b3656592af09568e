"""scan_content: verification against CIDs, rejects, links never followed, incrementality."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from pipelines.ingest import content as content_module
from pipelines.ingest.cid import cid_of
from pipelines.ingest.content import (
    CONTENT_REPORT_SCHEMA,
    CONTENT_SCHEMA,
    ContentScan,
    scan_content,
)

SECRET = b"TOPSECRET outside the store"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    (root / "content" / "by-cid").mkdir(parents=True)
    (root / "content" / "blobs").mkdir()
    return root


def body(store: Path, data: bytes) -> str:
    cid = cid_of(data)
    (store / "content" / "by-cid" / f"{cid}.md").write_bytes(data)
    return cid


def blob(store: Path, data: bytes) -> str:
    cid = cid_of(data)
    (store / "content" / "blobs" / cid).write_bytes(data)
    return cid


def reasons(scan: ContentScan) -> dict[str, str]:
    return dict(scan.reports.select("path", "reason").iter_rows())


def rows(scan: ContentScan) -> dict[str, dict]:
    return {row["path"]: row for row in scan.content.iter_rows(named=True)}


def everything_said(scan: ContentScan) -> str:
    """All text the scan produced, to prove some bytes were never read."""
    return repr(scan.content.rows()) + repr(scan.reports.rows())


def test_good_body_and_blob(store):
    text_cid = body(store, b"hello world\n")
    blob_cid = blob(store, b"\x89PNG\r\n\x1a\n\x00\xff")
    scan = scan_content(store, {})
    assert scan.content.schema == CONTENT_SCHEMA
    assert scan.reports.schema == CONTENT_REPORT_SCHEMA
    assert scan.reports.is_empty()
    assert scan.skipped_known == 0
    assert scan.content.rows(named=True) == [
        {
            "cid": blob_cid,
            "kind": "blob",
            "path": f"content/blobs/{blob_cid}",
            "size": 10,
            "status": "ok",
            "text": None,
            "utf8_valid": None,
        },
        {
            "cid": "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
            "kind": "body",
            "path": f"content/by-cid/{text_cid}.md",
            "size": 12,
            "status": "ok",
            "text": "hello world\n",
            "utf8_valid": True,
        },
    ]


def test_empty_body_is_a_valid_body(store):
    cid = body(store, b"")
    assert rows(scan_content(store, {}))[f"content/by-cid/{cid}.md"]["text"] == ""


def test_absent_folders_find_nothing(tmp_path):
    (tmp_path / "bare").mkdir()
    scan = scan_content(tmp_path / "bare", {})
    assert scan.content.is_empty() and scan.reports.is_empty()
    assert scan.content.schema == CONTENT_SCHEMA
    assert scan.reports.schema == CONTENT_REPORT_SCHEMA

    (tmp_path / "bare" / "content" / "blobs").mkdir(parents=True)  # by-cid/ still absent
    cid = blob(tmp_path / "bare", b"attachment")
    scan = scan_content(tmp_path / "bare", {})
    assert scan.content["path"].to_list() == [f"content/blobs/{cid}"]
    assert scan.reports.is_empty()


def test_tampered_file_is_a_hash_mismatch_and_never_a_body(store):
    named = cid_of(b"original bytes")
    path = f"content/by-cid/{named}.md"
    (store / path).write_bytes(b"tampered bytes")
    blob_named = cid_of(b"original blob")
    (store / "content" / "blobs" / blob_named).write_bytes(b"other blob")
    scan = scan_content(store, {})
    row = rows(scan)[path]
    assert (row["cid"], row["kind"], row["status"], row["size"]) == (
        named,
        "body",
        "hash_mismatch",
        14,
    )
    assert row["text"] is None and row["utf8_valid"] is None
    assert rows(scan)[f"content/blobs/{blob_named}"]["status"] == "hash_mismatch"
    report = scan.reports.filter(pl.col("path") == path).row(0, named=True)
    assert report["reason"] == "hash_mismatch"
    assert named in report["detail"] and cid_of(b"tampered bytes") in report["detail"]
    assert "tampered bytes" not in everything_said(scan)


def test_names_that_are_not_cids_are_reported_and_not_read(store):
    cid = cid_of(b"some body")
    by_cid, blobs = store / "content" / "by-cid", store / "content" / "blobs"
    names = {
        "content/by-cid/notacid.md": by_cid / "notacid.md",
        f"content/by-cid/{cid}": by_cid / cid,  # no .md
        f"content/by-cid/{cid}.txt": by_cid / f"{cid}.txt",
        f"content/by-cid/{cid.upper()}.md": by_cid / f"{cid.upper()}.md",
        f"content/by-cid/{cid}.md.bak": by_cid / f"{cid}.md.bak",
        f"content/blobs/{cid}.png": blobs / f"{cid}.png",  # blobs have no extension
        f"content/blobs/{cid}.md": blobs / f"{cid}.md",
        "content/blobs/.DS_Store": blobs / ".DS_Store",
    }
    for file in names.values():
        file.write_bytes(b"some body")
    scan = scan_content(store, {})
    assert scan.content.is_empty()
    assert reasons(scan) == dict.fromkeys(sorted(names), "not_a_cid")
    assert scan.reports["path"].to_list() == sorted(names)
    details = dict(scan.reports.select("path", "detail").iter_rows())
    assert "without an extension" in details[f"content/blobs/{cid}.png"]
    assert "<cid>.md" in details[f"content/by-cid/{cid}.txt"]
    assert "multibase prefix" in details["content/by-cid/notacid.md"]
    assert "base32 lower" in details[f"content/by-cid/{cid.upper()}.md"]


def test_symlink_to_a_good_file_inside_the_store_is_reported_not_followed(store):
    good = body(store, b"good body")
    link_cid = cid_of(b"good body")  # the link's name even matches the target's bytes
    by_cid = store / "content" / "by-cid"
    (by_cid / "elsewhere").mkdir()
    os.rename(by_cid / f"{good}.md", by_cid / "elsewhere" / "x.md")
    (by_cid / f"{link_cid}.md").symlink_to(by_cid / "elsewhere" / "x.md")
    (store / "content" / "blobs" / cid_of(b"good body")).symlink_to("../by-cid/elsewhere/x.md")
    scan = scan_content(store, {})
    assert scan.content.is_empty()  # would be two "ok" rows if a link were followed
    assert reasons(scan) == {
        f"content/blobs/{link_cid}": "symlink",
        "content/by-cid/elsewhere": "not_a_regular_file",
        f"content/by-cid/{link_cid}.md": "symlink",
    }


def test_symlink_leaving_the_store_is_reported_and_never_read(store, tmp_path):
    outside = tmp_path / "secret.md"
    outside.write_bytes(SECRET)
    name = cid_of(SECRET)  # reading it would verify "ok" and expose the secret as a body
    (store / "content" / "by-cid" / f"{name}.md").symlink_to(outside)
    (store / "content" / "blobs" / name).symlink_to("../../../secret.md")  # relative
    (store / "content" / "blobs" / cid_of(b"gone")).symlink_to(tmp_path / "missing")
    (store / "content" / "by-cid" / f"{cid_of(b'etc')}.md").symlink_to("/etc/hostname")
    scan = scan_content(store, {})
    assert scan.content.is_empty()
    assert reasons(scan) == {
        f"content/blobs/{cid_of(b'gone')}": "outside_store",
        f"content/blobs/{name}": "outside_store",
        f"content/by-cid/{cid_of(b'etc')}.md": "outside_store",
        f"content/by-cid/{name}.md": "outside_store",
    }
    assert "TOPSECRET" not in everything_said(scan)


def test_dangling_and_looping_symlinks_inside_the_store(store):
    by_cid = store / "content" / "by-cid"
    (by_cid / f"{cid_of(b'a')}.md").symlink_to(by_cid / "nothing-here")
    (by_cid / f"{cid_of(b'b')}.md").symlink_to(by_cid / f"{cid_of(b'c')}.md")
    (by_cid / f"{cid_of(b'c')}.md").symlink_to(by_cid / f"{cid_of(b'b')}.md")
    scan = scan_content(store, {})
    assert scan.content.is_empty()
    assert set(reasons(scan).values()) == {"symlink"} and scan.reports.height == 3


def test_directories_and_fifos_named_like_cids(store):
    cid = cid_of(b"a directory")
    (store / "content" / "by-cid" / f"{cid}.md").mkdir()
    (store / "content" / "blobs" / cid).mkdir()
    os.mkfifo(store / "content" / "blobs" / cid_of(b"a fifo"))  # opening it would block
    scan = scan_content(store, {})
    assert scan.content.is_empty()
    assert reasons(scan) == {
        f"content/blobs/{cid}": "not_a_regular_file",
        f"content/blobs/{cid_of(b'a fifo')}": "not_a_regular_file",
        f"content/by-cid/{cid}.md": "not_a_regular_file",
    }
    details = dict(scan.reports.select("path", "detail").iter_rows())
    assert details[f"content/blobs/{cid_of(b'a fifo')}"] == "a FIFO"


def test_linked_or_misplaced_folders_are_reported_not_followed(tmp_path):
    outside = tmp_path / "elsewhere"
    (outside / "by-cid").mkdir(parents=True)
    (outside / "by-cid" / f"{cid_of(SECRET)}.md").write_bytes(SECRET)
    store = tmp_path / "store"
    store.mkdir()
    (store / "content").symlink_to(outside)
    scan = scan_content(store, {})
    assert scan.content.is_empty()
    assert reasons(scan) == {"content": "outside_store"}
    assert "TOPSECRET" not in everything_said(scan)

    (store / "content").unlink()
    (store / "content").mkdir()
    real = store / "real" / "by-cid"  # inside the store, reached only through a link
    real.mkdir(parents=True)
    cid = cid_of(b"behind a link")
    (real / f"{cid}.md").write_bytes(b"behind a link")
    (store / "content" / "by-cid").symlink_to(real)
    (store / "content" / "blobs").write_bytes(b"a file where a folder belongs")
    scan = scan_content(store, {})
    assert scan.content.is_empty()
    assert reasons(scan) == {"content/blobs": "not_a_regular_file", "content/by-cid": "symlink"}
    assert cid not in everything_said(scan)


def test_a_store_reached_through_a_link_is_scanned(store, tmp_path):
    cid = body(store, b"reached")
    (tmp_path / "alias").symlink_to(store)
    scan = scan_content(tmp_path / "alias", {})
    assert scan.content["cid"].to_list() == [cid]
    assert scan.reports.is_empty()


def test_invalid_utf8_body_is_kept_with_replacement_characters(store):
    cid = body(store, b"caf\xe9 \xff\xfe ok")
    row = rows(scan_content(store, {}))[f"content/by-cid/{cid}.md"]
    assert row["status"] == "ok" and row["utf8_valid"] is False
    assert row["text"] == "caf\ufffd \ufffd\ufffd ok"
    assert row["size"] == 10


def test_incremental_skips_ok_files_and_rereads_mismatches(store, monkeypatch):
    good = body(store, b"verified once")
    half = cid_of(b"complete body")
    (store / "content" / "by-cid" / f"{half}.md").write_bytes(b"compl")  # partial sync
    first = scan_content(store, {})
    known = dict(first.content.select("path", "status").iter_rows())
    assert known == {
        f"content/by-cid/{good}.md": "ok",
        f"content/by-cid/{half}.md": "hash_mismatch",
    }

    # Tamper with the verified file: were it read again, it would come out hash_mismatch.
    (store / "content" / "by-cid" / f"{good}.md").write_bytes(b"changed afterwards")
    (store / "content" / "by-cid" / f"{half}.md").write_bytes(b"complete body")  # sync done
    opened: list[str] = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *, dir_fd=None):
        opened.append(os.fsdecode(path))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(content_module.os, "open", spy)
    second = scan_content(store, known)
    monkeypatch.undo()
    assert second.skipped_known == 1
    assert second.content.select("path", "status", "text").rows() == [
        (f"content/by-cid/{half}.md", "ok", "complete body")
    ]
    assert second.reports.is_empty()
    assert f"{half}.md" in opened and f"{good}.md" not in opened


def test_a_known_ok_path_that_became_a_link_is_reported(store):
    good = body(store, b"was a file")
    path = f"content/by-cid/{good}.md"
    (store / path).unlink()
    (store / path).symlink_to("/etc/hostname")
    scan = scan_content(store, {path: "ok"})
    assert scan.skipped_known == 0
    assert reasons(scan) == {path: "outside_store"}


def test_unreadable_file_is_reported(store, monkeypatch):
    cid = body(store, b"cannot read me")
    real_open = os.open

    def refuse(path, flags, mode=0o777, *, dir_fd=None):
        if os.fsdecode(path) == f"{cid}.md":
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(content_module.os, "open", refuse)
    scan = scan_content(store, {})
    assert scan.content.is_empty()
    assert scan.reports.rows() == [
        (f"content/by-cid/{cid}.md", "unreadable", "PermissionError: Permission denied")
    ]


def test_a_file_swapped_for_a_link_after_listing_is_not_followed(store, tmp_path):
    """The read itself refuses links (O_NOFOLLOW), whatever the listing said."""
    outside = tmp_path / "secret"
    outside.write_bytes(SECRET)
    name = cid_of(SECRET)
    (store / "content" / "blobs" / name).symlink_to(outside)
    fd = os.open(store / "content" / "blobs", os.O_RDONLY | os.O_DIRECTORY)
    try:
        outcome = content_module._verify((fd, name, name, "blob", f"content/blobs/{name}"))
    finally:
        os.close(fd)
    assert outcome[1] is None and outcome[4] == "symlink"


def test_large_blobs_are_streamed(store, monkeypatch):
    monkeypatch.setattr(content_module, "_STREAM_ABOVE", 100)
    monkeypatch.setattr(content_module, "_CHUNK", 64)
    data = bytes(range(256)) * 40
    good = blob(store, data)
    bad = cid_of(data + b"!")
    (store / "content" / "blobs" / bad).write_bytes(data)
    big_body = body(store, b"b" * 1000)  # bodies are read whole: they need their text
    found = rows(scan_content(store, {}))
    assert found[f"content/blobs/{good}"]["status"] == "ok"
    assert found[f"content/blobs/{good}"]["size"] == len(data)
    assert found[f"content/blobs/{bad}"]["status"] == "hash_mismatch"
    assert found[f"content/by-cid/{big_body}.md"]["text"] == "b" * 1000


def test_threads_do_not_change_the_result(store):
    for i in range(1300):  # more than two batches
        data = f"body {i}".encode()
        if i % 3:
            body(store, data)
        else:
            blob(store, data)
        if i % 97 == 0:
            (store / "content" / "by-cid" / f"{cid_of(data + b'x')}.md").write_bytes(data)
    single = scan_content(store, {}, threads=1)
    many = scan_content(store, {}, threads=4)
    assert single.content.height == 1300 + 14
    assert single.content["path"].is_sorted() and single.reports["path"].is_sorted()
    assert single.content.equals(many.content) and single.reports.equals(many.reports)
    assert single.reports.height == 14
