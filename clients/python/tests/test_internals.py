"""Pure parts of the client: the watch's duplicate rule, backoff bounds, the buffer's cap."""

from __future__ import annotations

import threading
from typing import List

import grpc
import pytest

import rollgate
from rollgate._watch import is_newer
from rollgate.v1 import decision_service_pb2, health_pb2
from test_route import free_port

T0 = 1_800_000_000


def update(seconds: int, score: float = 1.0, deleted: bool = False) -> decision_service_pb2.HealthUpdate:
    health = health_pb2.RolloutHealth(rollout="r", score=score)
    health.evaluated_at.FromSeconds(seconds)
    return decision_service_pb2.HealthUpdate(health=health, deleted=deleted)


@pytest.mark.parametrize(
    ("case", "nxt", "want"),
    [
        ("the same update again (a resubscription's first message)", update(T0), False),
        ("an older evaluation", update(T0 - 1, 0.5), False),
        ("a newer evaluation", update(T0 + 1), True),
        ("a state change at the same evaluation time", update(T0, 0.85), True),
        ("the rollout deleted", update(T0, deleted=True), True),
    ],
)
def test_is_newer(case: str, nxt: decision_service_pb2.HealthUpdate, want: bool) -> None:
    assert is_newer(update(T0), nxt) is want, case
    assert is_newer(None, nxt) is True


def test_backoff_delay_stays_within_its_bounds() -> None:
    b = rollgate.Backoff(initial=0.1, maximum=1.0, multiplier=2)
    for n, ceiling in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0], start=1):
        for _ in range(200):
            assert ceiling / 2 <= b.delay(n) <= ceiling


def test_max_buffered_drops_the_oldest_during_an_outage() -> None:
    overflow: List[rollgate.BatchError] = []
    lock = threading.Lock()

    def on_error(e: rollgate.BatchError) -> None:
        if e.code is None:  # the buffer's own overflow, not a call's failure
            with lock:
                overflow.append(e)

    c = rollgate.Client(
        f"http://127.0.0.1:{free_port()}",
        retry=rollgate.RetryPolicy(max_attempts=1),
        flush_interval=3600,
        max_batch=2,
        max_buffered=3,
        on_error=on_error,
    )
    for _ in range(5):
        c.record_outcome("r", variant=rollgate.Variant.CANARY, success=True, latency_ms=1)
    with pytest.raises(rollgate.OutcomeDeliveryError) as undelivered:
        c.flush()
    assert {f.code for f in undelivered.value.failures} == {grpc.StatusCode.UNAVAILABLE}
    stats = c.outcome_stats()
    assert (stats.buffered, stats.dropped, stats.sent) == (3, 2, 0)
    assert sum(e.count for e in overflow) == 2
    with pytest.raises(rollgate.OutcomeDeliveryError):
        c.close()


def test_base_url_must_be_http_or_https() -> None:
    for bad in ("127.0.0.1:8080", "grpc://h:1", "http://"):
        with pytest.raises(ValueError):
            rollgate.Client(bad)
