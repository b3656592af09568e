"""Scan the content-addressed store: verify each file against the CID in its name.

``content/by-cid/<cid>.md`` holds message bodies and ``content/blobs/<cid>`` holds
attachments (no extension). Pure I/O over the store, no Dagster.

Contract:

- Symbolic links are never followed, at any level: ``content``, ``by-cid`` and ``blobs``
  are opened with ``O_NOFOLLOW`` relative to their parent's descriptor, and files with
  ``O_NOFOLLOW`` relative to their folder's, so a link swapped in after the listing is
  still not followed. A link is reported as ``symlink``, or ``outside_store`` when its
  target (resolved without opening it) lies outside the store.
- A directory or other non-regular entry is reported as ``not_a_regular_file``; a name
  that is not ``<cid>.md`` in ``by-cid/`` or ``<cid>`` in ``blobs/`` as ``not_a_cid``.
  None of these is opened. Absent ``content/``, ``by-cid/`` or ``blobs/`` means nothing found.
- Each remaining file is read once and its sha256 compared with the CID's digest: a
  ``content`` row with status ``ok`` or ``hash_mismatch``; a mismatch is also reported.
  A file that cannot be read (permissions, I/O error) is reported as ``unreadable``.
- Incremental: a path ``known`` with status ``ok`` is not opened again (content is
  immutable), only counted in ``skipped_known``; any other known status is re-read.
- Output is deterministic: both frames sorted by path, whatever the thread count.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.ingest.cid import InvalidCid, cid_from_digest, decode_cid, is_cid

CONTENT_SCHEMA = pl.Schema(
    {
        "cid": pl.String(),
        "kind": pl.String(),  # "body" (by-cid/) or "blob" (blobs/)
        "path": pl.String(),  # store-relative, forward slashes
        "size": pl.Int64(),
        "status": pl.String(),  # "ok" or "hash_mismatch"
        "text": pl.String(),  # verified bodies only: UTF-8, invalid bytes replaced
        "utf8_valid": pl.Boolean(),  # verified bodies only
    }
)
CONTENT_REPORT_SCHEMA = pl.Schema(
    {"path": pl.String(), "reason": pl.String(), "detail": pl.String()}
)
# (folder under content/, kind, required suffix after the CID)
FOLDERS = (("blobs", "blob", ""), ("by-cid", "body", ".md"))

OK = "ok"
HASH_MISMATCH = "hash_mismatch"
NOT_A_CID = "not_a_cid"
SYMLINK = "symlink"
NOT_A_REGULAR_FILE = "not_a_regular_file"
OUTSIDE_STORE = "outside_store"
UNREADABLE = "unreadable"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in after the listing must not block the open.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_STREAM_ABOVE = 8 << 20  # blobs larger than this are hashed in chunks, never held whole
_CHUNK = 1 << 20
_BATCH = 512  # files per thread task: amortises the executor's per-task cost
_sha256 = hashlib.sha256


@dataclass
class ContentScan:
    """Rows for files read this scan (``content``) and for everything set aside (``reports``).

    ``skipped_known`` counts files not opened because ``known`` says they were verified.
    """

    content: pl.DataFrame
    reports: pl.DataFrame
    skipped_known: int


# One file to verify: (folder descriptor, file name, cid, kind, store-relative path).
_Task = tuple[int, str, str, str, str]
# Its outcome: (size, status, text, utf8_valid, report reason, report detail).
_Outcome = tuple[int | None, str | None, str | None, bool | None, str | None, str | None]


def scan_content(store: Path, known: Mapping[str, str], threads: int | None = None) -> ContentScan:
    """Verify the content files under ``store`` that ``known`` does not list as "ok".

    ``known`` maps a store-relative path to the status it was ingested with. ``threads``
    sets how many threads read and hash files (default: a few, see ``default_threads``;
    1 reads in the calling thread). The result does not depend on it.
    """
    root = os.path.realpath(store)
    reports: list[tuple[str, str, str | None]] = []
    tasks: list[_Task] = []
    skipped = 0
    fds = [os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)]  # the store itself may be a link
    try:
        content_fd = _open_folder(root, fds[0], "content", reports)
        if content_fd is not None:
            fds.append(content_fd)
            for folder, kind, suffix in FOLDERS:
                relative = f"content/{folder}"
                fd = _open_folder(root, content_fd, relative, reports)
                if fd is None:
                    continue
                fds.append(fd)
                skipped += _list_folder(root, fd, relative, kind, suffix, known, tasks, reports)
        outcomes = _verify_all(tasks, default_threads() if threads is None else threads)
    finally:
        for fd in fds:
            os.close(fd)
    return _assemble(tasks, outcomes, reports, skipped)


def default_threads() -> int:
    """Reader threads used by default: one per CPU, at most 4. Reads release the GIL, so
    threads overlap disk waits (a cold scan ran 2x faster with 2 threads on 2 CPUs); with
    the files in the page cache, more threads than CPUs only add GIL contention."""
    return min(4, os.cpu_count() or 1)


def _open_folder(root: str, parent_fd: int, relative: str, reports: list) -> int | None:
    """A descriptor for the folder at store-relative ``relative`` (opened in ``parent_fd``),
    never through a symbolic link; None when it is absent or was reported."""
    name = relative.rsplit("/", 1)[-1]
    try:
        info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            reports.append(_link_report(root, relative))
            return None
        if not stat.S_ISDIR(info.st_mode):
            found = _file_type(info.st_mode)
            reports.append((relative, NOT_A_REGULAR_FILE, f"expected a directory, found {found}"))
            return None
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        return None
    except OSError as error:
        reports.append((relative, UNREADABLE, _os_error(error)))
        return None


def _list_folder(
    root: str,
    fd: int,
    relative: str,
    kind: str,
    suffix: str,
    known: Mapping[str, str],
    tasks: list[_Task],
    reports: list,
) -> int:
    """Sort the folder's entries into ``tasks`` and ``reports``; return how many were
    skipped as already verified. Uses only the directory listing's file types."""
    skipped = 0
    cut = len(suffix)
    with os.scandir(fd) as entries:
        for entry in entries:
            name = entry.name
            path = f"{relative}/{name}"
            if entry.is_symlink():
                reports.append(_link_report(root, path))
                continue
            if not entry.is_file(follow_symlinks=False):
                detail = _file_type(entry.stat(follow_symlinks=False).st_mode)
                reports.append((path, NOT_A_REGULAR_FILE, detail))
                continue
            cid = name[:-cut] if cut else name
            if (cut and not name.endswith(suffix)) or not is_cid(cid):
                reports.append((path, NOT_A_CID, _name_problem(name, suffix)))
                continue
            if known.get(path) == OK:
                skipped += 1
                continue
            tasks.append((fd, name, cid, kind, path))
    return skipped


