"""health and watch_health against a live server, including a server restart under a watch."""

from __future__ import annotations

import queue
import threading
from typing import Callable, List, Optional

import grpc
import pytest

import rollgate
from conftest import RollgateServer, create_rollout, fast_analysis, unique_name
from rollgate.v1 import decision_service_pb2, rollout_pb2


class Reader:
    """Reads a watch on a thread, so the test can wait for each update with a bound."""

    def __init__(self, watch: rollgate.HealthWatch) -> None:
        self.watch = watch
        self.updates: "queue.Queue[object]" = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for u in self.watch:
                self.updates.put(u)
            self.updates.put(StopIteration())
        except BaseException as e:  # noqa: BLE001 — handed to the test
            self.updates.put(e)

    def next(self, within: float = 30) -> decision_service_pb2.HealthUpdate:
        """Returns the next update; fails when the watch ended or none came in time."""
        try:
            item = self.updates.get(timeout=within)
        except queue.Empty:
            pytest.fail(f"no health update within {within} s")
        if isinstance(item, BaseException):
            raise AssertionError(f"the watch ended: {item!r}") from item
        assert isinstance(item, decision_service_pb2.HealthUpdate)
        return item

    def end(self, within: float = 30) -> Optional[BaseException]:
        """Waits for the watch to end; returns the error it raised (None for a plain stop)."""
        while True:
            try:
                item = self.updates.get(timeout=within)
            except queue.Empty:
                pytest.fail(f"the watch did not end within {within} s")
            if isinstance(item, StopIteration):
                return None
            if isinstance(item, BaseException):
                return item


def test_health(client: rollgate.Client) -> None:
    name = unique_name("health")
    created = create_rollout(client, name, analysis=fast_analysis())
    h = client.health(name)
    assert (h.rollout, h.stage, h.weight_bp) == (name, rollout_pb2.STAGE_CANARY, created.weight_bp)
    assert (h.samples.stable, h.samples.canary) == (0, 0)
    assert 0 <= h.score <= 1
    with pytest.raises(grpc.RpcError) as missing:
        client.health("no-such-rollout")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_watch_health_streams_evaluations(client: rollgate.Client) -> None:
    name = unique_name("watch")
    create_rollout(client, name, analysis=fast_analysis())
    with client.watch_health(name) as watch:
        reader = Reader(watch)
        first = reader.next()
        assert (first.seq, first.health.rollout, first.deleted) == (1, name, False)
        # The next evaluation (every analysis.interval = 1 s) is a newer update.
        second = reader.next()
        assert (second.seq, second.health.rollout) == (2, name)
        assert second.health.evaluated_at.ToNanoseconds() >= first.health.evaluated_at.ToNanoseconds()

        # Outcomes recorded through the buffer show up in a later update's samples.
        for _ in range(25):
            client.record_outcome(name, variant=rollgate.Variant.CANARY, success=True, latency_ms=2)
        client.flush()
        seq = second.seq
        while True:
            u = reader.next()
            assert u.seq == seq + 1
            seq = u.seq
            if u.health.samples.canary == 25:
                break
    assert reader.end() is None  # leaving the with block ends the iteration quietly


def test_watch_health_ends_on_errors_no_reconnect_cures(client: rollgate.Client) -> None:
    reader = Reader(client.watch_health("no-such-rollout"))
    error = reader.end()
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_close_ends_watches(server: RollgateServer) -> None:
    c = rollgate.Client(server.url)
    name = unique_name("close")
    create_rollout(c, name, analysis=fast_analysis())
    reader = Reader(c.watch_health(name))
    reader.next()
    c.close()
    assert reader.end() is None


def test_watch_health_reconnects_across_a_restart(start_server: Callable[..., RollgateServer], make_client: Callable[..., rollgate.Client]) -> None:
    """Restarts the server on the same port and database under a running watch."""
    s = start_server()
    reconnects: List[Optional[grpc.RpcError]] = []
    c = make_client(s.url, watch_backoff=rollgate.Backoff(0.05, 0.5), on_reconnect=lambda rollout, error, attempt: reconnects.append(error))
    name = unique_name("restart")
    create_rollout(c, name, analysis=fast_analysis())
    with c.watch_health(name) as watch:
        reader = Reader(watch)
        before = reader.next()

        s.stop()
        start_server(listen=f"127.0.0.1:{s.port}", db=s.db)

        # Updates delivered after the restart are newer and keep counting up.
        seq, at = before.seq, before.health.evaluated_at.ToNanoseconds()
        while not reconnects:
            u = reader.next()
            assert u.seq == seq + 1 and u.health.evaluated_at.ToNanoseconds() >= at
            seq, at = u.seq, u.health.evaluated_at.ToNanoseconds()
        after = reader.next()
        assert (after.seq, after.health.rollout) == (seq + 1, name)
        assert after.health.evaluated_at.ToNanoseconds() > at
    assert c.route(name, "k").bucket == rollgate.bucket(name, "k")  # the rollout survived the restart
