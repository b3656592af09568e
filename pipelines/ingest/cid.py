"""IPFS CIDv1 of a raw block: multibase base32 lower (``b``), codec raw, sha2-256."""

from __future__ import annotations

import base64
import binascii
import hashlib

_PREFIX = bytes([0x01, 0x55, 0x12, 0x20])  # CIDv1, raw codec, sha2-256, 32-byte digest
_CID_LENGTH = 59  # "b" + base32 of 36 bytes without padding


class InvalidCid(ValueError):
    """A string that is not a CIDv1 raw sha2-256 in base32 lower case."""


def cid_of(data: bytes) -> str:
    """The CID of ``data``'s bytes."""
    encoded = base64.b32encode(_PREFIX + hashlib.sha256(data).digest())
    return "b" + encoded.decode("ascii").lower().rstrip("=")


def decode_cid(cid: str) -> bytes:
    """The sha256 digest named by ``cid``; raises InvalidCid for anything else."""
    if len(cid) != _CID_LENGTH or not cid.startswith("b") or cid != cid.lower():
        raise InvalidCid(f"not a base32 CIDv1 of {_CID_LENGTH} characters: {cid!r:.80}")
    try:
        body = cid[1:].upper()
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError):
        raise InvalidCid(f"not base32: {cid!r:.80}") from None
    if raw[:4] != _PREFIX or len(raw) != 36:
        raise InvalidCid(f"not a raw sha2-256 CIDv1: {cid!r:.80}")
    if "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=") != cid:
        raise InvalidCid(f"not the canonical encoding: {cid!r:.80}")
    return raw[4:]


def is_cid(name: str) -> bool:
    try:
        decode_cid(name)
    except InvalidCid:
        return False
    return True
