"""route, retries, deadlines and the bearer token against a live server."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any, Callable, List

import grpc
import pytest

import rollgate
from conftest import VECTOR_FILES, RollgateServer, create_rollout, rpc_code, set_weight, unique_name
from rollgate.v1 import event_pb2, rollout_pb2, rollout_service_pb2
from test_bucketing import read_vectors

FAST = rollgate.Backoff(initial=0.01, maximum=0.05)


@pytest.mark.parametrize("file", VECTOR_FILES)
def test_route_matches_vectors(client: rollgate.Client, file: str) -> None:
    """Routes every vector's key in a rollout with the vector's salt at the vector's weight."""
    vectors = read_vectors(file)
    by_salt: dict[str, list[dict]] = {}
    for v in vectors:
        by_salt.setdefault(v["salt"], []).append(v)
    checked = 0
    mismatches = []
    for salt, rows in by_salt.items():
        name = unique_name("vec")
        create_rollout(client, name, salt=salt)
        by_weight: dict[int, list[dict]] = {}
        for v in rows:
            by_weight.setdefault(v["weight_bp"], []).append(v)
        for weight, at_weight in by_weight.items():
            set_weight(client, name, weight)
            for v in at_weight:
                r = client.route(name, v["key"])
                want_variant = rollgate.Variant[v["variant"].removeprefix("VARIANT_")]
                want = (v["bucket"], want_variant, {rollgate.Variant.STABLE: "v1", rollgate.Variant.CANARY: "v2"}[want_variant], weight, rollgate.RouteReason.WEIGHT)
                got = (r.bucket, r.variant, r.version, r.weight_bp, r.reason)
                if got != want or rollgate.bucket(salt, v["key"]) != r.bucket:
                    mismatches.append((salt, v["key"][:40], got, want))
                checked += 1
    assert mismatches == []
    assert checked == len(vectors)


def test_route_answers_and_refusals(client: rollgate.Client) -> None:
    name = unique_name("route")
    created = create_rollout(client, name, stable_version="1.4.2", canary_version="1.5.0")
    client.rollouts.SetOverride(rollout_service_pb2.SetOverrideRequest(name=name, key="vip", variant=rollout_pb2.VARIANT_CANARY, reason="pin"))
    r = client.route(name, "vip")
    assert (r.variant, r.version, r.reason, r.rollout_version) == (rollgate.Variant.CANARY, "1.5.0", rollgate.RouteReason.OVERRIDE, created.version + 1)
    assert r.bucket == rollgate.bucket(name, "vip")  # the salt defaults to the name

    long = "k" * 1024
    assert client.route(name, long).bucket == rollgate.bucket(name, long)
    with pytest.raises(grpc.RpcError) as refused:
        client.route(name, long + "k")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as empty:
        client.route(name, "")
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "key" in empty.value.details()
    with pytest.raises(grpc.RpcError) as missing:
        client.route("no-such-rollout", "k")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


class AttemptCounter(grpc.UnaryUnaryClientInterceptor):
    """Counts unary attempts (it sits inside the client's retry loop) and may run a hook before each."""

    def __init__(self, before: Callable[[int], None] = lambda n: None) -> None:
        self.n = 0
        self.before = before

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.n += 1
        self.before(self.n)
        return continuation(details, request)


