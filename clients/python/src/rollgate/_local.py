"""Local evaluation: route in process from the routing state streamed by WatchRoutes."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from ._bucketing import BUCKETS, bucket_prefixed
from ._outcomes import OutcomeBuffer
from ._retry import Backoff
from ._types import FallbackReason, RouteReason, RouteResult, Variant
from ._watch import FINAL_CODES
from .v1 import decision_service_pb2 as pb
from .v1 import rollout_pb2

_log = logging.getLogger("rollgate")

MAX_KEY_BYTES = 1024
"""The longest routing key, in bytes of UTF-8."""
MAX_WATCHED_ROLLOUTS = 1000
"""The most names a WatchRoutes request may carry."""

_new = object.__new__
_set = object.__setattr__

# Codes after which the revision held is given up and the next stream asks for a snapshot: the
# server refuses to resume from it (ahead of its log: a server started on another database).
_SNAPSHOT_CODES = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.FAILED_PRECONDITION})

_STAGES = {
    rollout_pb2.STAGE_CANARY,
    rollout_pb2.STAGE_STAGING,
    rollout_pb2.STAGE_PRODUCTION,
    rollout_pb2.STAGE_ROLLED_BACK,
    rollout_pb2.STAGE_HALTED,
}


class MalformedMessage(ValueError):
    """A WatchRoutes message the router refused (the last good state is kept)."""


@dataclass(frozen=True)
class LocalStats:
    """What a local router holds and how fresh it is."""

    ready: bool
    """A state is held (from the server or the state file)."""
    from_file: bool
    """The state held came from ``state_file`` and no server message has confirmed it since."""
    connected: bool
    """A WatchRoutes stream is open and has delivered a message."""
    revision: int
    """The revision of the state held (0 without one)."""
    rollouts: int
    """Rollouts in the state."""
    last_heard: Optional[float]
    """When the server was last heard from (any message, heartbeats included), as ``time.time()``; None if never."""
    staleness: float
    """Seconds since the server was last heard from (since the router started, if never)."""
    stale: bool
    """``staleness > stale_after``."""
    resets: int
    """Snapshots applied."""
    changes: int
    """Change messages applied."""
    heartbeats: int
    """Heartbeats received."""
    reconnects: int
    """Streams that ended and were opened again."""
    malformed: int
    """Messages refused (logged; the last good state was kept)."""
    fallbacks: Dict[FallbackReason, int]
    """Fallback answers by reason."""
    last_error: Optional[BaseException]
    """The error that ended the last stream, if any."""


class _Rollout:
    """A RouteState compiled for routing: one hash, one dict lookup at most, one dict copy per call."""

    __slots__ = ("state", "prefix", "weight", "overrides", "fixed", "canary", "stable", "override")

    def __init__(self, state: pb.RouteState) -> None:
        """Checks the state and prepares its answers (routing spec v1, vectors/README.md); raises MalformedMessage."""
        name = state.rollout
        if not name:
            raise MalformedMessage("empty rollout name")
        if state.weight_bp > BUCKETS:
            raise MalformedMessage(f"weight_bp {state.weight_bp} over {BUCKETS}")
        for key, v in state.overrides.items():
            if v not in (Variant.STABLE, Variant.CANARY):
                raise MalformedMessage(f"overrides[{key!r}]: variant {v}")
        stage = state.stage
        if stage not in _STAGES:
            raise MalformedMessage(f"stage {stage}")
        self.state = state
        self.prefix = (state.salt or name).encode("utf-8") + b"\x00"
        enabled = _utf16_sorted(f for f, on in state.features.items() if on)
        everything = _utf16_sorted(state.features.keys())
        none: Tuple[str, ...] = ()
        reason = RouteReason.WEIGHT
        overridable = False
        self.fixed: Optional[Variant] = None
        canary_features, stable_features = none, none
        if stage == rollout_pb2.STAGE_CANARY:
            self.weight, overridable, canary_features = state.weight_bp, True, enabled
        elif stage == rollout_pb2.STAGE_STAGING:
            self.weight, overridable, self.fixed, reason, canary_features = BUCKETS, True, Variant.CANARY, RouteReason.STAGE, everything
        else:
            self.weight, self.fixed = 0, Variant.STABLE
            if stage == rollout_pb2.STAGE_PRODUCTION:
                reason, canary_features, stable_features = RouteReason.STAGE, enabled, enabled
            elif stage == rollout_pb2.STAGE_ROLLED_BACK:
                reason = RouteReason.ROLLED_BACK
            else:
                reason = RouteReason.HALTED
        self.overrides: Optional[Dict[str, Variant]] = (
            {k: Variant(v) for k, v in state.overrides.items()} if overridable and state.overrides else None
        )

        def answer(variant: Variant, version: str, features: Tuple[str, ...], why: RouteReason) -> Dict[str, Any]:
            return {
                "variant": variant,
                "version": version,
                "bucket": 0,
                "weight_bp": self.weight,
                "features": features,
                "reason": why,
                "rollout_version": state.rollout_version,
                "fallback": FallbackReason.NONE,
            }

        self.canary = answer(Variant.CANARY, state.canary_version, canary_features, reason)
        self.stable = answer(Variant.STABLE, state.stable_version, stable_features, reason)
        self.override = {
            Variant.CANARY: answer(Variant.CANARY, state.canary_version, canary_features, RouteReason.OVERRIDE),
            Variant.STABLE: answer(Variant.STABLE, state.stable_version, stable_features, RouteReason.OVERRIDE),
        }
        if self.fixed is not None:
            # Everyone goes to one side: whatever the bucket against the effective weight (0 or
            # 10,000), route() picks the stage's answer.
            self.canary = self.stable = self.canary if self.fixed == Variant.CANARY else self.stable


def _utf16_sorted(names: Any) -> Tuple[str, ...]:
    """Sorts names by UTF-16 code units, the order the server (JavaScript) sorts them in."""
    return tuple(sorted(names, key=lambda n: n.encode("utf-16-be", "surrogatepass")))


class LocalRouter:
    """Answers ``route`` in process from the state WatchRoutes streams: the answer the server's Route gives.

    Created by ``Client.start_local``. Safe to share between threads; ``close()`` (or ``with``)
    stops the stream, after which ``route`` answers from the last state.
    """

    def __init__(
        self,
        open_stream: Callable[[pb.WatchRoutesRequest], Any],
        outcomes: OutcomeBuffer,
        on_close: Callable[["LocalRouter"], None],
        *,
        rollouts: Sequence[str],
        startup_timeout: float,
        fallback: Variant,
        state_file: Optional[str],
        stale_after: float,
        idle_timeout: float,
        backoff: Backoff,
    ) -> None:
        """Starts the stream thread and waits up to ``startup_timeout`` for the first snapshot (see Client.start_local)."""
        if len(rollouts) > MAX_WATCHED_ROLLOUTS:
            raise ValueError(f"rollouts: at most {MAX_WATCHED_ROLLOUTS} names, got {len(rollouts)}")
        if fallback not in (Variant.STABLE, Variant.CANARY):
            raise ValueError(f"fallback: must be Variant.STABLE or Variant.CANARY, got {fallback!r}")
        if not stale_after > 0 or not idle_timeout > 0 or startup_timeout < 0:
            raise ValueError("stale_after and idle_timeout must be > 0, startup_timeout >= 0")
        self._open = open_stream
        self._outcomes = outcomes
        self._on_close = on_close
        self._names = list(rollouts)
        self._fallback_variant = Variant(fallback)
        self._state_file = state_file
        self._stale_after = stale_after
        self._idle_timeout = idle_timeout
        self._backoff = backoff
        # The state: _rollouts is what route() reads (one dict, swapped whole); _revision and
        # _from_file go with it; _held tells "no state" from "no such rollout".
        self._rollouts: Dict[str, _Rollout] = {}
        self._revision = 0
        self._from_file = False
        self._held = False
        self._apply_lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._last_heard: Optional[float] = None  # monotonic
        self._last_heard_wall: Optional[float] = None
        self._connected = False
        self._counts = {"resets": 0, "changes": 0, "heartbeats": 0, "reconnects": 0, "malformed": 0}
        self._fallbacks = {FallbackReason.NOT_READY: 0, FallbackReason.UNKNOWN_ROLLOUT: 0, FallbackReason.INVALID_KEY: 0}
        self._count_lock = threading.Lock()
        self._last_error: Optional[BaseException] = None
        self._call: Any = None
        self._call_lock = threading.Lock()
        self._listeners: List[Tuple[Optional[Callable[[List[str]], None]], Optional[Callable[[bool], None]]]] = []
        self._stream_thread = threading.Thread(target=self._run, name="rollgate-watch-routes", daemon=True)
        self._monitor_thread = threading.Thread(target=self._monitor, name="rollgate-local-monitor", daemon=True)
        self._stream_thread.start()
        self._monitor_thread.start()
        if startup_timeout > 0:
            self._ready.wait(startup_timeout)
        if state_file and not self._held:
            self._load_state_file()

    # --- the hot path ---------------------------------------------------------------------

    def route(self, rollout: str, key: str) -> RouteResult:
        """Returns where ``key`` goes in ``rollout``, from the state held; never raises, never waits.

        Without a state, for a rollout the state does not hold and for an invalid key it answers
        the fallback variant with ``fallback`` set to the reason (``reason`` is then UNSPECIFIED,
        ``version`` empty).
        """
        r = self._rollouts.get(rollout)
        if r is None:
            return self._fallback(rollout, key, FallbackReason.UNKNOWN_ROLLOUT if self._held else FallbackReason.NOT_READY)
        try:
            kb = key.encode()
        except (AttributeError, UnicodeEncodeError):
            return self._fallback(rollout, key, FallbackReason.INVALID_KEY)
        if not 0 < len(kb) <= MAX_KEY_BYTES:
            return self._fallback(rollout, key, FallbackReason.INVALID_KEY)
        b = bucket_prefixed(r.prefix, kb)
        ov = r.overrides
        if ov is not None and key in ov:
            fields = r.override[ov[key]].copy()
        else:
            fields = (r.canary if b < r.weight else r.stable).copy()
        fields["bucket"] = b
        # A frozen dataclass built field by field costs several times the hash; filling its
        # __dict__ at once gives the same object (equality, repr, attributes) for a dict copy.
        result = _new(RouteResult)
        _set(result, "__dict__", fields)
        return result

    def _fallback(self, rollout: str, key: Any, why: FallbackReason) -> RouteResult:
        """The fallback variant, no version, weight or features, and the key's bucket under the
        default salt (the rollout's name), 0 for an invalid key — the TypeScript client's answer."""
        with self._count_lock:
            self._fallbacks[why] += 1
        b = 0
        if why != FallbackReason.INVALID_KEY:
            try:
                kb = key.encode()
                if 0 < len(kb) <= MAX_KEY_BYTES:
                    b = bucket_prefixed(str(rollout).encode("utf-8", "replace") + b"\x00", kb)
            except (AttributeError, UnicodeEncodeError):
                pass
        return RouteResult(variant=self._fallback_variant, version="", bucket=b, weight_bp=0, features=(), reason=RouteReason.UNSPECIFIED, rollout_version=0, fallback=why)

    # --- the rest of the API --------------------------------------------------------------

    def rollout_state(self, rollout: str) -> Optional[pb.RouteState]:
        """Returns the RouteState held for ``rollout``, or None."""
        r = self._rollouts.get(rollout)
        return None if r is None else r.state

    def rollout_names(self) -> List[str]:
        """Returns the names of the rollouts held."""
        return list(self._rollouts)

    def subscribe(
        self,
        on_change: Optional[Callable[[List[str]], None]] = None,
        on_connection: Optional[Callable[[bool], None]] = None,
    ) -> Callable[[], None]:
        """Calls ``on_change(rollouts)`` after each update that changes rollouts (after the first
        state), and ``on_connection(connected)`` when the stream drops or answers again, from the
        stream thread; returns the function that unsubscribes."""
        entry = (on_change, on_connection)
        self._listeners.append(entry)
        return lambda: self._listeners.remove(entry) if entry in self._listeners else None

    def _notify_connection(self, connected: bool) -> None:
        for _, on_connection in list(self._listeners):
            if on_connection is not None:
                on_connection(connected)

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Waits until the first state from the server is applied; returns whether it was."""
        return self._ready.wait(timeout)

    def stats(self) -> LocalStats:
        """Returns what the router holds and how fresh it is."""
        now = time.monotonic()
        staleness = self._staleness(now)
        with self._count_lock:
            counts = dict(self._counts)
            fallbacks = dict(self._fallbacks)
        return LocalStats(
            ready=self._held,
            from_file=self._from_file,
            connected=self._connected,
            revision=self._revision,
            rollouts=len(self._rollouts),
            last_heard=self._last_heard_wall,
            staleness=staleness,
            stale=staleness > self._stale_after,
            fallbacks=fallbacks,
            last_error=self._last_error,
            **counts,
        )

    def close(self) -> None:
        """Stops the stream and waits for its threads; ``route`` goes on answering from the last state."""
        self._stop.set()
        with self._call_lock:
            call = self._call
        if call is not None:
            call.cancel()
        if threading.current_thread() not in (self._stream_thread, self._monitor_thread):
            self._stream_thread.join()
            self._monitor_thread.join()
        self._on_close(self)

    def __enter__(self) -> "LocalRouter":
        """Returns the router; leaving the block closes it."""
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        """Closes the router."""
        self.close()

    # --- the stream -----------------------------------------------------------------------

    def _count(self, name: str) -> None:
        with self._count_lock:
            self._counts[name] += 1

    def _staleness(self, now: float) -> float:
        return now - (self._last_heard if self._last_heard is not None else self._started)

    def _run(self) -> None:
        failures = 0
        snapshot = False
        while not self._stop.is_set():
            error, applied = self._stream_once(snapshot)
            if self._stop.is_set():
                return
            if self._connected:
                self._notify_connection(False)
            self._connected = False
            self._last_error = error
            if applied:
                failures = 0
            failures += 1
            self._count("reconnects")
            code = error.code() if isinstance(error, grpc.RpcError) else None
            snapshot = code in _SNAPSHOT_CODES
            delay = self._backoff.delay(failures)
            if code in FINAL_CODES and failures & (failures - 1) == 0:
                # Refused (unknown rollout name, bad token, old server): no reconnect will cure
                # it until someone fixes it, so say so loudly, at attempts 1, 2, 4, 8, …
                _log.error(
                    "rollgate: WatchRoutes refused (attempt %d): routing on from the last state held (or the fallback), retrying in %.2fs: %s",
                    failures, delay, _describe(error),
                )
            elif failures == 1:
                _log.warning(
                    "rollgate: WatchRoutes stream ended: routing on from the last state held (revision %d), reconnecting in %.2fs: %s",
                    self._revision, delay, _describe(error),
                )
            else:
                _log.debug("rollgate: WatchRoutes reconnect %d failed: %s", failures, _describe(error))
            if self._stop.wait(delay):
                return

    def _stream_once(self, snapshot: bool) -> Tuple[Optional[BaseException], bool]:
        request = pb.WatchRoutesRequest(rollouts=self._names, after_revision=0 if snapshot or not self._held else self._revision)
        applied = False
        try:
            call = self._open(request)
        except grpc.RpcError as e:
            return e, False
        with self._call_lock:
            self._call = call
            self._call_started = time.monotonic()
        try:
            if self._stop.is_set():
                return None, False
            for message in call:
                self._heard()
                try:
                    self._apply(message)
                except MalformedMessage as e:
                    self._count("malformed")
                    _log.error("rollgate: malformed WatchRoutes message refused: keeping the last good state: %s", e)
                    return e, applied
                applied = True
            return RuntimeError("WatchRoutes stream ended by the server"), applied
        except grpc.RpcError as e:
            if self._stop.is_set():
                return None, applied
            details = (e.details() or "") if hasattr(e, "details") else ""
            if "deserializ" in details.lower():
                self._count("malformed")
                _log.error("rollgate: undecodable WatchRoutes message: keeping the last good state: %s", _describe(e))
            if self._idle_cancelled:
                return TimeoutError("no WatchRoutes message (not even a heartbeat) within the idle timeout"), applied
            return e, applied
        finally:
            with self._call_lock:
                self._call = None
                self._idle_cancelled = False
            call.cancel()

    _idle_cancelled = False
    _call_started = 0.0

    def _heard(self) -> None:
        self._last_heard = time.monotonic()
        self._last_heard_wall = time.time()
        if not self._connected:
            self._connected = True
            self._notify_connection(True)
            if self._counts["reconnects"]:
                _log.info("rollgate: WatchRoutes stream reconnected (revision %d)", self._revision)
            self._outcomes.server_back()

    def _monitor(self) -> None:
        """Logs once when the state turns stale and once when it is fresh again; cancels a stream gone quiet."""
        stale = False
        tick = min(1.0, self._stale_after / 4, self._idle_timeout / 4)
        while not self._stop.wait(tick):
            now = time.monotonic()
            age = self._staleness(now)
            if not stale and age > self._stale_after:
                stale = True
                _log.warning(
                    "rollgate: local routing state is stale: not heard from the server for %.1fs (threshold %.1fs); routing on from revision %d (%d rollouts): %s",
                    age, self._stale_after, self._revision, len(self._rollouts), _describe(self._last_error),
                )
            elif stale and age <= self._stale_after:
                stale = False
                _log.info("rollgate: local routing state is fresh again (revision %d)", self._revision)
            with self._call_lock:
                call = self._call
                # Quiet since the stream opened or since its last message, whichever is later.
                quiet = call is not None and now - max(self._last_heard or 0.0, self._call_started) > self._idle_timeout
                if quiet:
                    self._idle_cancelled = True
            if quiet:
                call.cancel()

    def _apply(self, m: pb.WatchRoutesResponse) -> None:
        """Applies one message, all or nothing; raises MalformedMessage (changing nothing) for a bad one."""
        compiled: List[_Rollout] = []
        for i, state in enumerate(m.routes):
            try:
                compiled.append(_Rollout(state))
            except MalformedMessage as e:
                raise MalformedMessage(f"routes[{i}] ({state.rollout!r}): {e}") from None
        for i, name in enumerate(m.removed):
            if not name:
                raise MalformedMessage(f"removed[{i}]: empty rollout name")
        before = self._rollouts if self._held and self._listeners else None
        with self._apply_lock:
            if m.reset:
                self._install({r.state.rollout: r for r in compiled}, m.revision, False)
                self._count("resets")
            else:
                if not self._held:
                    raise MalformedMessage("a change before any snapshot (reset)")
                if m.revision < self._revision:
                    raise MalformedMessage(f"revision {m.revision} is behind the {self._revision} held")
                if not compiled and not m.removed:
                    self._revision = m.revision
                    self._from_file = False
                    self._count("heartbeats")
                    self._ready.set()
                    return
                rollouts = dict(self._rollouts)
                for name in m.removed:
                    rollouts.pop(name, None)
                for r in compiled:
                    rollouts[r.state.rollout] = r
                self._install(rollouts, m.revision, False)
                self._count("changes")
            self._persist()
            self._ready.set()
        if before is not None:
            after = self._rollouts
            changed = [n for n, r in after.items() if n not in before or before[n].state.rollout_version != r.state.rollout_version]
            changed += [n for n in before if n not in after]
            if changed:
                for on_change, _ in list(self._listeners):
                    if on_change is not None:
                        on_change(changed)

    def _install(self, rollouts: Dict[str, _Rollout], revision: int, from_file: bool) -> None:
        self._revision = revision
        self._from_file = from_file
        self._rollouts = rollouts
        self._held = True

    # --- the state file -------------------------------------------------------------------

    def _persist(self) -> None:
        """Writes the state as a WatchRoutesResponse snapshot in proto JSON, atomically (temporary file, rename)."""
        if not self._state_file:
            return
        snap = pb.WatchRoutesResponse(revision=self._revision, reset=True)
        for name in sorted(self._rollouts):
            snap.routes.append(self._rollouts[name].state)
        try:
            directory = os.path.dirname(os.path.abspath(self._state_file))
            fd, tmp = tempfile.mkstemp(prefix=os.path.basename(self._state_file) + ".tmp-", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(json_format.MessageToJson(snap))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self._state_file)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as e:
            _log.error("rollgate: could not write the local routing state file %s: %s", self._state_file, e)

    def _load_state_file(self) -> None:
        """Installs the state file's state unless a state is held already; a bad file is logged and ignored."""
        assert self._state_file
        try:
            with open(self._state_file, encoding="utf-8") as f:
                snap = json_format.Parse(f.read(), pb.WatchRoutesResponse())
            rollouts = {s.rollout: _Rollout(s) for s in snap.routes}
        except FileNotFoundError:
            return
        except (OSError, ValueError, json_format.ParseError, DecodeError) as e:
            _log.error("rollgate: local routing state file %s ignored: %s", self._state_file, e)
            return
        with self._apply_lock:
            if self._held:
                return
            self._install(rollouts, snap.revision, True)
        _log.warning(
            "rollgate: no snapshot from the server at start: routing from the state file %s (revision %d, %d rollouts)",
            self._state_file, snap.revision, len(rollouts),
        )


def _describe(error: Optional[BaseException]) -> str:
    if error is None:
        return "no error"
    if isinstance(error, grpc.RpcError) and hasattr(error, "code") and hasattr(error, "details"):
        return f"{error.code().name}: {error.details()}"
    return str(error) or repr(error)
