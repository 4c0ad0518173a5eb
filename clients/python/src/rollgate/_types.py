"""Plain values the client hands out: variants, route results, outcome counters."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Variant(enum.IntEnum):
    """The side of a rollout a key is routed to; the values are those of ``rollgate.v1.Variant``."""

    STABLE = 1
    CANARY = 2


class RouteReason(enum.IntEnum):
    """Why a key went where it did; the values are those of ``rollgate.v1.RouteReason``."""

    UNSPECIFIED = 0
    WEIGHT = 1
    OVERRIDE = 2
    STAGE = 3
    ROLLED_BACK = 4
    HALTED = 5


class FallbackReason(enum.IntEnum):
    """Why a local answer is the configured fallback rather than the rollout's routing."""

    NONE = 0
    """The answer was routed from the rollout's state (and every remote answer)."""
    NOT_READY = 1
    """No state yet: no snapshot from the server, no state file."""
    UNKNOWN_ROLLOUT = 2
    """The state holds no rollout of that name (not watched, not created yet, or deleted); remote route raises NOT_FOUND."""
    INVALID_KEY = 3
    """An empty key, one over 1024 bytes of UTF-8, or not a str of valid Unicode; remote route raises INVALID_ARGUMENT."""


@dataclass(frozen=True)
class RouteResult:
    """Where one key goes."""

    variant: Variant
    """STABLE or CANARY."""
    version: str
    """The version string of that variant."""
    bucket: int
    """The key's bucket 0..9999 under bucketing spec v1."""
    weight_bp: int
    """The rollout's effective canary weight in basis points."""
    features: tuple[str, ...]
    """The features enabled for this key."""
    reason: RouteReason
    """Why: weight, override, stage, rolled back or halted."""
    rollout_version: int
    """The rollout version the answer rests on."""
    fallback: FallbackReason = FallbackReason.NONE
    """Set on a local answer that is the configured fallback, and says why; NONE otherwise."""


@dataclass(frozen=True)
class OutcomeStats:
    """Counters of the outcome buffer."""

    buffered: int
    """Outcomes waiting to be sent."""
    in_flight: int
    """Outcomes in batches on the wire."""
    sent: int
    """Outcomes delivered."""
    accepted: int
    """Of those, added to the window (as the server reported)."""
    ignored: int
    """Of those, ignored because their time fell outside the window."""
    dropped: int
    """Outcomes given up on: refused by the server, or over ``max_buffered``."""
    batches: int
    """RecordOutcome calls that succeeded."""
    overflow: int = 0
    """Of ``dropped``, the outcomes that went because ``max_buffered`` were waiting."""
    outage: bool = False
    """True while the last batch came back UNAVAILABLE: one batch at a time probes the server, and the first through sends everything."""
