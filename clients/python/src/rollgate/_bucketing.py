"""Bucketing spec v1, computed locally."""

from __future__ import annotations

import hashlib
import struct

from ._types import Variant

_sha256 = hashlib.sha256
_first_u64 = struct.Struct(">Q").unpack_from

BUCKETS = 10_000
"""The number of buckets: a bucket is 0..9999, and a weight in basis points sends the buckets below it to the canary."""


def bucket(salt: str, key: str) -> int:
    """Returns the bucket 0..9999 of a key under a salt (bucketing spec v1).

    The first 8 bytes of SHA-256(utf8(salt) || 0x00 || utf8(key)), big endian, modulo 10000:
    the value the server answers in ``RouteResponse.bucket``.
    """
    return bucket_prefixed(salt.encode("utf-8") + b"\x00", key.encode("utf-8"))


def bucket_prefixed(prefix: bytes, key: bytes) -> int:
    """Returns the bucket of a UTF-8 key under a salt given as ``utf8(salt) || 0x00``.

    The same function as ``bucket``, for callers that keep the prefix (the local router keeps
    one per rollout) and have the key's bytes at hand.
    """
    return _first_u64(_sha256(prefix + key).digest())[0] % BUCKETS


def variant_of(bucket_: int, weight_bp: int) -> Variant:
    """Returns the variant of a bucket at a canary weight in basis points: CANARY iff bucket < weight_bp."""
    return Variant.CANARY if bucket_ < weight_bp else Variant.STABLE
