"""The outcome buffer: record_outcome is synchronous, delivery happens in batches."""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Dict, List, Mapping, Optional

import grpc

from ._types import OutcomeStats, Variant
from .v1 import decision_service_pb2 as pb
from .v1 import rollout_pb2

_log = logging.getLogger("rollgate")

MAX_METRICS_PER_OUTCOME = 64
"""The server's limit of custom metrics per outcome."""
MAX_OUTCOMES_PER_CALL = 10_000
"""The server's limit of outcomes per RecordOutcome call."""


class BatchError(Exception):
    """A batch of outcomes that could not be delivered."""

    def __init__(self, rollout: str, count: int, requeued: bool, error: BaseException) -> None:
        """Creates the error for ``count`` outcomes of ``rollout`` that failed with ``error``."""
        fate = "kept to send again" if requeued else "dropped"
        super().__init__(f"{count} outcomes of {rollout!r} not delivered ({fate}): {_describe(error)}")
        self.rollout = rollout
        """The rollout the outcomes belong to."""
        self.count = count
        """How many outcomes the batch held."""
        self.requeued = requeued
        """True when the outcomes went back to the buffer (UNAVAILABLE through every retry); False when dropped."""
        self.error = error
        """The call's error, usually a ``grpc.RpcError``."""

    @property
    def code(self) -> Optional[grpc.StatusCode]:
        """The gRPC status code of the failure, when it has one."""
        code = getattr(self.error, "code", None)
        return code() if callable(code) else None


class OutcomeDeliveryError(Exception):
    """Raised by ``flush()`` and ``close()`` when some batches could not be delivered."""

    def __init__(self, failures: List[BatchError]) -> None:
        """Creates the error from the failed batches."""
        super().__init__("; ".join(str(f) for f in failures))
        self.failures = failures
        """Every batch that failed, in no particular order."""


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.RpcError) and hasattr(error, "code") and hasattr(error, "details"):
        return f"{error.code().name}: {error.details()}"
    return repr(error)


def make_outcome(
    variant: Variant | int,
    success: bool,
    latency_ms: float,
    metrics: Optional[Mapping[str, float]],
    invariant_violations: int,
    key: str,
    time_: Optional[datetime],
) -> pb.Outcome:
    """Returns the Outcome message, or raises ValueError for input the server would refuse."""
    if variant not in (Variant.STABLE, Variant.CANARY):
        raise ValueError(f"variant: must be Variant.STABLE or Variant.CANARY, got {variant!r}")
    if not isinstance(latency_ms, (int, float)) or not math.isfinite(latency_ms) or latency_ms < 0:
        raise ValueError(f"latency_ms: must be finite and >= 0, got {latency_ms!r}")
    if invariant_violations < 0:
        raise ValueError(f"invariant_violations: must be >= 0, got {invariant_violations!r}")
    metrics = dict(metrics or {})
    if len(metrics) > MAX_METRICS_PER_OUTCOME:
        raise ValueError(f"metrics: at most {MAX_METRICS_PER_OUTCOME}, got {len(metrics)}")
    for name, value in metrics.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"metrics[{name!r}]: must be finite, got {value!r}")
    outcome = pb.Outcome(
        variant=rollout_pb2.Variant.Name(int(variant)),
        success=success,
        latency_ms=float(latency_ms),
        metrics={k: float(v) for k, v in metrics.items()},
        invariant_violations=invariant_violations,
        key=key,
    )
    if time_ is not None:
        outcome.time.FromDatetime(time_)
    return outcome


SendBatch = Callable[[str, List[pb.Outcome], Optional[float]], pb.RecordOutcomeResponse]


@dataclass
class _Batch:
    rollout: str
    outcomes: List[pb.Outcome]
    done: threading.Event = field(default_factory=threading.Event)


