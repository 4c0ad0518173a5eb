"""Local mode against a real server: the same answers as Route in every stage, and a kill -9."""

from __future__ import annotations

import logging
import time
from typing import Callable, Dict, List

import pytest

import rollgate
from conftest import RollgateServer, create_rollout, eventually, fast_analysis, set_weight, unique_name
from rollgate.v1 import decision_service_pb2 as pb
from rollgate.v1 import rollout_pb2
from rollgate.v1 import rollout_service_pb2 as rs
from test_outcomes import wait_for_samples

F = rollgate.FallbackReason


def same_answer(local: rollgate.RouteResult, remote: pb.RouteResponse) -> bool:
    """Whether a local answer is the server's, field for field."""
    return (local.fallback, local.variant, local.version, local.bucket, local.weight_bp, local.features, local.reason, local.rollout_version) == (
        F.NONE, remote.variant, remote.version, remote.bucket, remote.weight_bp, tuple(remote.features), remote.reason, remote.rollout_version,
    )


def rollout_version(c: rollgate.Client, name: str) -> int:
    return c.rollouts.GetRollout(rs.GetRolloutRequest(name=name)).rollout.version


def test_local_matches_remote_route_in_every_stage(server: RollgateServer, client: rollgate.Client) -> None:
    """One rollout per stage (features on and off, overrides both ways); 10,000 keys each, local vs the server."""
    stages = [rollout_pb2.STAGE_CANARY, rollout_pb2.STAGE_STAGING, rollout_pb2.STAGE_PRODUCTION, rollout_pb2.STAGE_ROLLED_BACK, rollout_pb2.STAGE_HALTED]
    names: List[str] = []
    for stage in stages:
        name = unique_name(f"local-{rollout_pb2.Stage.Name(stage)}")
        names.append(name)
        create_rollout(client, name, salt=name + "-salt")
        for feature, on in {"new-ui": True, "beta": False, "Dark.mode": True}.items():
            client.rollouts.SetFeature(rs.SetFeatureRequest(name=name, feature=feature, enabled=on, reason="test"))
        for key, variant in {"user-7": rollout_pb2.VARIANT_CANARY, "user-42": rollout_pb2.VARIANT_STABLE, "user-9999": rollout_pb2.VARIANT_CANARY}.items():
            client.rollouts.SetOverride(rs.SetOverrideRequest(name=name, key=key, variant=variant, reason="test"))
        if stage == rollout_pb2.STAGE_CANARY:
            set_weight(client, name, 3333)
        elif stage == rollout_pb2.STAGE_STAGING:
            client.rollouts.Promote(rs.PromoteRequest(name=name, target=rs.PROMOTE_TARGET_STAGING, force=True, reason="test"))
        elif stage == rollout_pb2.STAGE_PRODUCTION:
            client.rollouts.Promote(rs.PromoteRequest(name=name, target=rs.PROMOTE_TARGET_PRODUCTION, force=True, reason="test"))
        elif stage == rollout_pb2.STAGE_ROLLED_BACK:
            client.rollouts.Rollback(rs.RollbackRequest(name=name, reason="test"))
        else:
            client.rollouts.Halt(rs.HaltRequest(name=name, reason="test"))
    router = client.start_local(names, startup_timeout=20)
    keys = [f"user-{i}" for i in range(10_000)]
    for stage, name in zip(stages, names):
        want = rollout_version(client, name)
        eventually(f"{name} at version {want}", lambda: router.route(name, "k").rollout_version == want)
        mismatches = []
        for start in range(0, len(keys), 1000):
            batch = client.decisions.RouteBatch(pb.RouteBatchRequest(rollout=name, keys=keys[start : start + 1000]))
            for key, remote in zip(keys[start : start + 1000], batch.results):
                local = router.route(name, key)
                if not same_answer(local, remote):
                    mismatches.append((key, local, remote))
        for key in keys[::100]:
            remote = client.decisions.Route(pb.RouteRequest(rollout=name, key=key))
            local = router.route(name, key)
            if not same_answer(local, remote):
                mismatches.append((key, local, remote))
        assert mismatches == [], f"{rollout_pb2.Stage.Name(stage)}: {mismatches[:3]}"
    s = router.stats()
    assert (s.malformed, s.rollouts, s.connected) == (0, len(names), True)


