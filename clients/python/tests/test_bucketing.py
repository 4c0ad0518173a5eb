"""Bucketing spec v1 against both vector files."""

from __future__ import annotations

import json

import pytest

import rollgate
from conftest import ROOT, VECTOR_FILES


def read_vectors(file: str) -> list[dict]:
    """Returns the rows of a vector file."""
    rows = json.loads((ROOT / file).read_text(encoding="utf-8"))["vectors"]
    assert rows, f"{file} holds no vectors"
    return rows


@pytest.mark.parametrize("file", VECTOR_FILES)
def test_bucket_matches_vectors(file: str) -> None:
    mismatches = []
    for v in read_vectors(file):
        got = rollgate.bucket(v["salt"], v["key"])
        variant = rollgate.variant_of(got, v["weight_bp"])
        if got != v["bucket"] or f"VARIANT_{variant.name}" != v["variant"]:
            mismatches.append((v["salt"], v["key"][:40], got, variant.name, v["bucket"], v["variant"]))
    assert mismatches == []


@pytest.mark.parametrize(
    ("bucket", "weight", "want"),
    [(0, 0, rollgate.Variant.STABLE), (0, 1, rollgate.Variant.CANARY), (9999, 9999, rollgate.Variant.STABLE), (9999, 10000, rollgate.Variant.CANARY)],
)
def test_variant_of_edges(bucket: int, weight: int, want: rollgate.Variant) -> None:
    assert rollgate.variant_of(bucket, weight) is want
