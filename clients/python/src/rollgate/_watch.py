"""watch_health: a WatchHealth subscription that reconnects with backoff and resumes."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Callable, Dict, Iterator, Optional, Type

import grpc

from ._retry import Backoff
from .v1 import decision_service_pb2 as pb

OpenStream = Callable[[str], Any]
"""Opens one WatchHealth call: returns an iterator of HealthUpdate that is also a grpc.Call."""

OnReconnect = Callable[[str, Optional[grpc.RpcError], int], None]
"""Told before each reconnect: the rollout, the error that ended the stream (None for a clean end), the reconnects in a row."""

FINAL_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
"""Codes no reconnect can cure: the watch ends by raising the error. Anything else reconnects."""


def is_newer(prev: Optional[pb.HealthUpdate], nxt: pb.HealthUpdate) -> bool:
    """Returns whether ``nxt`` should be delivered after ``prev``, the last update delivered for its rollout.

    Always when there is none or the deleted flag changed; otherwise when ``health.evaluated_at``
    is later, or the same with different content (a state change without a new evaluation).
    """
    if prev is None or prev.deleted != nxt.deleted:
        return True
    before = prev.health.evaluated_at.ToNanoseconds()
    after = nxt.health.evaluated_at.ToNanoseconds()
    if after != before:
        return after > before
    return prev.health != nxt.health


class HealthWatch(Iterator[pb.HealthUpdate]):
    """A running WatchHealth subscription: iterate it for ``HealthUpdate`` messages.

    The first update is the current health, then one per evaluation or state change. When the
    stream breaks or ends (server restart, network blip) it re-subscribes after a backoff and
    resumes, dropping updates that are not newer than the last one delivered (see ``is_newer``);
    ``seq`` is renumbered to stay strictly increasing across reconnects. Iteration stops after
    ``close()`` (callable from any thread, or by leaving a ``with`` block) and raises the
    ``grpc.RpcError`` for codes no reconnect can cure (NOT_FOUND, PERMISSION_DENIED, UNIMPLEMENTED, …).
    """

    def __init__(self, open_stream: OpenStream, rollout: str, backoff: Backoff, on_reconnect: Optional[OnReconnect], on_close: Callable[["HealthWatch"], None]) -> None:
        """Creates the watch; the first stream opens on the first ``next()``."""
        self._open = open_stream
        self._rollout = rollout
        self._backoff = backoff
        self._on_reconnect = on_reconnect
        self._on_close = on_close
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        self._updates = self._run()

    def __next__(self) -> pb.HealthUpdate:
        """Returns the next update, waiting for it."""
        return next(self._updates)

    def __iter__(self) -> "HealthWatch":
        """Returns the watch itself."""
        return self

    def __enter__(self) -> "HealthWatch":
        """Returns the watch; leaving the block closes it."""
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        """Closes the watch."""
        self.close()

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._stop.is_set()

    def close(self) -> None:
        """Ends the watch: cancels the stream on the wire; iteration then stops. Safe from any thread, repeatedly."""
        self._stop.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()
        self._on_close(self)

    def _run(self) -> Iterator[pb.HealthUpdate]:
        last: Dict[str, pb.HealthUpdate] = {}
        seq = 0
        failures = 0
        while not self._stop.is_set():
            ended: Optional[grpc.RpcError] = None
            call = self._open(self._rollout)
            with self._lock:
                self._call = call
            try:
                if self._stop.is_set():
                    return
                for update in call:
                    failures = 0
                    name = update.health.rollout
                    if not is_newer(last.get(name), update):
                        continue
                    last[name] = update
                    seq += 1
                    out = pb.HealthUpdate(seq=seq, deleted=update.deleted)
                    if update.HasField("health"):
                        out.health.CopyFrom(update.health)
                    yield out
            except grpc.RpcError as e:
                if self._stop.is_set():
                    return
                if e.code() in FINAL_CODES:
                    raise
                ended = e
            finally:
                with self._lock:
                    self._call = None
                call.cancel()
            failures += 1
            if self._on_reconnect is not None:
                self._on_reconnect(self._rollout, ended, failures)
            if self._stop.wait(self._backoff.delay(failures)):
                return