class OutcomeBuffer:
    """Queues outcomes per rollout and sends them in batches.

    A rollout's outcomes go out as soon as ``max_batch`` are buffered, and everything buffered
    goes out ``flush_interval`` seconds after the first outcome was buffered, whichever comes
    first. A batch still UNAVAILABLE after the client's retries goes back to the front of its
    queue; any other failure drops it (the server refuses a batch as a whole).

    After an UNAVAILABLE batch the buffer is in an outage: batches are no longer sent as they
    fill; one batch at a time probes the server every ``flush_interval`` (or at once when a local
    router hears from the server again, ``server_back``), and the first delivered sends
    everything held. Meanwhile at most ``max_buffered`` outcomes wait (plus the one probe on the
    wire); past that the oldest are dropped and counted (``overflow``).
    """

    def __init__(
        self,
        send: SendBatch,
        flush_interval: float,
        max_batch: int,
        max_buffered: int,
        on_error: Optional[Callable[[BatchError], None]],
    ) -> None:
        """Creates the buffer and starts its timer thread."""
        if not 1 <= max_batch <= MAX_OUTCOMES_PER_CALL:
            raise ValueError(f"max_batch: must be 1..{MAX_OUTCOMES_PER_CALL} (the server's per-call limit), got {max_batch}")
        if not flush_interval > 0:
            raise ValueError(f"flush_interval: must be > 0, got {flush_interval}")
        self._send = send
        self._interval = flush_interval
        self._max_batch = max_batch
        self._max_buffered = max(max_buffered, max_batch)
        self._on_error = on_error
        self._cond = threading.Condition()
        self._queues: Dict[str, List[pb.Outcome]] = {}
        self._buffered = 0
        self._due: Optional[float] = None
        self._closed = False
        self._in_flight: Dict[int, _Batch] = {}
        self._outage = False
        self._counters = {"sent": 0, "accepted": 0, "ignored": 0, "dropped": 0, "batches": 0, "overflow": 0}
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rollgate-outcomes")
        self._timer = threading.Thread(target=self._timer_loop, name="rollgate-outcome-timer", daemon=True)
        self._timer.start()

    def add(self, rollout: str, outcome: pb.Outcome) -> None:
        """Buffers one outcome; a full batch is sent at once in the background."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the rollgate client is closed: record_outcome after close()")
            queue = self._queues.setdefault(rollout, [])
            queue.append(outcome)
            self._buffered += 1
            if len(queue) >= self._max_batch and not self._outage:
                batch = self._start(rollout, queue[: self._max_batch])
                del queue[: self._max_batch]
                if not queue:
                    del self._queues[rollout]
                self._executor.submit(self._dispatch, batch, True, None)
            dropped = self._trim()
            self._arm()
        self._report(dropped)

    def flush(self, timeout: Optional[float] = None) -> None:
        """Waits for the batches on the wire, then sends everything buffered and waits for it.

        Raises OutcomeDeliveryError naming every batch that failed; ``timeout`` bounds each call.
        """
        with self._cond:
            self._due = None
        self._wait_in_flight()
        with self._cond:
            batches = self._take_all()
        failures = [e for e in (self._dispatch(b, False, timeout) for b in batches) if e is not None]
        self._wait_in_flight()
        with self._cond:
            self._arm()
        if failures:
            raise OutcomeDeliveryError(failures)

    def _wait_in_flight(self) -> None:
        """Waits until no batch is on the wire (the end of an outage sends everything held from the background)."""
        while True:
            with self._cond:
                waiting = list(self._in_flight.values())
            if not waiting:
                return
            for batch in waiting:
                batch.done.wait()

    def close(self, timeout: Optional[float] = None) -> None:
        """Refuses new outcomes, stops the timer and flushes; raises like flush()."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._timer.join()
        try:
            self.flush(timeout)
        finally:
            self._executor.shutdown(wait=True)

    def stats(self) -> OutcomeStats:
        """Returns the buffer's counters."""
        with self._cond:
            return OutcomeStats(
                buffered=self._buffered,
                in_flight=sum(len(b.outcomes) for b in self._in_flight.values()),
                outage=self._outage,
                **self._counters,
            )

    # --- internals; the _locked helpers run with self._cond held ---------------------------

    def _start(self, rollout: str, outcomes: List[pb.Outcome]) -> _Batch:
        batch = _Batch(rollout, outcomes)
        self._buffered -= len(outcomes)
        self._in_flight[id(batch)] = batch
        return batch

    def _take_all(self) -> List[_Batch]:
        batches = []
        for rollout, queue in self._queues.items():
            for i in range(0, len(queue), self._max_batch):
                batches.append(self._start(rollout, queue[i : i + self._max_batch]))
        self._queues.clear()
        return batches

    def server_back(self) -> None:
        """Told that the server answers again: during an outage the probe goes now, not at the next tick."""
        with self._cond:
            if not self._outage or self._closed:
                return
            for batch in self._probe():
                self._executor.submit(self._dispatch, batch, True, None)

    def _probe(self) -> List[_Batch]:
        """Takes one batch out to probe the server during an outage, unless one is on the wire."""
        if self._in_flight:
            return []
        for rollout, queue in self._queues.items():
            batch = self._start(rollout, queue[: self._max_batch])
            del queue[: self._max_batch]
            if not queue:
                del self._queues[rollout]
            return [batch]
        return []

    def _arm(self) -> None:
        if self._due is None and not self._closed and self._buffered > 0:
            self._due = time.monotonic() + self._interval
            self._cond.notify_all()

    def _trim(self) -> List[BatchError]:
        dropped = []
        for rollout in list(self._queues):
            if self._buffered <= self._max_buffered:
                break
            queue = self._queues[rollout]
            n = min(len(queue), self._buffered - self._max_buffered)
            del queue[:n]
            self._buffered -= n
            self._counters["dropped"] += n
            self._counters["overflow"] += n
            if not queue:
                del self._queues[rollout]
            overflow = RuntimeError(f"outcome buffer full ({self._max_buffered}): oldest outcomes dropped")
            dropped.append(BatchError(rollout, n, False, overflow))
        return dropped

    def _timer_loop(self) -> None:
        with self._cond:
            while not self._closed:
                if self._due is None:
                    self._cond.wait()
                    continue
                remaining = self._due - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._due = None
                for batch in self._probe() if self._outage else self._take_all():
                    self._executor.submit(self._dispatch, batch, True, None)

    def _dispatch(self, batch: _Batch, background: bool, timeout: Optional[float]) -> Optional[BatchError]:
        error: Optional[BatchError] = None
        dropped: List[BatchError] = []
        try:
            response = self._send(batch.rollout, batch.outcomes, timeout)
        except Exception as e:  # noqa: BLE001 — every failure is reported, none escapes the worker
            requeue = isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.UNAVAILABLE
            error = BatchError(batch.rollout, len(batch.outcomes), requeue, e)
            response = None
        with self._cond:
            del self._in_flight[id(batch)]
            # A probe failing again during an outage is logged at debug level (on_error hears of each).
            again = error is not None and error.requeued and self._outage
            if response is not None:
                self._counters["sent"] += len(batch.outcomes)
                self._counters["accepted"] += response.accepted
                self._counters["ignored"] += response.ignored
                self._counters["batches"] += 1
                if self._outage:
                    # The server is back: send everything held now, not at the next tick.
                    self._outage = False
                    if background and not self._closed:
                        self._due = None
                        for b in self._take_all():
                            self._executor.submit(self._dispatch, b, True, None)
            elif error is not None and error.requeued:
                self._outage = True
                self._queues[batch.rollout] = batch.outcomes + self._queues.get(batch.rollout, [])
                self._buffered += len(batch.outcomes)
                dropped = self._trim()
            else:
                self._counters["dropped"] += len(batch.outcomes)
            self._arm()
        self._report(dropped)
        if error is not None and background:
            self._report([error], logging.DEBUG if again else logging.WARNING)
        # Done only once reported: flush(), waiting for it, returns after on_error heard of it.
        batch.done.set()
        return error

    def _report(self, errors: List[BatchError], level: int = logging.WARNING) -> None:
        for error in errors:
            if self._on_error is None:
                _log.log(level, "rollgate: %s", error)
                continue
            try:
                self._on_error(error)
            except Exception:  # noqa: BLE001 — a failing callback must not kill the flusher
                _log.exception("rollgate: on_error raised")
