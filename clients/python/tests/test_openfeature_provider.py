"""The in-process OpenFeature provider (rollgate.openfeature_provider) through openfeature-sdk, against a live server."""

from __future__ import annotations

import threading
from typing import Callable, List, Tuple

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.provider import ProviderStatus
from openfeature.track import TrackingEventDetails

import rollgate
from conftest import RollgateServer, create_rollout, eventually, fast_analysis, set_weight, unique_name
from rollgate.openfeature_provider import RollgateProvider
from rollgate.v1 import decision_service_pb2 as pb
from rollgate.v1 import rollout_pb2
from rollgate.v1 import rollout_service_pb2 as rs
from test_outcomes import wait_for_samples

REASONS = {pb.ROUTE_REASON_WEIGHT: "SPLIT", pb.ROUTE_REASON_OVERRIDE: "TARGETING_MATCH", pb.ROUTE_REASON_STAGE: "STATIC", pb.ROUTE_REASON_ROLLED_BACK: "DISABLED", pb.ROUTE_REASON_HALTED: "DISABLED"}
VARIANTS = {rollout_pb2.VARIANT_STABLE: "stable", rollout_pb2.VARIANT_CANARY: "canary"}


def test_provider_through_the_sdk(start_server: Callable[..., RollgateServer], make_client: Callable[..., rollgate.Client]) -> None:
    """READY, Route's answers for 5,000 keys, errors, a rollback as CONFIGURATION_CHANGED, track moving Health, STALE and READY."""
    s = start_server()
    admin = make_client(s.url)
    checkout, search = unique_name("of-checkout"), unique_name("of-search")
    create_rollout(admin, checkout, features={"new-ui": True, "legacy": False})
    set_weight(admin, checkout, 4000)
    admin.rollouts.SetOverride(rs.SetOverrideRequest(name=checkout, key="vip", variant=rollout_pb2.VARIANT_CANARY, reason="test"))
    create_rollout(admin, search, stable_version="s1", canary_version="s2", analysis=fast_analysis())

    app = make_client(s.url, flush_interval=0.05, watch_backoff=rollgate.Backoff(initial=0.05, maximum=0.2))
    events: List[Tuple[ProviderEvent, EventDetails]] = []
    lock = threading.Lock()

    def record(kind: ProviderEvent) -> Callable[[EventDetails], None]:
        def handler(d: EventDetails) -> None:
            if d.provider_name == "rollgate":  # not the no-op provider's READY at add_handler
                with lock:
                    events.append((kind, d))
        return handler

    domain = unique_name("of-domain")
    client = api.get_client(domain)
    for kind in (ProviderEvent.PROVIDER_READY, ProviderEvent.PROVIDER_STALE, ProviderEvent.PROVIDER_CONFIGURATION_CHANGED):
        client.add_handler(kind, record(kind))
    api.set_provider_and_wait(RollgateProvider(app, startup_timeout=20), domain=domain)
    try:
        assert client.get_provider_status() == ProviderStatus.READY
        eventually("READY", lambda: [k for k, _ in list(events)] == [ProviderEvent.PROVIDER_READY], within=10)

        keys = [f"user-{i}" for i in range(5000)]
        keys[3] = "vip"
        canary = 0
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            for key, w in zip(batch, admin.decisions.RouteBatch(pb.RouteBatchRequest(rollout=checkout, keys=batch)).results):
                got = client.get_string_details(checkout, "none", EvaluationContext(targeting_key=key))
                assert (got.value, got.variant, got.reason, got.error_code) == (w.version, VARIANTS[w.variant], REASONS[w.reason], None), key
                assert (got.flag_metadata["bucket"], got.flag_metadata["weightBp"], got.flag_metadata["stage"]) == (w.bucket, 4000, "canary")
                assert client.get_boolean_value(f"{checkout}/new-ui", False, EvaluationContext(targeting_key=key)) == ("new-ui" in w.features)
                canary += w.variant == rollout_pb2.VARIANT_CANARY
        assert 1000 < canary < 4000

        ctx = EvaluationContext(targeting_key="k")
        assert client.get_string_details("nope", "d", ctx).error_code == ErrorCode.FLAG_NOT_FOUND
        assert client.get_boolean_details(f"{checkout}/nope", True, ctx).error_code == ErrorCode.FLAG_NOT_FOUND
        assert client.get_string_details(checkout, "d", EvaluationContext()).error_code == ErrorCode.TARGETING_KEY_MISSING
        assert client.get_string_details(checkout, "d", EvaluationContext(targeting_key="x" * 1025)).error_code == ErrorCode.INVALID_CONTEXT
        assert client.get_boolean_details(checkout, False, ctx).error_code == ErrorCode.TYPE_MISMATCH

        # A rollback arrives as CONFIGURATION_CHANGED naming the rollout's flags, and reads DISABLED.
        admin.rollouts.Rollback(rs.RollbackRequest(name=checkout, reason="test"))
        changed = eventually("configuration changed", lambda: next((d for k, d in list(events) if k == ProviderEvent.PROVIDER_CONFIGURATION_CHANGED), None), within=15)
        assert sorted(changed.flags_changed or []) == [checkout, f"{checkout}/legacy", f"{checkout}/new-ui"]
        rolled = client.get_string_details(checkout, "none", EvaluationContext(targeting_key="vip"))
        assert (rolled.value, rolled.variant, rolled.reason, rolled.flag_metadata["stage"]) == ("v1", "stable", "DISABLED", "rolled_back")

        # track: one outcome per key, for the variant the key is routed to; Health counts them.
        before = admin.health(search).samples
        track_keys = [f"t-{i}" for i in range(40)]
        on_canary = 0
        for key in track_keys:
            on_canary += client.get_string_details(search, "", EvaluationContext(targeting_key=key)).variant == "canary"
            client.track(search, EvaluationContext(targeting_key=key), TrackingEventDetails(value=12.0, attributes={"success": True}))
        wait_for_samples(admin, search, before.stable + len(track_keys) - on_canary, before.canary + on_canary)

        # The server goes away: STALE, answers from the last state; it comes back: READY.
        port, db = s.port, s.db
        s.stop()
        eventually("stale", lambda: any(k == ProviderEvent.PROVIDER_STALE for k, _ in list(events)), within=15)
        assert client.get_string_value(search, "", EvaluationContext(targeting_key="k")) in ("s1", "s2")
        start_server(listen=f"127.0.0.1:{port}", db=db)
        eventually("ready again", lambda: [k for k, _ in list(events)][-1] == ProviderEvent.PROVIDER_READY, within=30)
        assert [k for k, _ in events if k != ProviderEvent.PROVIDER_CONFIGURATION_CHANGED] == [
            ProviderEvent.PROVIDER_READY, ProviderEvent.PROVIDER_STALE, ProviderEvent.PROVIDER_READY,
        ]
    finally:
        api.shutdown()


