"""The rollgate client: route, record_outcome, health, watch_health."""

from __future__ import annotations

import threading
import weakref
from datetime import datetime
from types import TracebackType
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple, Type
from urllib.parse import urlsplit

import grpc

from ._local import LocalRouter
from ._outcomes import BatchError, OutcomeBuffer, make_outcome
from ._retry import Backoff, RetryInterceptor, RetryPolicy, TokenInterceptor
from ._types import OutcomeStats, RouteReason, RouteResult, Variant
from ._watch import HealthWatch, OnReconnect
from .v1 import decision_service_pb2 as pb
from .v1 import decision_service_pb2_grpc as pb_grpc
from .v1 import health_pb2
from .v1 import rollout_service_pb2_grpc as rollout_grpc

DEFAULT_TIMEOUT = 10.0
"""Deadline in seconds of a unary call, retries included, unless the client is told otherwise."""

DEFAULT_WATCH_BACKOFF = Backoff(initial=0.25, maximum=10.0)
"""Reconnect backoff of watch_health: 250 ms doubling up to 10 s, reset by every update."""

_CHANNEL_DEFAULTS: Tuple[Tuple[str, Any], ...] = (
    # Reconnect quickly after an outage: the retry and watch backoffs pace the calls, and a
    # channel in a long reconnect backoff of its own would fail them all fast meanwhile.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5000),
    # Notice a server that went away on an idle connection, so that watches reconnect.
    ("grpc.keepalive_time_ms", 30000),
    ("grpc.keepalive_timeout_ms", 10000),
)


