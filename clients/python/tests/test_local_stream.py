"""The local router against a scripted WatchRoutes server.

The server here is a plain grpcio handler that sends what the test tells it to, raw bytes
included, so that a test can send what the real server never does (malformed and undecodable
messages, a change before a snapshot) and see exactly what the client asks for on each
reconnect. The real server is tested in test_local_e2e.py.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Union

import grpc
import pytest

import rollgate
from conftest import eventually
from rollgate.v1 import decision_service_pb2 as pb
from rollgate.v1 import rollout_pb2
from test_route import free_port

FAST = rollgate.Backoff(initial=0.01, maximum=0.05)
F = rollgate.FallbackReason


class Stream:
    """One WatchRoutes stream on the scripted server."""

    def __init__(self, request: pb.WatchRoutesRequest, context: grpc.ServicerContext) -> None:
        self.request = request
        self.out: "queue.Queue[Union[bytes, grpc.StatusCode]]" = queue.Queue()
        self.gone = threading.Event()
        context.add_callback(self.gone.set)

    def send(self, message: pb.WatchRoutesResponse) -> None:
        self.out.put(message.SerializeToString())

    def send_raw(self, data: bytes) -> None:
        self.out.put(data)

    def end(self, code: grpc.StatusCode) -> None:
        self.out.put(code)

    def wait_gone(self) -> None:
        assert self.gone.wait(20), "the client kept the stream open"


class ScriptedServer:
    def __init__(self) -> None:
        self.streams: "queue.Queue[Stream]" = queue.Queue()
        self.server = grpc.server(ThreadPoolExecutor(max_workers=8))
        handler = grpc.method_handlers_generic_handler(
            "rollgate.v1.DecisionService",
            {"WatchRoutes": grpc.unary_stream_rpc_method_handler(self._watch, request_deserializer=pb.WatchRoutesRequest.FromString)},
        )
        self.server.add_generic_rpc_handlers((handler,))
        self.url = f"http://127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def _watch(self, request: pb.WatchRoutesRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        stream = Stream(request, context)
        self.streams.put(stream)
        while context.is_active():
            try:
                item = stream.out.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(item, bytes):
                yield item  # no serializer: the bytes go on the wire as the message
            else:
                if item != grpc.StatusCode.OK:
                    context.abort(item, "scripted")
                return

    def next(self) -> Stream:
        try:
            return self.streams.get(timeout=20)
        except queue.Empty:
            pytest.fail("the client opened no WatchRoutes stream within 20 s")


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    s = ScriptedServer()
    yield s
    s.server.stop(0)


def canary_state(name: str, weight: int, version: int) -> pb.RouteState:
    return pb.RouteState(
        rollout=name, rollout_version=version, stage=rollout_pb2.STAGE_CANARY, weight_bp=weight, salt=name,
        stable_version="v1", canary_version="v2", features={"b": True, "a": True, "off": False}, overrides={"vip": rollout_pb2.VARIANT_CANARY},
    )


def test_fallback_until_the_first_snapshot(scripted: ScriptedServer, make_client: Callable[..., rollgate.Client]) -> None:
    c = make_client(scripted.url)
    router = c.start_local(startup_timeout=0, backoff=FAST)
    st = scripted.next()
    assert st.request.after_revision == 0 and list(st.request.rollouts) == []
    r = router.route("r", "user-1")
    assert (r.variant, r.fallback, r.reason, router.stats().ready) == (rollgate.Variant.STABLE, F.NOT_READY, rollgate.RouteReason.UNSPECIFIED, False)

    st.send(pb.WatchRoutesResponse(revision=3, reset=True, routes=[canary_state("r", 10000, 4)]))
    assert router.wait_ready(20)
    r = router.route("r", "user-1")
    assert r == rollgate.RouteResult(
        variant=rollgate.Variant.CANARY, version="v2", bucket=rollgate.bucket("r", "user-1"), weight_bp=10000,
        features=("a", "b"), reason=rollgate.RouteReason.WEIGHT, rollout_version=4,
    )
    u = router.route("nope", "user-1")
    assert u == rollgate.RouteResult(
        variant=rollgate.Variant.STABLE, version="", bucket=rollgate.bucket("nope", "user-1"), weight_bp=0, features=(),
        reason=rollgate.RouteReason.UNSPECIFIED, rollout_version=0, fallback=F.UNKNOWN_ROLLOUT,
    )
    for bad in ("", "k" * 1025, "\ud800", None, 42):
        b = router.route("r", bad)  # type: ignore[arg-type]
        assert (b.fallback, b.variant, b.version, b.bucket, b.rollout_version) == (F.INVALID_KEY, rollgate.Variant.STABLE, "", 0, 0), bad
    assert router.route("r", "k" * 1024).fallback == F.NONE
    s = router.stats()
    assert (s.ready, s.from_file, s.connected, s.revision, s.rollouts, s.resets) == (True, False, True, 3, 1, 1)
    assert s.last_heard is not None
    assert s.fallbacks == {F.NOT_READY: 1, F.UNKNOWN_ROLLOUT: 1, F.INVALID_KEY: 5}

    # A fallback of CANARY, and a start-up wait that the snapshot ends.
    c2 = make_client(scripted.url)

    def serve_late() -> None:
        st = scripted.next()
        threading.Event().wait(0.2)
        st.send(pb.WatchRoutesResponse(revision=3, reset=True, routes=[canary_state("r", 0, 4)]))

    threading.Thread(target=serve_late, daemon=True).start()
    r2 = c2.start_local(startup_timeout=20, fallback=rollgate.Variant.CANARY)
    assert r2.stats().ready, "start_local returned before the snapshot with a start-up timeout of 20 s"
    assert (r2.route("r", "user-1").variant, r2.route("r", "user-1").fallback) == (rollgate.Variant.STABLE, F.NONE)
    assert (r2.route("nope", "user-1").variant, r2.route("nope", "user-1").fallback) == (rollgate.Variant.CANARY, F.UNKNOWN_ROLLOUT)
    with pytest.raises(ValueError):
        c2.start_local(fallback=7)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        c2.start_local(["r"] * 1001)


def test_resumes_and_keeps_the_last_good_state(scripted: ScriptedServer, make_client: Callable[..., rollgate.Client], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rollgate")
    c = make_client(scripted.url)
    router = c.start_local(["r", "s"], startup_timeout=0, backoff=FAST)
    st = scripted.next()
    assert list(st.request.rollouts) == ["r", "s"]
    st.send(pb.WatchRoutesResponse(revision=5, reset=True, routes=[canary_state("r", 0, 1)]))
    st.send(pb.WatchRoutesResponse(revision=7, routes=[canary_state("r", 10000, 2)]))
    # Malformed: a stage no client knows. The whole message is refused, the stream dropped.
    bad = canary_state("r", 0, 3)
    bad.stage = 42  # type: ignore[assignment]
    st.send(pb.WatchRoutesResponse(revision=8, routes=[canary_state("s", 0, 1), bad]))
    st.wait_gone()
    r = router.route("r", "user-1")
    assert (r.variant, r.rollout_version) == (rollgate.Variant.CANARY, 2)
    assert router.route("s", "user-1").fallback == F.UNKNOWN_ROLLOUT

    # It resumes from revision 7; undecodable bytes are refused the same way.
    st = scripted.next()
    assert st.request.after_revision == 7
    st.send_raw(b"\xff\xff\xff\xff")
    # (grpcio ends the call on the client's side only: the server learns at its next write.)

    # A revision going back and a weight over 10,000: refused too.
    st = scripted.next()
    assert st.request.after_revision == 7
    st.send(pb.WatchRoutesResponse(revision=6, routes=[canary_state("s", 0, 1)]))
    st.wait_gone()
    st = scripted.next()
    st.send(pb.WatchRoutesResponse(revision=8, routes=[canary_state("s", 10001, 1)]))
    st.wait_gone()

    # A good change, a deletion, a heartbeat at a later revision, then UNAVAILABLE.
    st = scripted.next()
    st.send(pb.WatchRoutesResponse(revision=9, routes=[canary_state("s", 10000, 1)], removed=["r"]))
    st.send(pb.WatchRoutesResponse(revision=12))
    eventually("revision 12", lambda: router.stats().revision == 12)
    assert router.route("r", "user-1").fallback == F.UNKNOWN_ROLLOUT
    s_ = router.route("s", "user-1")
    assert (s_.variant, s_.fallback) == (rollgate.Variant.CANARY, F.NONE)
    st.end(grpc.StatusCode.UNAVAILABLE)

    # A revision the server refuses (INVALID_ARGUMENT: ahead of its log) is given up.
    st = scripted.next()
    assert st.request.after_revision == 12
    st.end(grpc.StatusCode.INVALID_ARGUMENT)
    st = scripted.next()
    assert st.request.after_revision == 0
    st.send(pb.WatchRoutesResponse(revision=2, reset=True, routes=[canary_state("r", 0, 9)]))
    eventually("the new snapshot", lambda: router.stats().revision == 2)
    assert router.route("s", "user-1").fallback == F.UNKNOWN_ROLLOUT
    s = router.stats()
    assert (s.malformed, s.resets, s.changes, s.heartbeats, s.reconnects) == (4, 2, 2, 1, 6)
    for want in ("malformed WatchRoutes message refused", "stage 42", "undecodable WatchRoutes message", "weight_bp 10001", "revision 6 is behind the 7 held", "WatchRoutes refused"):
        assert want in caplog.text


def test_state_file_serves_when_the_server_is_unreachable_at_boot(
    scripted: ScriptedServer, make_client: Callable[..., rollgate.Client], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rollgate")
    file = str(tmp_path / "routes.json")
    c = make_client(scripted.url)
    router = c.start_local(state_file=file, startup_timeout=0)
    st = scripted.next()
    st.send(pb.WatchRoutesResponse(revision=4, reset=True, routes=[canary_state("r", 5000, 3), canary_state("s", 10000, 1)]))
    assert router.wait_ready(20)
    st.send(pb.WatchRoutesResponse(revision=6, removed=["s"]))
    eventually("revision 6", lambda: router.stats().revision == 6)
    router.close()
    assert Path(file).exists()

    # Nothing listens: after the start-up timeout the router routes from the file.
    dead = make_client(f"http://127.0.0.1:{free_port()}")
    r2 = dead.start_local(state_file=file, startup_timeout=0.2, backoff=FAST)
    s = r2.stats()
    assert (s.ready, s.from_file, s.revision, s.rollouts, s.connected) == (True, True, 6, 1, False)
    for key in ("user-1", "user-2", "vip", "user-3"):
        assert r2.route("r", key) == router.route("r", key)
    assert r2.route("s", "user-1").fallback == F.UNKNOWN_ROLLOUT
    assert "routing from the state file" in caplog.text

    # A file that is not a state is ignored: the fallback answers.
    Path(file).write_text('{"routes": [{"rollout": "r", "stage": 42}]}')
    r3 = dead.start_local(state_file=file, startup_timeout=0)
    assert r3.route("r", "user-1").fallback == F.NOT_READY


def test_staleness_is_visible(scripted: ScriptedServer, make_client: Callable[..., rollgate.Client], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rollgate")
    c = make_client(scripted.url)
    router = c.start_local(startup_timeout=0, stale_after=0.3)
    st = scripted.next()
    st.send(pb.WatchRoutesResponse(revision=1, reset=True, routes=[canary_state("r", 5000, 1)]))
    assert router.wait_ready(20)
    eventually("the state to turn stale", lambda: router.stats().stale)
    eventually("the stale log line", lambda: "local routing state is stale" in caplog.text)
    s = router.stats()
    assert s.staleness > 0.3 and s.connected
    st.send(pb.WatchRoutesResponse(revision=1))
    eventually("fresh again", lambda: "fresh again" in caplog.text)
    r = router.route("r", "vip")
    assert (r.variant, r.reason) == (rollgate.Variant.CANARY, rollgate.RouteReason.OVERRIDE)


def test_reconnects_a_stream_that_goes_quiet(scripted: ScriptedServer, make_client: Callable[..., rollgate.Client]) -> None:
    c = make_client(scripted.url)
    router = c.start_local(startup_timeout=0, idle_timeout=0.3, backoff=FAST)
    st = scripted.next()
    st.send(pb.WatchRoutesResponse(revision=9, reset=True, routes=[canary_state("r", 5000, 1)]))
    st.wait_gone()  # no heartbeat: the client gives the stream up
    assert scripted.next().request.after_revision == 9
    s = router.stats()
    assert s.reconnects >= 1 and "idle timeout" in str(s.last_error)


def test_a_new_stream_gets_its_own_idle_time(scripted: ScriptedServer, make_client: Callable[..., rollgate.Client]) -> None:
    """After a silence longer than idle_timeout, the next stream is not cut for the silence before it."""
    c = make_client(scripted.url)
    router = c.start_local(startup_timeout=0, idle_timeout=2.0, backoff=FAST)
    st = scripted.next()
    st.send(pb.WatchRoutesResponse(revision=9, reset=True, routes=[canary_state("r", 5000, 1)]))
    st.wait_gone()  # 2 s without a message
    st = scripted.next()
    threading.Event().wait(1.0)  # half the idle time of this stream; the last message is 3 s old
    st.send(pb.WatchRoutesResponse(revision=9))
    eventually("the heartbeat on the new stream", lambda: router.stats().heartbeats == 1)
    assert not st.gone.is_set() and router.stats().connected


def test_after_close_route_answers_from_the_last_state(scripted: ScriptedServer) -> None:
    c = rollgate.Client(scripted.url)
    router = c.start_local(startup_timeout=0)
    st = scripted.next()
    st.send(pb.WatchRoutesResponse(revision=1, reset=True, routes=[canary_state("r", 10000, 1)]))
    assert router.wait_ready(20)
    c.close()
    st.wait_gone()
    r = router.route("r", "user-1")
    assert (r.variant, r.fallback) == (rollgate.Variant.CANARY, F.NONE)
    with pytest.raises(RuntimeError):
        c.start_local()
