"""The outcome buffer against a live server."""

from __future__ import annotations

import math
import threading
from typing import Callable, List

import grpc
import pytest

import rollgate
from conftest import RollgateServer, create_rollout, eventually, fast_analysis, set_weight, unique_name
from rollgate.v1 import health_pb2
from test_route import free_port


def wait_for_samples(c: rollgate.Client, name: str, stable: int, canary: int) -> health_pb2.RolloutHealth:
    """Polls Health until its samples are exactly stable/canary (the window may be read at the next evaluation)."""
    seen: List[health_pb2.RolloutHealth] = []

    def check() -> bool:
        h = c.health(name)
        seen.append(h)
        return (h.samples.stable, h.samples.canary) == (stable, canary)

    try:
        eventually(f"samples stable={stable} canary={canary}", check)
    finally:
        if seen:
            last = seen[-1].samples
            assert (last.stable, last.canary) == (stable, canary)
    return seen[-1]


def sent_or_fail(c: rollgate.Client) -> int:
    """Returns the outcomes sent so far, failing at once when any was dropped in the background."""
    stats = c.outcome_stats()
    assert stats.dropped == 0, f"outcomes dropped in the background: {stats}"
    return stats.sent


def test_record_outcome_batches_and_close_loses_nothing(server: RollgateServer, client: rollgate.Client) -> None:
    name = unique_name("outcomes")
    create_rollout(client, name, analysis=fast_analysis())
    set_weight(client, name, 5000)

    # A flush interval far beyond the test: only the 500-outcome rule and close() send anything.
    c = rollgate.Client(server.url, flush_interval=3600)
    stable = canary = 0
    for i in range(1234):
        if i % 3 == 0:
            c.record_outcome(name, variant=rollgate.Variant.CANARY, success=i % 10 != 0, latency_ms=5 + i % 40, metrics={"cart_value": float(i)}, key=f"user-{i}")
            canary += 1
        else:
            c.record_outcome(name, variant=rollgate.Variant.STABLE, success=True, latency_ms=5 + i % 40)
            stable += 1
    # The 500th and the 1000th outcome each sent a batch at once; 234 wait for close().
    eventually("two full batches", lambda: sent_or_fail(c) == 1000)
    stats = c.outcome_stats()
    assert (stats.buffered, stats.sent, stats.accepted, stats.batches) == (234, 1000, 1000, 2)
    c.close()
    stats = c.outcome_stats()
    assert stats == rollgate.OutcomeStats(buffered=0, in_flight=0, sent=1234, accepted=1234, ignored=0, dropped=0, batches=3)
    with pytest.raises(RuntimeError):
        c.record_outcome(name, variant=rollgate.Variant.STABLE, success=True, latency_ms=1)
    wait_for_samples(client, name, stable, canary)


def test_record_outcome_flushes_on_its_own(client: rollgate.Client, server: RollgateServer, make_client: Callable[..., rollgate.Client]) -> None:
    name = unique_name("interval")
    create_rollout(client, name, analysis=fast_analysis())
    c = make_client(server.url)  # default: 1 s or 500 outcomes
    for _ in range(7):
        c.record_outcome(name, variant=rollgate.Variant.CANARY, success=True, latency_ms=3)
    stats = c.outcome_stats()
    assert stats.buffered + stats.in_flight + stats.sent == 7
    # No flush(), no close(): the timer sends them.
    eventually("the timer's flush", lambda: sent_or_fail(c) == 7)
    stats = c.outcome_stats()
    assert (stats.batches, stats.accepted) == (1, 7)
    wait_for_samples(client, name, 0, 7)


def test_flush_sends_now_and_reports_refusals(client: rollgate.Client, server: RollgateServer, make_client: Callable[..., rollgate.Client]) -> None:
    name = unique_name("flush")
    create_rollout(client, name, analysis=fast_analysis())
    background: List[rollgate.BatchError] = []
    lock = threading.Lock()

    def on_error(e: rollgate.BatchError) -> None:
        with lock:
            background.append(e)

    c = make_client(server.url, flush_interval=3600, on_error=on_error)
    for _ in range(4):
        c.record_outcome(name, variant=rollgate.Variant.STABLE, success=False, latency_ms=40)
        c.record_outcome("no-such-rollout", variant=rollgate.Variant.STABLE, success=True, latency_ms=1)
    with pytest.raises(rollgate.OutcomeDeliveryError) as undelivered:
        c.flush()
    [failure] = undelivered.value.failures
    assert (failure.rollout, failure.count, failure.requeued, failure.code) == ("no-such-rollout", 4, False, grpc.StatusCode.NOT_FOUND)
    stats = c.outcome_stats()
    assert (stats.sent, stats.dropped, stats.buffered) == (4, 4, 0)
    assert background == []  # flush()'s failures go to its caller
    wait_for_samples(client, name, 4, 0)

    # A batch refused in the background (here: a full batch) goes to on_error.
    small = make_client(server.url, flush_interval=3600, max_batch=2, on_error=on_error)
    for _ in range(2):
        small.record_outcome("no-such-rollout", variant=rollgate.Variant.CANARY, success=True, latency_ms=0)
    eventually("on_error", lambda: len(background) == 1)
    assert (background[0].code, background[0].count, background[0].requeued) == (grpc.StatusCode.NOT_FOUND, 2, False)