class Client:
    """A rollgate client over one gRPC channel; safe to share between threads.

    Close it on shutdown (or use it as a context manager) so that no buffered outcome is lost.
    Failed calls raise ``grpc.RpcError`` with the server's code and message, e.g. NOT_FOUND for
    an unknown rollout, INVALID_ARGUMENT naming the field.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: Optional[str] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),
        flush_interval: float = 1.0,
        max_batch: int = 500,
        max_buffered: int = 100_000,
        on_error: Optional[Callable[[BatchError], None]] = None,
        watch_backoff: Backoff = DEFAULT_WATCH_BACKOFF,
        on_reconnect: Optional[OnReconnect] = None,
        root_certificates: Optional[bytes] = None,
        private_key: Optional[bytes] = None,
        certificate_chain: Optional[bytes] = None,
        channel_options: Sequence[Tuple[str, Any]] = (),
        interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] = (),
    ) -> None:
        """Creates a client of the server at ``base_url``.

        ``http://host:port`` speaks gRPC over cleartext HTTP/2, ``https://host:port`` over TLS
        (``root_certificates``, and ``private_key``/``certificate_chain`` for mTLS). See the
        README for every option.
        """
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url {base_url!r}: want http://host:port or https://host:port")
        options = list(_CHANNEL_DEFAULTS)
        overridden = {name for name, _ in channel_options}
        options = [o for o in options if o[0] not in overridden] + list(channel_options)
        if parts.scheme == "https":
            credentials = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
            self._raw_channel = grpc.secure_channel(parts.netloc, credentials, options=options)
        else:
            self._raw_channel = grpc.insecure_channel(parts.netloc, options=options)
        chain: List[Any] = [RetryInterceptor(retry, timeout), *interceptors]
        if token:
            chain.append(TokenInterceptor(token))
        self._channel = grpc.intercept_channel(self._raw_channel, *chain)
        self.decisions = pb_grpc.DecisionServiceStub(self._channel)
        """The generated DecisionService stub (RouteBatch, StreamOutcomes, …), with the client's token, deadlines and retries."""
        self.rollouts = rollout_grpc.RolloutServiceStub(self._channel)
        """The generated RolloutService stub: the control plane (CreateRollout, SetWeight, Promote, …)."""
        self._watch_backoff = watch_backoff
        self._on_reconnect = on_reconnect
        self._watches: "weakref.WeakSet[HealthWatch]" = weakref.WeakSet()
        self._routers: "weakref.WeakSet[LocalRouter]" = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False
        self._outcomes = OutcomeBuffer(self._send_batch, flush_interval, max_batch, max_buffered, on_error)

    def __enter__(self) -> "Client":
        """Returns the client; leaving the block closes it."""
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        """Closes the client (flushing every outcome)."""
        self.close()

    def route(self, rollout: str, key: str, *, timeout: Optional[float] = None) -> RouteResult:
        """Returns where ``key`` goes in ``rollout``: variant, version, bucket, weight, features, reason.

        Raises ``grpc.RpcError``: NOT_FOUND for an unknown rollout, INVALID_ARGUMENT for an empty
        key or one over 1024 bytes.
        """
        r = self.decisions.Route(pb.RouteRequest(rollout=rollout, key=key), timeout=timeout)
        return RouteResult(
            variant=Variant(r.variant),
            version=r.version,
            bucket=r.bucket,
            weight_bp=r.weight_bp,
            features=tuple(r.features),
            reason=RouteReason(r.reason),
            rollout_version=r.rollout_version,
        )

    def record_outcome(
        self,
        rollout: str,
        *,
        variant: Variant | int,
        success: bool,
        latency_ms: float,
        metrics: Optional[Mapping[str, float]] = None,
        invariant_violations: int = 0,
        key: str = "",
        time: Optional[datetime] = None,
    ) -> None:
        """Buffers one outcome of ``rollout`` and returns at once.

        Outcomes go out in batches (one RecordOutcome call per rollout and batch) when
        ``max_batch`` are buffered for the rollout or ``flush_interval`` after the first was
        buffered, whichever comes first. Raises ValueError for an outcome the server would refuse
        (unknown variant, latency NaN/infinite/negative, over 64 metrics, a non-finite metric) and
        RuntimeError after close().
        """
        self._outcomes.add(rollout, make_outcome(variant, success, latency_ms, metrics, invariant_violations, key, time))

    def flush(self, *, timeout: Optional[float] = None) -> None:
        """Sends every buffered outcome now and waits for it and for the batches already on the wire.

        Raises ``OutcomeDeliveryError`` listing each batch that failed (``BatchError``).
        """
        self._outcomes.flush(timeout)

    def outcome_stats(self) -> OutcomeStats:
        """Returns the outcome buffer's counters."""
        return self._outcomes.stats()

    def health(self, rollout: str, *, timeout: Optional[float] = None) -> health_pb2.RolloutHealth:
        """Returns the rollout's current judgement: score, recommendation, gates, samples, next action."""
        return self.decisions.Health(pb.HealthRequest(rollout=rollout), timeout=timeout).health

    def watch_health(self, rollout: str = "") -> HealthWatch:
        """Subscribes to a rollout's health (``""``: every rollout); iterate the returned watch.

        It reconnects on its own with backoff and resumes; ``close()`` it (or use ``with``) to
        end it, and ``Client.close()`` ends every watch.
        """
        if self._closed:
            raise RuntimeError("the rollgate client is closed: watch_health after close()")
        watch = HealthWatch(self._open_watch, rollout, self._watch_backoff, self._on_reconnect, self._forget_watch)
        with self._lock:
            self._watches.add(watch)
        return watch

    def start_local(
        self,
        rollouts: Sequence[str] = (),
        *,
        startup_timeout: float = 5.0,
        fallback: Variant = Variant.STABLE,
        state_file: Optional[str] = None,
        stale_after: float = 30.0,
        idle_timeout: float = 20.0,
        backoff: Optional[Backoff] = None,
    ) -> LocalRouter:
        """Starts local evaluation: a WatchRoutes subscription whose state the router routes from, in process.

        ``rollouts`` are the names to watch (at most 1,000, each of which must exist; empty: every
        rollout, those created later too). It waits up to ``startup_timeout`` seconds (0: not at
        all) for the first snapshot; then, if none has arrived and ``state_file`` holds a state,
        it routes from that.
        Until there is a state, ``route`` answers ``fallback``. ``stale_after``: seconds without
        hearing from the server before one warning is logged; ``idle_timeout``: seconds of silence
        (not even a heartbeat) after which the stream is taken as dead and reconnected;
        ``backoff``: between reconnects (default ``watch_backoff``). Raises ValueError for bad
        options and RuntimeError after close().
        """
        if self._closed:
            raise RuntimeError("the rollgate client is closed: start_local after close()")
        router = LocalRouter(
            self._open_watch_routes,
            self._outcomes,
            self._forget_router,
            rollouts=list(rollouts),
            startup_timeout=startup_timeout,
            fallback=fallback,
            state_file=state_file,
            stale_after=stale_after,
            idle_timeout=idle_timeout,
            backoff=backoff or self._watch_backoff,
        )
        with self._lock:
            self._routers.add(router)
        return router

    def close(self, *, timeout: Optional[float] = None) -> None:
        """Flushes every buffered outcome, stops the flush timer, ends every watch and closes the channel.

        Raises ``OutcomeDeliveryError`` (after closing everything) if outcomes could not be
        delivered. Closing twice does nothing the second time.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._outcomes.close(timeout)
        finally:
            with self._lock:
                watches = list(self._watches)
            for watch in watches:
                watch.close()
            with self._lock:
                routers = list(self._routers)
            for router in routers:
                router.close()
            self._channel.close()

    def _open_watch(self, rollout: str) -> Any:
        return self.decisions.WatchHealth(pb.WatchHealthRequest(rollout=rollout))

    def _open_watch_routes(self, request: pb.WatchRoutesRequest) -> Any:
        return self.decisions.WatchRoutes(request)

    def _forget_router(self, router: LocalRouter) -> None:
        with self._lock:
            self._routers.discard(router)

    def _forget_watch(self, watch: HealthWatch) -> None:
        with self._lock:
            self._watches.discard(watch)

    def _send_batch(self, rollout: str, outcomes: List[pb.Outcome], timeout: Optional[float]) -> pb.RecordOutcomeResponse:
        return self.decisions.RecordOutcome(pb.RecordOutcomeRequest(rollout=rollout, outcomes=outcomes), timeout=timeout)