def test_track_latency_order(start_server: Callable[..., RollgateServer], make_client: Callable[..., rollgate.Client]) -> None:
    """track's latency is the attribute latencyMs when given, else details.value: the order of every rollgate provider."""
    s = start_server()
    admin = make_client(s.url)
    name = unique_name("of-track")
    create_rollout(admin, name, stable_version="s1", canary_version="s2")
    app = make_client(s.url, flush_interval=0.05)
    recorded: List[float] = []
    real = app.record_outcome

    def spy(rollout: str, **kw):  # type: ignore[no-untyped-def]
        recorded.append(kw["latency_ms"])
        return real(rollout, **kw)

    app.record_outcome = spy  # type: ignore[method-assign]
    domain = unique_name("of-track-domain")
    provider = RollgateProvider(app, startup_timeout=20)
    api.set_provider_and_wait(provider, domain=domain)
    try:
        client = api.get_client(domain)
        ctx = EvaluationContext(targeting_key="k-1")
        client.track(name, ctx, TrackingEventDetails(value=99.0, attributes={"latencyMs": 12.5}))
        client.track(name, ctx, TrackingEventDetails(value=7.0))
        client.track(name, ctx, TrackingEventDetails(attributes={"latencyMs": 3}))
        assert recorded == [12.5, 7.0, 3.0]
    finally:
        provider.shutdown()
