"""Backoff, the retry policy, and the interceptors that apply deadlines, retries and the token."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional, Sequence, Tuple

import grpc


@dataclass(frozen=True)
class Backoff:
    """An exponential backoff with jitter.

    The delay before retry ``n`` (1 for the first) is drawn uniformly from ``[d/2, d]`` where
    ``d = min(maximum, initial * multiplier ** (n - 1))``: half fixed, half random ("equal
    jitter"), so clients cut off together do not come back in lockstep, yet none comes back at once.
    """

    initial: float = 0.1
    """Ceiling of the first delay, in seconds."""
    maximum: float = 2.0
    """Cap of every delay, in seconds."""
    multiplier: float = 2.0
    """Growth factor per retry."""

    def delay(self, n: int) -> float:
        """Returns the backoff in seconds before retry ``n`` (n >= 1)."""
        ceiling = min(self.maximum, self.initial * self.multiplier ** max(0, n - 1))
        return ceiling / 2 + random.random() * ceiling / 2


@dataclass(frozen=True)
class RetryPolicy:
    """How unary calls are retried: only on UNAVAILABLE, with backoff, never past the call's deadline."""

    max_attempts: int = 4
    """Attempts in all, the first included; 1 disables retries."""
    backoff: Backoff = Backoff()
    """Backoff between attempts (default 100 ms doubling up to 2 s)."""


class _CallDetails(NamedTuple):
    method: str
    timeout: Optional[float]
    metadata: Optional[Sequence[Tuple[str, str]]]
    credentials: Optional[grpc.CallCredentials]
    wait_for_ready: Optional[bool]
    compression: Optional[grpc.Compression]


class CallDetails(_CallDetails, grpc.ClientCallDetails):
    """A ``grpc.ClientCallDetails`` that interceptors can rebuild with changed fields."""


def _replace(
    details: grpc.ClientCallDetails,
    *,
    timeout: Optional[float] = None,
    metadata: Optional[Sequence[Tuple[str, str]]] = None,
) -> CallDetails:
    """Returns a copy of ``details`` with ``timeout`` and/or ``metadata`` replaced when given."""
    return CallDetails(
        method=details.method,
        timeout=timeout if timeout is not None else details.timeout,
        metadata=metadata if metadata is not None else details.metadata,
        credentials=details.credentials,
        wait_for_ready=getattr(details, "wait_for_ready", None),
        compression=getattr(details, "compression", None),
    )


class RetryInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Gives every unary call the client's default deadline and retries it on UNAVAILABLE.

    The deadline covers every attempt: a retry whose backoff would end past it is not made, and
    the last failure is returned. Streams are left alone (watch_health reconnects on its own).
    """

    def __init__(self, policy: RetryPolicy, default_timeout: Optional[float], sleep: Callable[[float], None] = time.sleep) -> None:
        """Creates the interceptor; ``default_timeout`` applies to calls made without ``timeout``."""
        self._policy = policy
        self._timeout = default_timeout
        self._sleep = sleep

    def intercept_unary_unary(self, continuation: Any, client_call_details: grpc.ClientCallDetails, request: Any) -> Any:
        """Runs the call, retrying it on UNAVAILABLE within its deadline."""
        timeout = client_call_details.timeout if client_call_details.timeout is not None else self._timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            attempt += 1
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            outcome = continuation(_replace(client_call_details, timeout=remaining), request)
            error = outcome.exception()
            if error is None or not isinstance(error, grpc.RpcError) or error.code() != grpc.StatusCode.UNAVAILABLE:
                return outcome
            if attempt >= self._policy.max_attempts:
                return outcome
            delay = self._policy.backoff.delay(attempt)
            if deadline is not None and time.monotonic() + delay >= deadline:
                return outcome
            self._sleep(delay)


class TokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Sends ``authorization: Bearer <token>`` on every call, unary and streaming."""

    def __init__(self, token: str) -> None:
        """Creates the interceptor for a bearer token."""
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: grpc.ClientCallDetails) -> CallDetails:
        metadata = [m for m in (details.metadata or ()) if m[0] != "authorization"]
        metadata.append(self._header)
        return _replace(details, metadata=metadata)

    def intercept_unary_unary(self, continuation: Any, client_call_details: grpc.ClientCallDetails, request: Any) -> Any:
        """Adds the token to a unary call."""
        return continuation(self._with_token(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: grpc.ClientCallDetails, request: Any) -> Any:
        """Adds the token to a server-streaming call."""
        return continuation(self._with_token(client_call_details), request)

    def intercept_stream_unary(self, continuation: Any, client_call_details: grpc.ClientCallDetails, request_iterator: Any) -> Any:
        """Adds the token to a client-streaming call."""
        return continuation(self._with_token(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation: Any, client_call_details: grpc.ClientCallDetails, request_iterator: Any) -> Any:
        """Adds the token to a bidirectional call."""
        return continuation(self._with_token(client_call_details), request_iterator)