def _verify_all(tasks: list[_Task], threads: int) -> list[_Outcome]:
    """Outcomes in the order of ``tasks``, read by ``threads`` threads in batches."""
    if threads <= 1 or len(tasks) <= _BATCH:
        return [_verify(task) for task in tasks]
    batches = [tasks[i : i + _BATCH] for i in range(0, len(tasks), _BATCH)]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="content-scan") as pool:
        return [outcome for batch in pool.map(_verify_batch, batches) for outcome in batch]


def _verify_batch(tasks: list[_Task]) -> list[_Outcome]:
    return [_verify(task) for task in tasks]


def _verify(task: _Task) -> _Outcome:
    """Read one file (not following links) and check its bytes against its CID."""
    fd, name, cid, kind, _ = task
    try:
        size, digest, data = _read(fd, name, stream=kind == "blob")
    except _NotRegular as problem:
        return None, None, None, None, problem.reason, problem.detail
    except OSError as error:
        return None, None, None, None, UNREADABLE, _os_error(error)
    if digest != decode_cid(cid):
        detail = f"expected {cid}, actual {cid_from_digest(digest)}"
        return size, HASH_MISMATCH, None, None, HASH_MISMATCH, detail
    if kind != "body":
        return size, OK, None, None, None, None
    try:
        return size, OK, data.decode("utf-8"), True, None, None
    except UnicodeDecodeError:
        return size, OK, data.decode("utf-8", errors="replace"), False, None, None


