"""The stock OFREP provider (openfeature-provider-ofrep) with openfeature-sdk, against a live server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode

import rollgate
from conftest import RollgateServer, create_rollout, set_weight
from rollgate.v1 import decision_service_pb2 as pb
from rollgate.v1 import rollout_pb2
from rollgate.v1 import rollout_service_pb2 as rs

OPERATOR = "operator-token-0123456789"
READER = "reader-token-01234567890"
REASONS = {
    pb.ROUTE_REASON_WEIGHT: "SPLIT",
    pb.ROUTE_REASON_OVERRIDE: "TARGETING_MATCH",
    pb.ROUTE_REASON_STAGE: "STATIC",
    pb.ROUTE_REASON_ROLLED_BACK: "DISABLED",
    pb.ROUTE_REASON_HALTED: "DISABLED",
}
VARIANTS = {rollout_pb2.VARIANT_STABLE: "stable", rollout_pb2.VARIANT_CANARY: "canary"}


@pytest.fixture
def secured(start_server: Callable[..., RollgateServer], tmp_path: Path) -> RollgateServer:
    """A server with a tokens file: OFREP callers must bring a reader token."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps([{"name": "deployer", "token": OPERATOR, "role": "operator"}, {"name": "dash", "token": READER, "role": "reader"}]))
    return start_server("--tokens", str(tokens))


@pytest.fixture
def ofrep_client(secured: RollgateServer) -> Iterator[OpenFeatureClient]:
    api.set_provider(OFREPProvider(secured.url, headers_factory=lambda: {"Authorization": f"Bearer {READER}"}), domain="ofrep-stock")
    yield api.get_client("ofrep-stock")
    api.shutdown()


def test_stock_ofrep_provider_agrees_with_route(secured: RollgateServer, ofrep_client: OpenFeatureClient, make_client: Callable[..., rollgate.Client]) -> None:
    """3,000 keys (an override among them): version, variant, reason, bucket and a feature, as Route answers them."""
    admin = make_client(secured.url, token=OPERATOR)
    create_rollout(admin, "checkout", features={"new-ui": True, "legacy": False})
    set_weight(admin, "checkout", 2500)
    admin.rollouts.SetOverride(rs.SetOverrideRequest(name="checkout", key="vip", variant=rollout_pb2.VARIANT_CANARY, reason="test"))
    keys = [f"user-{i}" for i in range(3000)]
    keys[5] = "vip"
    canary = 0
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        want = admin.decisions.RouteBatch(pb.RouteBatchRequest(rollout="checkout", keys=batch)).results
        for key, w in zip(batch, want):
            got = ofrep_client.get_string_details("checkout", "none", EvaluationContext(targeting_key=key))
            assert (got.value, got.variant, got.reason, got.error_code) == (w.version, VARIANTS[w.variant], REASONS[w.reason], None), key
            assert got.flag_metadata["bucket"] == w.bucket and got.flag_metadata["stage"] == "canary"
            feature = ofrep_client.get_boolean_value("checkout/new-ui", False, EvaluationContext(targeting_key=key))
            assert feature == ("new-ui" in w.features), key
            canary += w.variant == rollout_pb2.VARIANT_CANARY
    assert 300 < canary < 1500
    # A halted rollout reads DISABLED; unknown flags and missing keys give the default and OFREP's code.
    admin.rollouts.Halt(rs.HaltRequest(name="checkout", reason="test"))
    halted = ofrep_client.get_string_details("checkout", "none", EvaluationContext(targeting_key="vip"))
    assert (halted.value, halted.variant, halted.reason) == ("v1", "stable", "DISABLED")
    missing = ofrep_client.get_string_details("nope", "none", EvaluationContext(targeting_key="k"))
    assert (missing.value, missing.error_code) == ("none", ErrorCode.FLAG_NOT_FOUND)
    no_key = ofrep_client.get_string_details("checkout", "none", EvaluationContext())
    assert (no_key.value, no_key.error_code) == ("none", ErrorCode.TARGETING_KEY_MISSING)


def test_stock_ofrep_provider_without_a_token_gets_the_default(secured: RollgateServer) -> None:
    api.set_provider(OFREPProvider(secured.url), domain="ofrep-anonymous")
    try:
        got = api.get_client("ofrep-anonymous").get_string_details("checkout", "none", EvaluationContext(targeting_key="k"))
        assert (got.value, got.error_code) == ("none", ErrorCode.GENERAL)
        assert "unauthorized" in (got.error_message or "")
    finally:
        api.shutdown()