def test_local_routes_through_a_kill_9(start_server: Callable[..., RollgateServer], make_client: Callable[..., rollgate.Client], caplog: pytest.LogCaptureFixture) -> None:
    """Kill -9 the server, route and record for 30 s, restart on the same database: SetWeight arrives, outcomes are accepted."""
    caplog.set_level(logging.INFO, logger="rollgate")
    s = start_server()
    max_buffered, recorded = 2000, 3000
    c = make_client(
        s.url,
        retry=rollgate.RetryPolicy(max_attempts=2, backoff=rollgate.Backoff(initial=0.05, maximum=0.1)),
        flush_interval=0.2,
        max_batch=500,
        max_buffered=max_buffered,
    )
    name = unique_name("kill9")
    create_rollout(c, name, analysis=fast_analysis())
    set_weight(c, name, 3000)
    c.rollouts.SetOverride(rs.SetOverrideRequest(name=name, key="vip", variant=rollout_pb2.VARIANT_CANARY, reason="test"))
    router = c.start_local([name], startup_timeout=20, stale_after=2, backoff=rollgate.Backoff(initial=0.05, maximum=0.5))
    keys = ["vip"] + [f"user-{i}" for i in range(999)]
    before: Dict[str, rollgate.RouteResult] = {k: router.route(name, k) for k in keys}
    assert all(r.fallback == F.NONE for r in before.values())

    s.proc.kill()
    s.proc.wait()
    start = time.monotonic()
    routed = outcomes = 0
    while time.monotonic() - start < 30:
        for k in keys:
            r = router.route(name, k)
            assert r == before[k], f"after {time.monotonic() - start:.1f}s without a server, route({k}) = {r}, before the kill {before[k]}"
            routed += 1
        # 3,000 outcomes over the first 15 s, all canary so that the server's count is exact.
        while outcomes < recorded and outcomes < (time.monotonic() - start) / 0.005:
            c.record_outcome(name, variant=rollgate.Variant.CANARY, success=True, latency_ms=12)
            outcomes += 1
        time.sleep(0.02)
    assert outcomes == recorded
    ls, ost = router.stats(), c.outcome_stats()
    print(f"outage: {routed} local decisions in 30 s; router {ls}; outcomes {ost}")
    assert ls.ready and not ls.connected and ls.stale and ls.staleness >= 30
    assert ls.fallbacks == {F.NOT_READY: 0, F.UNKNOWN_ROLLOUT: 0, F.INVALID_KEY: 0}
    assert ost.outage and ost.sent == 0 and ost.buffered <= max_buffered
    assert ost.buffered + ost.in_flight + ost.dropped == recorded
    assert ost.dropped == ost.overflow >= recorded - max_buffered - 500
    assert "WatchRoutes stream ended" in caplog.text and "local routing state is stale" in caplog.text

    restarted = start_server(listen=f"127.0.0.1:{s.port}", db=s.db)
    assert restarted.port == s.port
    # The operator's change comes from another client (the service's channel reconnects on its own).
    # (its own subchannel: grpcio would otherwise share the one in reconnect backoff)
    operator = make_client(restarted.url, channel_options=[("grpc.use_local_subchannel_pool", 1)])
    set_weight(operator, name, 7000)
    want = rollout_version(operator, name)
    eventually("the SetWeight to reach the local router", lambda: (lambda r: r.rollout_version == want and r.weight_bp == 7000)(router.route(name, "k")))
    for k in keys[1:]:
        assert router.route(name, k).variant == rollgate.variant_of(rollgate.bucket(name, k), 7000)
    c.flush()
    final = c.outcome_stats()
    print(f"after the restart: outcomes {final}")
    assert final.sent + final.dropped == recorded
    assert (final.accepted, final.buffered, final.outage, final.dropped) == (final.sent, 0, False, ost.dropped)
    wait_for_samples(operator, name, 0, final.sent)


def test_local_refused_by_the_server_answers_the_fallback(server: RollgateServer, client: rollgate.Client, caplog: pytest.LogCaptureFixture) -> None:
    """The server refuses a watch of a rollout that does not exist (NOT_FOUND): logged, and route answers the fallback."""
    import grpc

    caplog.set_level(logging.INFO, logger="rollgate")
    router = client.start_local([unique_name("no-such")], startup_timeout=0, backoff=rollgate.Backoff(initial=0.01, maximum=0.05))
    eventually("the refusal", lambda: isinstance(router.stats().last_error, grpc.RpcError) and router.stats().last_error.code() == grpc.StatusCode.NOT_FOUND)  # type: ignore[union-attr]
    r = router.route("no-such", "k")
    assert (r.fallback, r.variant) == (F.NOT_READY, rollgate.Variant.STABLE)
    assert "WatchRoutes refused" in caplog.text
    router.close()
