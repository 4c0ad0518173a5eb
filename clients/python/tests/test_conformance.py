"""gRPC conformance from grpcio: the fast path and connect-node answer alike on the wire.

The server serves the hot DecisionService RPCs on a hand-written fast path unless started with
``--no-grpc-fast-path``, when connect-node serves them. Every check here runs against both, with
the generated stubs on a plain ``grpc.insecure_channel`` (not the ``rollgate.Client`` wrapper),
the Python counterpart of test/e2e/grpc-conformance.test.ts.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import grpc
import pytest
from google.rpc import status_pb2
from grpc_status import rpc_status

import rollgate
from conftest import RollgateServer, eventually, fast_analysis, unique_name
from rollgate.v1 import (
    decision_service_pb2 as dpb,
    decision_service_pb2_grpc as dgrpc,
    errors_pb2,
    rollout_pb2,
    rollout_service_pb2 as rpb,
    rollout_service_pb2_grpc as rgrpc,
)

OPERATOR = "operator-token-0123456789"
REPORTER = "reporter-token-0123456789"
READER = "reader-token-01234567890"
TOKENS = [
    {"name": "deployer", "token": OPERATOR, "role": "operator"},
    {"name": "app", "token": REPORTER, "role": "reporter"},
    {"name": "dash", "token": READER, "role": "reader"},
]
"""The tokens file of both servers (the same as test/helpers/servers.ts's TEST_TOKENS)."""

PATHS = {"fast-path": (), "connect-node": ("--no-grpc-fast-path",)}
"""The serving paths under test, by test id, with the flags that select them."""

ROLLOUT = "conf"
"""A rollout both servers hold alike (stable v1, canary v2, weight 500 bp); tests never change it."""

TIMEOUT = 30.0
"""A generous deadline for every call, so that a misbehaving server fails a test instead of hanging it."""

Metadata = Tuple[Tuple[str, str], ...]


def bearer(token: str) -> Metadata:
    """Returns call metadata carrying a bearer token."""
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Conformance:
    """A server on one serving path and the generated stubs of a channel to it."""

    path: str
    server: RollgateServer
    channel: grpc.Channel
    decisions: dgrpc.DecisionServiceStub
    rollouts: rgrpc.RolloutServiceStub

    def fast_path_served(self, method: str) -> int:
        """Returns how many calls of a DecisionService method the fast path has served (its /metrics counter)."""
        with urllib.request.urlopen(f"{self.server.url}/metrics", timeout=TIMEOUT) as res:
            text = res.read().decode()
        m = re.search(rf'rollgate_grpc_fast_path_requests_total\{{method="rollgate\.v1\.DecisionService/{method}"\}} (\d+)', text)
        return int(m.group(1)) if m else 0

    def create_rollout(self, name: str, **fields: object) -> rollout_pb2.Rollout:
        """Creates a rollout (stable "v1", canary "v2") with the operator token."""
        r = rollout_pb2.Rollout(name=name, stable_version="v1", canary_version="v2", **fields)  # type: ignore[arg-type]
        return self.rollouts.CreateRollout(rpb.CreateRolloutRequest(rollout=r, reason="conformance"), metadata=bearer(OPERATOR), timeout=TIMEOUT).rollout


@pytest.fixture(scope="module")
def servers() -> Iterator[Dict[str, RollgateServer]]:
    """One server per serving path, each with the tokens file and the rollout ROLLOUT."""
    tmp = Path(tempfile.mkdtemp(prefix="rollgate-py-conformance-"))
    tokens = tmp / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    started: Dict[str, RollgateServer] = {}
    try:
        for path, flags in PATHS.items():
            started[path] = s = RollgateServer("127.0.0.1:0", tmp / f"{path}.db", "--tokens", str(tokens), *flags)
            with grpc.insecure_channel(f"127.0.0.1:{s.port}") as ch:
                rgrpc.RolloutServiceStub(ch).CreateRollout(
                    rpb.CreateRolloutRequest(rollout=rollout_pb2.Rollout(name=ROLLOUT, stable_version="v1", canary_version="v2"), reason="conformance"),
                    metadata=bearer(OPERATOR),
                    timeout=TIMEOUT,
                )
        yield started
    finally:
        for s in started.values():
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(params=list(PATHS), ids=list(PATHS))
def conformance(request: pytest.FixtureRequest, servers: Dict[str, RollgateServer]) -> Iterator[Conformance]:
    """The server of one serving path ("fast-path" or "connect-node") and a fresh channel to it."""
    s = servers[request.param]
    with grpc.insecure_channel(f"127.0.0.1:{s.port}") as ch:
        yield Conformance(request.param, s, ch, dgrpc.DecisionServiceStub(ch), rgrpc.RolloutServiceStub(ch))


def refusal(call: Callable[[], object]) -> grpc.RpcError:
    """Returns the error a call raises; fails when it succeeds."""
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value


def field_violations(e: grpc.RpcError) -> List[errors_pb2.FieldViolation]:
    """Returns the FieldViolations of an error's google.rpc.Status (grpc-status-details-bin).

    ``rpc_status.from_call`` also checks that the Status repeats the call's code and message.
    """
    status: Optional[status_pb2.Status] = rpc_status.from_call(e)  # type: ignore[arg-type]
    assert status is not None, f"no grpc-status-details-bin in {e.trailing_metadata()!r}"  # type: ignore[attr-defined]
    [detail] = status.details
    assert detail.type_url == "type.googleapis.com/rollgate.v1.FieldViolations"
    assert detail.Is(errors_pb2.FieldViolations.DESCRIPTOR)
    fv = errors_pb2.FieldViolations()
    assert detail.Unpack(fv)
    return list(fv.violations)


def outcome(variant: rollout_pb2.Variant, latency_ms: float) -> dpb.Outcome:
    """Returns a successful outcome of a variant."""
    return dpb.Outcome(variant=variant, success=True, latency_ms=latency_ms)


BAD_BATCH = [outcome(rollout_pb2.VARIANT_STABLE, 3), outcome(rollout_pb2.VARIANT_CANARY, -1), outcome(rollout_pb2.VARIANT_CANARY, 4)]
"""A RecordOutcome batch whose outcomes[1] has a negative latency."""


def test_calls_take_the_path_under_test(conformance: Conformance) -> None:
    """A Route is counted by the fast path on the fast-path server only (else the rest proves nothing)."""
    before = conformance.fast_path_served("Route")
    conformance.decisions.Route(dpb.RouteRequest(rollout=ROLLOUT, key="path"), metadata=bearer(READER), timeout=TIMEOUT)
    assert conformance.fast_path_served("Route") - before == (1 if conformance.path == "fast-path" else 0)


def test_route_route_batch_and_record_outcome(conformance: Conformance) -> None:
    """Route and RouteBatch answer with the package's own buckets; RecordOutcome with the accepted count."""
    d, md = conformance.decisions, bearer(OPERATOR)
    r = d.Route(dpb.RouteRequest(rollout=ROLLOUT, key="user-1"), metadata=md, timeout=TIMEOUT)
    assert r.bucket == rollgate.bucket(ROLLOUT, "user-1")
    assert (r.weight_bp, r.version) == (500, "v2" if r.bucket < 500 else "v1")
    keys = ["a", "b", "ключ", "🚀 user"]
    b = d.RouteBatch(dpb.RouteBatchRequest(rollout=ROLLOUT, keys=keys), metadata=md, timeout=TIMEOUT)
    assert [x.bucket for x in b.results] == [rollgate.bucket(ROLLOUT, k) for k in keys]
    assert [x.version for x in b.results] == ["v2" if rollgate.bucket(ROLLOUT, k) < 500 else "v1" for k in keys]

    name = unique_name(f"record-{conformance.path}")
    conformance.create_rollout(name)
    batch = [outcome(rollout_pb2.VARIANT_STABLE, 3), outcome(rollout_pb2.VARIANT_CANARY, 4), outcome(rollout_pb2.VARIANT_STABLE, 5)]
    got = d.RecordOutcome(dpb.RecordOutcomeRequest(rollout=name, outcomes=batch), metadata=bearer(REPORTER), timeout=TIMEOUT)
    assert (got.accepted, got.ignored) == (3, 0)


def test_errors_carry_code_message_and_field_violations(conformance: Conformance) -> None:
    """INVALID_ARGUMENT and NOT_FOUND with connect's exact messages; the details parse as google.rpc.Status."""
    d, md = conformance.decisions, bearer(OPERATOR)
    empty = refusal(lambda: d.Route(dpb.RouteRequest(rollout=ROLLOUT, key=""), metadata=md, timeout=TIMEOUT))
    assert (empty.code(), empty.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "key: must not be empty")
    assert [(v.field, v.description) for v in field_violations(empty)] == [("key", "must not be empty")]

    missing = refusal(lambda: d.Route(dpb.RouteRequest(rollout="ghost", key="k"), metadata=md, timeout=TIMEOUT))
    assert (missing.code(), missing.details()) == (grpc.StatusCode.NOT_FOUND, 'rollout "ghost" not found')

    no_keys = refusal(lambda: d.RouteBatch(dpb.RouteBatchRequest(rollout=ROLLOUT, keys=[]), metadata=md, timeout=TIMEOUT))
    assert (no_keys.code(), no_keys.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "keys: must hold 1..1000 keys")
    assert [v.field for v in field_violations(no_keys)] == ["keys"]


def test_a_batch_with_one_bad_outcome_is_refused_whole(conformance: Conformance) -> None:
    """A negative latency at outcomes[1] refuses the batch, names the field, and records nothing."""
    name = unique_name(f"bad-batch-{conformance.path}")
    conformance.create_rollout(name, analysis=fast_analysis())
    d, md = conformance.decisions, bearer(REPORTER)
    bad = refusal(lambda: d.RecordOutcome(dpb.RecordOutcomeRequest(rollout=name, outcomes=BAD_BATCH), metadata=md, timeout=TIMEOUT))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "outcomes[1].latency_ms" in bad.details()
    assert [v.field for v in field_violations(bad)] == ["outcomes[1].latency_ms"]

    # A later valid batch of one stable and one canary: the samples must count exactly those.
    ok = d.RecordOutcome(
        dpb.RecordOutcomeRequest(rollout=name, outcomes=[outcome(rollout_pb2.VARIANT_STABLE, 1), outcome(rollout_pb2.VARIANT_CANARY, 1)]),
        metadata=md,
        timeout=TIMEOUT,
    )
    assert ok.accepted == 2

    def samples() -> Optional[Tuple[int, int]]:
        s = d.Health(dpb.HealthRequest(rollout=name), metadata=bearer(READER), timeout=TIMEOUT).health.samples
        return (s.stable, s.canary) if s.stable + s.canary >= 2 else None

    # The window may be read at the next evaluation (every second): wait for the valid batch.
    assert eventually("the valid batch in Health", samples) == (1, 1)


def test_both_paths_refuse_a_bad_request_byte_for_byte(servers: Dict[str, RollgateServer]) -> None:
    """The same bad request gets the same code, message and grpc-status-details-bin bytes on both paths."""
    requests: Dict[str, Callable[[dgrpc.DecisionServiceStub], object]] = {
        "empty key": lambda d: d.Route(dpb.RouteRequest(rollout=ROLLOUT, key=""), metadata=bearer(OPERATOR), timeout=TIMEOUT),
        "unknown rollout": lambda d: d.Route(dpb.RouteRequest(rollout="ghost", key="k"), metadata=bearer(OPERATOR), timeout=TIMEOUT),
        "no keys": lambda d: d.RouteBatch(dpb.RouteBatchRequest(rollout=ROLLOUT, keys=[]), metadata=bearer(OPERATOR), timeout=TIMEOUT),
        "bad outcome": lambda d: d.RecordOutcome(dpb.RecordOutcomeRequest(rollout=ROLLOUT, outcomes=BAD_BATCH), metadata=bearer(REPORTER), timeout=TIMEOUT),
        "no token": lambda d: d.Route(dpb.RouteRequest(rollout=ROLLOUT, key="k"), timeout=TIMEOUT),
        "reader reports": lambda d: d.RecordOutcome(dpb.RecordOutcomeRequest(rollout=ROLLOUT, outcomes=BAD_BATCH[:1]), metadata=bearer(READER), timeout=TIMEOUT),
    }

    def answers(s: RollgateServer) -> Dict[str, Tuple[grpc.StatusCode, str, Optional[bytes]]]:
        with grpc.insecure_channel(f"127.0.0.1:{s.port}") as ch:
            d = dgrpc.DecisionServiceStub(ch)
            out = {}
            for what, call in requests.items():
                e = refusal(lambda: call(d))
                bins = [v for k, v in e.trailing_metadata() or () if k == "grpc-status-details-bin"]  # type: ignore[attr-defined]
                assert len(bins) <= 1
                out[what] = (e.code(), e.details(), bins[0] if bins else None)
            return out

    fast, connect = answers(servers["fast-path"]), answers(servers["connect-node"])
    assert fast == connect
    # Field violations come with details bytes; the comparison above covers them too.
    assert all(fast[what][2] for what in ("empty key", "no keys", "bad outcome"))


def test_authentication_and_roles(conformance: Conformance) -> None:
    """No token or an unknown one: UNAUTHENTICATED; a reader reporting: PERMISSION_DENIED; a reporter may Route."""
    d = conformance.decisions
    for md in ((), bearer("unknown-token-0123456789")):
        none = refusal(lambda: d.Route(dpb.RouteRequest(rollout=ROLLOUT, key="k"), metadata=md, timeout=TIMEOUT))
        assert none.code() == grpc.StatusCode.UNAUTHENTICATED
    reader = refusal(
        lambda: d.RecordOutcome(dpb.RecordOutcomeRequest(rollout=ROLLOUT, outcomes=[outcome(rollout_pb2.VARIANT_STABLE, 1)]), metadata=bearer(READER), timeout=TIMEOUT)
    )
    assert reader.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reader.details() == 'token "dash" has role reader; rollgate.v1.DecisionService/RecordOutcome needs reporter'
    ok = d.Route(dpb.RouteRequest(rollout=ROLLOUT, key="k"), metadata=bearer(REPORTER), timeout=TIMEOUT)
    assert (ok.bucket, ok.weight_bp) == (rollgate.bucket(ROLLOUT, "k"), 500)


def test_x_request_id_is_echoed_in_the_initial_metadata(conformance: Conformance) -> None:
    """A sent x-request-id comes back in the response headers."""
    rid = f"conformance-py-{conformance.path}"
    r, call = conformance.decisions.Route.with_call(
        dpb.RouteRequest(rollout=ROLLOUT, key="x"), metadata=bearer(READER) + (("x-request-id", rid),), timeout=TIMEOUT
    )
    assert r.bucket == rollgate.bucket(ROLLOUT, "x")
    assert ("x-request-id", rid) in list(call.initial_metadata())


def test_gzip_compressed_calls(conformance: Conformance) -> None:
    """Route and a 1,000-key RouteBatch sent gzip-compressed succeed (connect-node serves them on both paths)."""
    d, md = conformance.decisions, bearer(READER)
    r = d.Route(dpb.RouteRequest(rollout=ROLLOUT, key="gz"), metadata=md, timeout=TIMEOUT, compression=grpc.Compression.Gzip)
    assert r.bucket == rollgate.bucket(ROLLOUT, "gz")
    keys = [f"user-{i}" for i in range(1000)]
    b = d.RouteBatch(dpb.RouteBatchRequest(rollout=ROLLOUT, keys=keys), metadata=md, timeout=TIMEOUT, compression=grpc.Compression.Gzip)
    assert [x.bucket for x in b.results] == [rollgate.bucket(ROLLOUT, k) for k in keys]


def test_a_request_over_4_mib_is_resource_exhausted(conformance: Conformance) -> None:
    """A 5 MiB key is over the 4 MiB request limit."""
    big = "k" * (5 * 1024 * 1024)
    e = refusal(lambda: conformance.decisions.Route(dpb.RouteRequest(rollout=ROLLOUT, key=big), metadata=bearer(READER), timeout=TIMEOUT))
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_watch_health_streams_current_health_then_updates(conformance: Conformance) -> None:
    """The current health first (seq 1), then an update with the weight a SetWeight set, seq counting up."""
    name = unique_name(f"watch-{conformance.path}")
    conformance.create_rollout(name)
    stream = conformance.decisions.WatchHealth(dpb.WatchHealthRequest(rollout=name), metadata=bearer(READER), timeout=TIMEOUT)
    seen: List[dpb.HealthUpdate] = []
    try:
        for u in stream:
            seen.append(u)
            if len(seen) == 1:
                conformance.rollouts.SetWeight(rpb.SetWeightRequest(name=name, weight_bp=700, reason="conformance"), metadata=bearer(OPERATOR), timeout=TIMEOUT)
            elif u.health.weight_bp == 700:
                break
    finally:
        stream.cancel()
    assert (seen[0].seq, seen[0].health.rollout, seen[0].health.weight_bp, seen[0].deleted) == (1, name, 500, False)
    assert seen[-1].health.weight_bp == 700, f"no update with the new weight before the stream ended: {[u.health.weight_bp for u in seen]}"
    assert [u.seq for u in seen] == list(range(1, len(seen) + 1))


def test_watch_health_of_an_unknown_rollout_is_not_found(conformance: Conformance) -> None:
    """WatchHealth of an unknown rollout ends with NOT_FOUND and connect's message."""
    stream = conformance.decisions.WatchHealth(dpb.WatchHealthRequest(rollout="ghost"), metadata=bearer(READER), timeout=TIMEOUT)
    try:
        e = refusal(lambda: list(stream))
    finally:
        stream.cancel()
    assert (e.code(), e.details()) == (grpc.StatusCode.NOT_FOUND, 'rollout "ghost" not found')


def test_watch_health_ends_at_its_deadline(conformance: Conformance) -> None:
    """A WatchHealth with timeout=0.3 delivers the current health, then ends with DEADLINE_EXCEEDED."""
    stream = conformance.decisions.WatchHealth(dpb.WatchHealthRequest(rollout=ROLLOUT), metadata=bearer(READER), timeout=0.3)
    updates: List[dpb.HealthUpdate] = []
    try:
        e = refusal(lambda: updates.extend(stream))
    finally:
        stream.cancel()
    assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert len(updates) >= 1
    assert (updates[0].seq, updates[0].health.rollout) == (1, ROLLOUT)


def test_the_control_plane_works_over_the_same_channel(conformance: Conformance) -> None:
    """RolloutService/GetRollout answers on the channel the DecisionService calls use."""
    conformance.decisions.Route(dpb.RouteRequest(rollout=ROLLOUT, key="k"), metadata=bearer(READER), timeout=TIMEOUT)
    r = conformance.rollouts.GetRollout(rpb.GetRolloutRequest(name=ROLLOUT), metadata=bearer(READER), timeout=TIMEOUT).rollout
    assert (r.name, r.stable_version, r.canary_version, r.weight_bp) == (ROLLOUT, "v1", "v2", 500)
    assert r.created_by == "deployer"