def free_port() -> int:
    """Returns a loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Forwarder:
    """Forwards every TCP connection accepted on a port to a target port."""

    def __init__(self, port: int, target: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", port))
        self.target = target
        self.sockets: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [conn, upstream]
            threading.Thread(target=self._pipe, args=(conn, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, conn), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        for s in self.sockets:
            s.close()


def test_a_refused_connection_is_retried_up_to_max_attempts(make_client: Callable[..., rollgate.Client]) -> None:
    counter = AttemptCounter()
    c = make_client(f"http://127.0.0.1:{free_port()}", retry=rollgate.RetryPolicy(max_attempts=3, backoff=FAST), interceptors=[counter])
    with pytest.raises(grpc.RpcError) as failed:
        c.route("any", "k")
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert counter.n == 3


def test_a_call_succeeds_once_the_server_is_reachable_during_the_retries(server: RollgateServer, client: rollgate.Client, make_client: Callable[..., rollgate.Client]) -> None:
    name = unique_name("retry")
    create_rollout(client, name)
    port = free_port()
    forwarders: List[Forwarder] = []

    def before(n: int) -> None:
        if n == 3:  # nothing listens for the first two attempts
            forwarders.append(Forwarder(port, server.port))

    counter = AttemptCounter(before)
    c = make_client(f"http://127.0.0.1:{port}", retry=rollgate.RetryPolicy(max_attempts=50, backoff=rollgate.Backoff(0.05, 0.2)), interceptors=[counter])
    try:
        r = c.route(name, "user-1")
        assert r.bucket == rollgate.bucket(name, "user-1")
        # The channel may fail an attempt or two fast while it reconnects: at least three.
        assert counter.n >= 3
    finally:
        for f in forwarders:
            f.close()


def test_other_codes_are_not_retried(server: RollgateServer, make_client: Callable[..., rollgate.Client]) -> None:
    counter = AttemptCounter()
    c = make_client(server.url, retry=rollgate.RetryPolicy(max_attempts=3, backoff=FAST), interceptors=[counter])
    for key, code in (("k", grpc.StatusCode.NOT_FOUND), ("", grpc.StatusCode.INVALID_ARGUMENT)):
        with pytest.raises(grpc.RpcError) as failed:
            c.route("no-such-rollout", key)
        assert failed.value.code() == code
    assert counter.n == 2


class SilentServer:
    """Accepts TCP connections and never answers: every call to it waits for its deadline."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for s in self.held:
            s.close()


def test_deadlines(server: RollgateServer, client: rollgate.Client, make_client: Callable[..., rollgate.Client]) -> None:
    silent = SilentServer()
    try:
        # The client's default deadline ends a call that gets no answer...
        with pytest.raises(grpc.RpcError) as expired:
            make_client(f"http://127.0.0.1:{silent.port}", timeout=0.3).route("r", "k")
        assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # ...and so does a per-call timeout when the client has none.
        with pytest.raises(grpc.RpcError) as per_call:
            make_client(f"http://127.0.0.1:{silent.port}", timeout=None).route("r", "k", timeout=0.3)
        assert per_call.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        silent.close()
    # A per-call timeout wins over the client's default.
    name = unique_name("deadline")
    create_rollout(client, name)
    tiny = make_client(server.url, timeout=1e-9)
    assert tiny.route(name, "k", timeout=30).bucket == rollgate.bucket(name, "k")


def test_bearer_token(tmp_path: Path, start_server: Callable[..., RollgateServer], make_client: Callable[..., rollgate.Client]) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            [
                {"name": "ops", "token": "ops-secret-0123456789", "role": "operator"},
                {"name": "svc", "token": "svc-secret-0123456789", "role": "reader"},
            ]
        )
    )
    s = start_server("--tokens", str(tokens))
    ops = make_client(s.url, token="ops-secret-0123456789")
    name = unique_name("auth")
    create_rollout(ops, name)

    for c in (make_client(s.url), make_client(s.url, token="wrong-token-0123456789")):
        with pytest.raises(grpc.RpcError) as refused:
            c.route(name, "k")
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    counter = AttemptCounter()
    reader = make_client(s.url, token="svc-secret-0123456789", interceptors=[counter])
    assert reader.route(name, "k").bucket == rollgate.bucket(name, "k")
    # A reader may not report outcomes: the batch is refused, reported, dropped, not retried.
    for _ in range(3):
        reader.record_outcome(name, variant=rollgate.Variant.STABLE, success=True, latency_ms=1)
    with pytest.raises(rollgate.OutcomeDeliveryError) as undelivered:
        reader.flush()
    [failure] = undelivered.value.failures
    assert (failure.rollout, failure.count, failure.requeued, failure.code) == (name, 3, False, grpc.StatusCode.PERMISSION_DENIED)
    stats = reader.outcome_stats()
    assert (stats.dropped, stats.buffered, stats.sent) == (3, 0, 0)
    assert counter.n == 2  # Route, and one RecordOutcome
    reader.close()  # nothing left to send

    # The token rides on streams too: the audit log streams with it and is refused without.
    events = reader_stream = make_client(s.url, token="svc-secret-0123456789").rollouts.WatchEvents(rollout_service_pb2.WatchEventsRequest(name=name))
    first = next(reader_stream)
    assert first.event.type == event_pb2.EVENT_TYPE_CREATED
    events.cancel()
    anonymous = make_client(s.url).rollouts.WatchEvents(rollout_service_pb2.WatchEventsRequest(name=name))
    with pytest.raises(grpc.RpcError) as refused_stream:
        next(anonymous)
    assert rpc_code(refused_stream.value) == grpc.StatusCode.UNAUTHENTICATED