class _NotRegular(Exception):
    """The entry changed into something that must not be read between listing and opening."""

    def __init__(self, reason: str, detail: str):
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


def _read(dir_fd: int, name: str, stream: bool) -> tuple[int, bytes, bytes]:
    """(size, sha256 digest, bytes) of a regular file; bytes are empty when streamed."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:  # the entry became a symbolic link
            raise _NotRegular(SYMLINK, "became a symbolic link while scanning") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _NotRegular(NOT_A_REGULAR_FILE, _file_type(info.st_mode))
        if stream and info.st_size > _STREAM_ABOVE:
            hasher, size = _sha256(), 0
            while chunk := os.read(fd, _CHUNK):
                hasher.update(chunk)
                size += len(chunk)
            return size, hasher.digest(), b""
        data = os.read(fd, info.st_size + 1)  # one read: the whole file, then end of file
        if len(data) != info.st_size:  # grew or shrank since fstat, or a capped read (2 GiB)
            data += b"".join(_read_rest(fd))
        return len(data), _sha256(data).digest(), data
    finally:
        os.close(fd)


def _read_rest(fd: int) -> Iterator[bytes]:
    while chunk := os.read(fd, _CHUNK):
        yield chunk


def _assemble(
    tasks: list[_Task], outcomes: list[_Outcome], reports: list, skipped: int
) -> ContentScan:
    """Both frames, sorted by path, from the verified files and the reports."""
    columns: dict[str, list] = {name: [] for name in CONTENT_SCHEMA.names()}
    cids, kinds, paths = columns["cid"], columns["kind"], columns["path"]
    sizes, statuses, texts, valids = (
        columns["size"],
        columns["status"],
        columns["text"],
        columns["utf8_valid"],
    )
    for (_, _, cid, kind, path), (size, status, text, valid, reason, detail) in zip(
        tasks, outcomes, strict=True
    ):
        if reason is not None:
            reports.append((path, reason, detail))
        if status is None:
            continue
        cids.append(cid)
        kinds.append(kind)
        paths.append(path)
        sizes.append(size)
        statuses.append(status)
        texts.append(text)
        valids.append(valid)
    report_frame = pl.DataFrame(reports, schema=CONTENT_REPORT_SCHEMA, orient="row")
    return ContentScan(
        content=pl.DataFrame(columns, schema=CONTENT_SCHEMA).sort("path"),
        reports=report_frame.sort("path", "reason"),
        skipped_known=skipped,
    )


def _link_report(root: str, relative: str) -> tuple[str, str, str]:
    """The report for the symbolic link at ``relative`` (its folders are not links): where
    it points, and whether that leaves the store. Resolving reads link targets only, never
    the file they lead to."""
    absolute = os.path.join(root, relative)
    try:
        target = os.readlink(absolute)
    except OSError as error:
        return relative, SYMLINK, _os_error(error)
    resolved = os.path.realpath(absolute)
    inside = resolved == root or resolved.startswith(root.rstrip(os.sep) + os.sep)
    return relative, SYMLINK if inside else OUTSIDE_STORE, f"symbolic link to {target}"


def _name_problem(name: str, suffix: str) -> str:
    """Why ``name`` is not ``<cid><suffix>`` (only called for names that are not)."""
    if suffix and not name.endswith(suffix):
        return f"by-cid/ names are <cid>{suffix}"
    stem = name[: -len(suffix)] if suffix else name
    if not suffix and "." in name and is_cid(name.split(".", 1)[0]):
        return "blobs/ names are a bare CID, without an extension"
    try:
        decode_cid(stem)
    except InvalidCid as error:
        return str(error)
    raise AssertionError(f"{name!r} is a valid name")  # pragma: no cover


def _file_type(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _os_error(error: OSError) -> str:
    return f"{type(error).__name__}: {error.strerror or error}"
