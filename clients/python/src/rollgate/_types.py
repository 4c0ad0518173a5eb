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
