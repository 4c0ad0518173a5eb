"""Python client for rollgate, the progressive-delivery decision service.

Ask where a key goes (``Client.route``), report what happened (``Client.record_outcome``,
buffered and sent in batches), read and stream the judgement (``Client.health``,
``Client.watch_health``), compute buckets locally (``bucket``, bucketing spec v1) and route
in process from a streamed state (``Client.start_local``, ``LocalRouter.route``). The
generated messages and stubs are in ``rollgate.v1``.
"""

from ._bucketing import BUCKETS, bucket, variant_of
from ._client import DEFAULT_TIMEOUT, DEFAULT_WATCH_BACKOFF, Client
from ._local import LocalRouter, LocalStats
from ._outcomes import BatchError, OutcomeDeliveryError
from ._retry import Backoff, RetryPolicy
from ._types import FallbackReason, OutcomeStats, RouteReason, RouteResult, Variant
from ._watch import HealthWatch

__all__ = [
    "BUCKETS",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WATCH_BACKOFF",
    "Backoff",
    "BatchError",
    "Client",
    "FallbackReason",
    "HealthWatch",
    "LocalRouter",
    "LocalStats",
    "OutcomeDeliveryError",
    "OutcomeStats",
    "RetryPolicy",
    "RouteReason",
    "RouteResult",
    "Variant",
    "bucket",
    "variant_of",
]
