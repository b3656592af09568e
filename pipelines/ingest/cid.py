"""IPFS CIDv1 of a single raw block: multibase base32 lower (``b``), codec raw, sha2-256.

``cid = "b" + base32_lower_nopad(bytes([0x01, 0x55, 0x12, 0x20]) + sha256(data))``: 59
characters, always starting with ``bafkrei``. Pure, no I/O.

The standard library's base32 is pure Python in 3.11 and allocates heavily, so both
directions are done here with precomputed tables: the 4 prefix bytes plus 256 digest
bits are 290 bits, i.e. the constant ``bafkrei`` (prefix bits 0-29) followed by 52
characters that encode ``digest << 2`` (2 zero prefix bits, the digest, 2 zero pad bits).
"""

from __future__ import annotations

import hashlib
import re

PREFIX = bytes([0x01, 0x55, 0x12, 0x20])  # CIDv1, raw codec, sha2-256, 32-byte digest
CID_LENGTH = 59  # "b" + 58 base32 characters (36 bytes = 288 bits, padded to 290)
CID_START = "bafkrei"  # "b" + the 30 bits that only depend on PREFIX

_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower case
# Exactly the valid CIDs: after "bafkrei", a character carrying the prefix's last 2 bits
# (zero) and 3 digest bits, 50 characters of digest, then 3 digest bits + 2 zero pad bits.
_CID_RE = re.compile(r"bafkrei[a-h][a-z2-7]{50}[aeimquy4]")
# base32 digits -> the digits int(..., 32) understands, so decoding runs in C.
_TO_INT_DIGITS = bytes.maketrans(_ALPHABET.encode(), b"0123456789abcdefghijklmnopqrstuv")
_TRIPLES = [a + b + c for a in _ALPHABET for b in _ALPHABET for c in _ALPHABET]  # 15 bits
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 10 bits
_MASK60 = (1 << 60) - 1
_sha256 = hashlib.sha256


class InvalidCid(ValueError):
    """A string that is not a CIDv1 raw sha2-256 in base32 lower case."""


def cid_of(data: bytes) -> str:
    """The CID of ``data``'s bytes."""
    return _encode(_sha256(data).digest())


def cid_from_digest(digest: bytes) -> str:
    """The CID naming a block whose sha256 digest is ``digest`` (32 bytes)."""
    if len(digest) != 32:
        raise ValueError(f"a sha256 digest has 32 bytes, got {len(digest)}")
    return _encode(digest)


def _encode(digest: bytes) -> str:
    n = int.from_bytes(digest, "big") << 2  # 260 bits: 4 groups of 60, then 20
    t, p = _TRIPLES, _PAIRS
    a = n >> 200
    b = (n >> 140) & _MASK60
    c = (n >> 80) & _MASK60
    d = (n >> 20) & _MASK60
    e = n & 0xFFFFF
    return "".join(
        (
            CID_START,
            t[a >> 45], t[(a >> 30) & 0x7FFF], t[(a >> 15) & 0x7FFF], t[a & 0x7FFF],
            t[b >> 45], t[(b >> 30) & 0x7FFF], t[(b >> 15) & 0x7FFF], t[b & 0x7FFF],
            t[c >> 45], t[(c >> 30) & 0x7FFF], t[(c >> 15) & 0x7FFF], t[c & 0x7FFF],
            t[d >> 45], t[(d >> 30) & 0x7FFF], t[(d >> 15) & 0x7FFF], t[d & 0x7FFF],
            p[e >> 10], p[e & 0x3FF],
        )
    )  # fmt: skip


def is_cid(name: str) -> bool:
    """Whether ``name`` is exactly a CID as defined here (canonical, lower case)."""
    return isinstance(name, str) and _CID_RE.fullmatch(name) is not None


def decode_cid(cid: str) -> bytes:
    """The 32-byte sha256 digest named by ``cid``; raises InvalidCid for anything else."""
    if isinstance(cid, str) and _CID_RE.fullmatch(cid) is not None:
        return (int(cid[7:].encode().translate(_TO_INT_DIGITS), 32) >> 2).to_bytes(32, "big")
    raise InvalidCid(_why_invalid(cid))


def _why_invalid(cid: object) -> str:
    """The first reason ``cid`` is not a valid CID (only called for invalid ones)."""
    if not isinstance(cid, str):
        return f"a CID is a string, got {type(cid).__name__}"
    shown = repr(cid) if len(cid) <= 80 else repr(cid[:77] + "...")
    if not cid:
        return "empty string is not a CID"
    if cid[0] != "b":
        return f"multibase prefix must be 'b' (base32 lower), got {cid[0]!r} in {shown}"
    bad = next((i for i, ch in enumerate(cid[1:], 1) if ch not in _ALPHABET), None)
    if bad is not None:
        return f"not base32 lower case: character {cid[bad]!r} at {bad} in {shown}"
    if len(cid) != CID_LENGTH:
        return f"a CID has {CID_LENGTH} characters, got {len(cid)}: {shown}"
    bits = int(cid[1:].encode().translate(_TO_INT_DIGITS), 32)  # 290 bits
    raw = (bits >> 2).to_bytes(36, "big")
    fields = (
        ("CID version", 0x01),
        ("codec (raw)", 0x55),
        ("hash code (sha2-256)", 0x12),
        ("digest length", 0x20),
    )
    for index, (field, expected) in enumerate(fields):
        if raw[index] != expected:
            return f"{field} must be 0x{expected:02x}, got 0x{raw[index]:02x}: {shown}"
    return f"non-canonical base32 (trailing pad bits are not zero): {shown}"
