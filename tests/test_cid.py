"""CIDv1 raw sha2-256 base32: encoding, decoding and rejection of everything else."""

from __future__ import annotations

import base64
import hashlib
import random

import pytest

from pipelines.ingest.cid import (
    CID_LENGTH,
    CID_START,
    InvalidCid,
    cid_from_digest,
    cid_of,
    decode_cid,
    is_cid,
)

HELLO = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
PREFIX = bytes([0x01, 0x55, 0x12, 0x20])


def b32(raw: bytes) -> str:
    """Reference multibase base32 lower, no padding (standard library)."""
    return "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=")


def reference_is_cid(text: str) -> bool:
    """The spec's definition, with the standard library: the canonical encoding of
    PREFIX + a 32-byte digest."""
    if not text.startswith("b") or not text.isascii() or text != text.lower():
        return False
    body = text[1:].upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError:
        return False
    return len(raw) == 36 and raw[:4] == PREFIX and b32(raw) == text


def test_the_spec_example():
    assert cid_of(b"hello world\n") == HELLO
    assert decode_cid(HELLO) == hashlib.sha256(b"hello world\n").digest()
    assert is_cid(HELLO)
    assert len(HELLO) == CID_LENGTH and HELLO.startswith(CID_START)


def test_encoding_matches_the_standard_library_and_round_trips():
    rnd = random.Random(7)
    samples = [b"", b"\x00", b"\xff" * 64] + [
        rnd.randbytes(rnd.randrange(200)) for _ in range(2000)
    ]
    for data in samples:
        digest = hashlib.sha256(data).digest()
        cid = cid_of(data)
        assert cid == b32(PREFIX + digest)
        assert decode_cid(cid) == digest
        assert cid_from_digest(digest) == cid
        assert is_cid(cid)


def test_extreme_digests_round_trip():
    for digest in (bytes(32), b"\xff" * 32, b"\x80" + bytes(31), bytes(31) + b"\x01"):
        cid = cid_from_digest(digest)
        assert cid == b32(PREFIX + digest)
        assert decode_cid(cid) == digest


def test_cid_from_digest_wants_32_bytes():
    with pytest.raises(ValueError, match="32 bytes"):
        cid_from_digest(b"\x00" * 31)


ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
DIGEST = hashlib.sha256(b"x").digest()
GOOD = b32(PREFIX + DIGEST)
INVALID = {
    "empty": ("", "empty"),
    "uppercase": (GOOD.upper(), "multibase prefix"),
    "upper after prefix": ("b" + GOOD[1:].upper(), "base32 lower"),
    "one upper letter": (GOOD[:20] + GOOD[20].upper() + GOOD[21:], "base32 lower"),
    "base58btc multibase": ("z" + GOOD[1:], "multibase prefix"),
    "hex multibase": ("f01551220" + DIGEST.hex(), "multibase prefix"),
    "CIDv0": ("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "multibase prefix"),
    "digit 1 not in base32": (GOOD[:-2] + "1" + GOOD[-1], "character '1'"),
    "digit 8 not in base32": (GOOD[:30] + "8" + GOOD[31:], "character '8'"),
    "padding": (GOOD + "=====", "character '='"),
    "non-ASCII": (GOOD[:-1] + "é", "character 'é'"),
    "whitespace": (GOOD + "\n", "character"),
    "with .md": (GOOD + ".md", "character '.'"),
    "one character short": (GOOD[:-1], "59 characters, got 58"),
    "one character long": (GOOD + "a", "59 characters, got 60"),
    "sha2-512 CID": (
        b32(bytes([0x01, 0x55, 0x13, 0x40]) + hashlib.sha512(b"x").digest()),
        "59 characters",
    ),
    "version 0": (b32(bytes([0x00, 0x55, 0x12, 0x20]) + DIGEST), "CID version"),
    "version 2": (b32(bytes([0x02, 0x55, 0x12, 0x20]) + DIGEST), "CID version"),
    "dag-pb codec": (b32(bytes([0x01, 0x70, 0x12, 0x20]) + DIGEST), "codec"),
    "dag-cbor codec": (b32(bytes([0x01, 0x71, 0x12, 0x20]) + DIGEST), "codec"),
    "sha1 hash code": (b32(bytes([0x01, 0x55, 0x11, 0x20]) + DIGEST), "hash code"),
    "blake2 hash code": (b32(bytes([0x01, 0x55, 0xB2, 0x20]) + DIGEST), "hash code"),
    "digest length 0x1f": (b32(bytes([0x01, 0x55, 0x12, 0x1F]) + DIGEST), "digest length"),
    "digest length 0x21": (b32(bytes([0x01, 0x55, 0x12, 0x21]) + DIGEST), "digest length"),
    # The last character carries 2 pad bits that a canonical encoder sets to zero.
    "non-canonical last character": (
        GOOD[:-1] + ALPHABET[ALPHABET.index(GOOD[-1]) + 1],
        "non-canonical",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_cids_are_rejected(case):
    text, message = INVALID[case]
    assert not is_cid(text)
    with pytest.raises(InvalidCid, match=message):
        decode_cid(text)
    assert issubclass(InvalidCid, ValueError)


@pytest.mark.parametrize("value", [None, 42, GOOD.encode()])
def test_non_strings_are_rejected(value):
    assert not is_cid(value)
    with pytest.raises(InvalidCid, match="a CID is a string"):
        decode_cid(value)


def test_long_inputs_are_shortened_in_the_message():
    with pytest.raises(InvalidCid) as caught:
        decode_cid("b" + "a" * 10_000)
    assert len(str(caught.value)) < 200


def test_validity_agrees_with_the_reference_on_near_misses():
    """Random strings that look like CIDs: is_cid and decode_cid agree with the spec's
    definition computed by the standard library."""
    rnd = random.Random(11)
    seen = {True: 0, False: 0}
    for _ in range(3000):
        chars = list(cid_of(rnd.randbytes(8)))
        for _ in range(rnd.choice([0, 1, 1, 2])):  # mutate prefix, digest or pad positions
            position = rnd.choice([rnd.randrange(1, 59), 6, 7, 58])
            chars[position] = rnd.choice(ALPHABET)
        text = "".join(chars)
        expected = reference_is_cid(text)
        seen[expected] += 1
        assert is_cid(text) == expected, text
        if expected:
            assert cid_from_digest(decode_cid(text)) == text
        else:
            with pytest.raises(InvalidCid):
                decode_cid(text)
    assert seen[True] > 100 and seen[False] > 100