@pytest.mark.parametrize(
    "bad",
    [
        {"variant": 0, "success": True, "latency_ms": 1},
        {"variant": rollgate.Variant.STABLE, "success": True, "latency_ms": math.nan},
        {"variant": rollgate.Variant.STABLE, "success": True, "latency_ms": math.inf},
        {"variant": rollgate.Variant.CANARY, "success": True, "latency_ms": -1},
        {"variant": rollgate.Variant.CANARY, "success": True, "latency_ms": 1, "metrics": {"x": math.nan}},
        {"variant": rollgate.Variant.CANARY, "success": True, "latency_ms": 1, "metrics": {f"m{i}": 1.0 for i in range(65)}},
    ],
)
def test_record_outcome_refuses_what_the_server_would(client: rollgate.Client, bad: dict) -> None:
    with pytest.raises(ValueError):
        client.record_outcome("r", **bad)
    assert client.outcome_stats().buffered == 0


def test_max_batch_over_the_server_limit_is_refused(server: RollgateServer) -> None:
    with pytest.raises(ValueError):
        rollgate.Client(server.url, max_batch=10_001)


def test_flush_requeues_while_unavailable() -> None:
    from test_route import AttemptCounter

    counter = AttemptCounter()
    c = rollgate.Client(
        f"http://127.0.0.1:{free_port()}",
        retry=rollgate.RetryPolicy(max_attempts=2, backoff=rollgate.Backoff(0.001, 0.001)),
        flush_interval=3600,
        interceptors=[counter],
    )
    for _ in range(3):
        c.record_outcome("r", variant=rollgate.Variant.STABLE, success=True, latency_ms=1)
    with pytest.raises(rollgate.OutcomeDeliveryError) as undelivered:
        c.flush()
    [failure] = undelivered.value.failures
    assert (failure.requeued, failure.code, failure.count) == (True, grpc.StatusCode.UNAVAILABLE, 3)
    assert counter.n == 2
    stats = c.outcome_stats()
    assert (stats.buffered, stats.dropped) == (3, 0)  # kept to send again
    # close() tries once more and reports what it could not deliver.
    with pytest.raises(rollgate.OutcomeDeliveryError) as on_close:
        c.close()
    assert on_close.value.failures[0].code == grpc.StatusCode.UNAVAILABLE


class Concurrency(grpc.UnaryUnaryClientInterceptor):
    """Tracks how many unary calls run at once, from the moment it is armed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.armed = False
        self.now = self.max = self.n = 0

    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        with self.lock:
            self.now += 1
            if self.armed:
                self.n += 1
                self.max = max(self.max, self.now)
        try:
            return continuation(client_call_details, request)
        finally:
            with self.lock:
                self.now -= 1


def test_outage_probes_one_batch_at_a_time_then_delivers_everything(
    server: RollgateServer, client: rollgate.Client, make_client: Callable[..., rollgate.Client]
) -> None:
    """After an UNAVAILABLE batch: one probe at a time, none sent as batches fill; the first through sends everything."""
    from test_route import Forwarder

    name = unique_name("outage")
    create_rollout(client, name, analysis=fast_analysis())
    port = free_port()
    calls = Concurrency()
    c = make_client(f"http://127.0.0.1:{port}", retry=rollgate.RetryPolicy(max_attempts=1), flush_interval=0.02, max_batch=10, interceptors=[calls])

    def record(n: int) -> None:
        for _ in range(n):
            c.record_outcome(name, variant=rollgate.Variant.CANARY, success=True, latency_ms=1)

    record(10)
    eventually("the outage", lambda: (lambda s: s.outage and s.in_flight == 0)(c.outcome_stats()))
    with calls.lock:
        calls.armed = True
    record(990)  # 99 batches' worth: none is sent as it fills
    eventually("ten probes", lambda: calls.n >= 10)
    assert calls.max == 1, f"{calls.max} calls at once during the outage, want one probe at a time"
    s = c.outcome_stats()
    assert (s.buffered + s.in_flight, s.sent, s.dropped) == (1000, 0, 0)

    forwarder = Forwarder(port, server.port)
    try:
        eventually("everything delivered", lambda: sent_or_fail(c) == 1000)
        s = c.outcome_stats()
        assert (s.outage, s.buffered, s.accepted) == (False, 0, 1000)
        wait_for_samples(client, name, 0, 1000)
    finally:
        forwarder.close()


class Gate(grpc.UnaryUnaryClientInterceptor):
    """Holds the first call made once armed until released."""

    def __init__(self) -> None:
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()
        self._once = threading.Lock()

    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        if self.armed and self._once.acquire(blocking=False):
            self.entered.set()
            self.release.wait(30)
        return continuation(client_call_details, request)


def test_flush_waits_for_what_the_end_of_an_outage_sends(server: RollgateServer, client: rollgate.Client, make_client: Callable[..., rollgate.Client]) -> None:
    """A flush that starts while the probe is on the wire returns once the batches its success sent are done."""
    from test_route import Forwarder

    name = unique_name("flush-outage")
    create_rollout(client, name, analysis=fast_analysis())
    port = free_port()
    gate = Gate()
    c = make_client(f"http://127.0.0.1:{port}", retry=rollgate.RetryPolicy(max_attempts=1), flush_interval=0.02, max_batch=10, interceptors=[gate])
    for _ in range(1000):
        c.record_outcome(name, variant=rollgate.Variant.CANARY, success=True, latency_ms=1)
    eventually("the outage", lambda: (lambda s: s.outage and s.in_flight == 0)(c.outcome_stats()))
    forwarder = Forwarder(port, server.port)
    try:
        gate.armed = True
        assert gate.entered.wait(30), "no probe"
        done = threading.Event()
        threading.Thread(target=lambda: (c.flush(timeout=30), done.set()), daemon=True).start()
        threading.Event().wait(0.1)  # let flush start waiting for the probe
        gate.release.set()
        assert done.wait(60), "flush did not return"
        s = c.outcome_stats()
        assert (s.sent, s.in_flight, s.buffered) == (1000, 0, 0), s
    finally:
        forwarder.close()
