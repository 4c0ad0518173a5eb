"""Bucketing spec v1, computed locally."""

from __future__ import annotations

import hashlib

from ._types import Variant

BUCKETS = 10_000
"""The number of buckets: a bucket is 0..9999, and a weight in basis points sends the buckets below it to the canary."""


def bucket(salt: str, key: str) -> int:
    """Returns the bucket 0..9999 of a key under a salt (bucketing spec v1).

    The first 8 bytes of SHA-256(utf8(salt) || 0x00 || utf8(key)), big endian, modulo 10000:
    the value the server answers in ``RouteResponse.bucket``.
    """
    digest = hashlib.sha256(salt.encode("utf-8") + b"\x00" + key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def variant_of(bucket_: int, weight_bp: int) -> Variant:
    """Returns the variant of a bucket at a canary weight in basis points: CANARY iff bucket < weight_bp."""
    return Variant.CANARY if bucket_ < weight_bp else Variant.STABLE
