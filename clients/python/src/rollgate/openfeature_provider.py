"""An in-process OpenFeature provider (openfeature-sdk) over the client's local mode.

Install with ``pip install 'rollgate[openfeature]'``. Flags follow rollgate's OFREP mapping
(docs/ofrep.md): a rollout is a string flag whose value is the version ``route`` answers, and
``rollout/feature`` is a boolean flag; variants ``stable``/``canary`` and ``on``/``off``;
reasons SPLIT, TARGETING_MATCH, STATIC and DISABLED.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import (
    FlagNotFoundError,
    InvalidContextError,
    ProviderNotReadyError,
    TargetingKeyMissingError,
    TypeMismatchError,
)
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.provider import AbstractProvider, Metadata
from openfeature.track import TrackingEventDetails

from ._client import Client
from ._local import LocalRouter
from ._types import FallbackReason, RouteReason, RouteResult, Variant
from .v1 import decision_service_pb2 as pb
from .v1 import rollout_pb2

FEATURE_SEPARATOR = "/"
"""Separator between a rollout and one of its features in a boolean flag key."""

_REASONS = {
    RouteReason.WEIGHT: "SPLIT",
    RouteReason.OVERRIDE: "TARGETING_MATCH",
    RouteReason.STAGE: "STATIC",
    RouteReason.ROLLED_BACK: "DISABLED",
    RouteReason.HALTED: "DISABLED",
}
_VARIANTS = {Variant.STABLE: "stable", Variant.CANARY: "canary"}
_STAGES = {v: k.removeprefix("STAGE_").lower() for k, v in rollout_pb2.Stage.items()}


class RollgateProvider(AbstractProvider):
    """Evaluates rollgate rollouts in process from a WatchRoutes state.

    ``initialize`` starts local mode on ``client`` (``client.start_local(rollouts, ...)``) and
    waits up to ``startup_timeout`` seconds for the first state: the SDK then reports READY.
    The provider emits STALE while the stream is down, READY when it answers again, and
    CONFIGURATION_CHANGED with the changed flag keys on every update. ``track(flag_key,
    context, TrackingEventDetails(value=latency_ms, attributes={"success": bool}))`` buffers an
    outcome, through the client's outcome buffer, for the variant the context's key is routed to.
    ``shutdown`` closes the router (not the client).
    """

    def __init__(self, client: Client, rollouts: Sequence[str] = (), *, startup_timeout: float = 5.0, **local_options: Any) -> None:
        super().__init__()
        self._client = client
        self._rollouts = list(rollouts)
        self._startup_timeout = startup_timeout
        self._local_options = local_options
        self._router: Optional[LocalRouter] = None
        self._unsubscribe: Optional[Callable[[], None]] = None
        self._flag_keys: Dict[str, List[str]] = {}
        self._stale = False

    @property
    def router(self) -> Optional[LocalRouter]:
        """The local router once initialized."""
        return self._router

    def get_metadata(self) -> Metadata:
        return Metadata(name="rollgate")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        router = self._client.start_local(self._rollouts, startup_timeout=0, **self._local_options)
        self._router = router
        self._unsubscribe = router.subscribe(self._changed, self._connection)
        if not router.wait_ready(self._startup_timeout):
            raise ProviderNotReadyError(f"rollgate: no routing state within {self._startup_timeout}s")
        for name in router.rollout_names():
            self._flag_keys[name] = self._keys_of(name)

    def shutdown(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._router is not None:
            self._router.close()

    # --- events ---------------------------------------------------------------------------

    def _keys_of(self, rollout: str) -> List[str]:
        state = self._router.rollout_state(rollout) if self._router is not None else None
        if state is None:
            return []
        return [rollout] + [f"{rollout}{FEATURE_SEPARATOR}{f}" for f in sorted(state.features)]

    def _changed(self, rollouts: List[str]) -> None:
        changed: Dict[str, None] = {}
        for r in rollouts:
            for k in self._flag_keys.get(r, [r]):
                changed[k] = None
            now = self._keys_of(r)
            for k in now:
                changed[k] = None
            if now:
                self._flag_keys[r] = now
            else:
                self._flag_keys.pop(r, None)
        self.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=list(changed)))

    def _connection(self, connected: bool) -> None:
        if not connected and not self._stale:
            self._stale = True
            self.emit_provider_stale(ProviderEventDetails(message="the WatchRoutes stream dropped: answering from the last state"))
        elif connected and self._stale:
            self._stale = False
            self.emit_provider_ready(ProviderEventDetails(message="the WatchRoutes stream answers again"))

    # --- evaluation -----------------------------------------------------------------------

    def _decide(self, rollout: str, context: Optional[EvaluationContext]) -> Tuple[pb.RouteState, RouteResult]:
        router = self._router
        state = router.rollout_state(rollout) if router is not None else None
        if router is None or state is None:
            if router is None or not router.stats().ready:
                raise ProviderNotReadyError("no routing state yet")
            raise FlagNotFoundError(f'no rollout "{rollout}"')
        key = context.targeting_key if context is not None else None
        if not key:
            raise TargetingKeyMissingError("context.targeting_key is required")
        result = router.route(rollout, key)
        if result.fallback == FallbackReason.INVALID_KEY:
            raise InvalidContextError("context.targeting_key must be 1..1024 bytes of UTF-8")
        return state, result

    @staticmethod
    def _metadata(state: pb.RouteState, r: RouteResult) -> Dict[str, Union[str, int]]:
        return {
            "rollout": state.rollout,
            "bucket": r.bucket,
            "weightBp": r.weight_bp,
            "rolloutVersion": r.rollout_version,
            "stage": _STAGES.get(state.stage, "unspecified"),
            "rolloutVariant": _VARIANTS[r.variant],
        }

    def _type_mismatch(self, flag_key: str, wanted: str) -> FlagResolutionDetails[Any]:
        rollout, _, feature = flag_key.partition(FEATURE_SEPARATOR)
        state = self._router.rollout_state(rollout) if self._router is not None else None
        if state is None or (feature and feature not in state.features):
            raise FlagNotFoundError(f'no flag "{flag_key}"')
        raise TypeMismatchError(f'"{flag_key}" is a {"boolean" if feature else "string"} flag, not {wanted}')

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: Optional[EvaluationContext] = None
    ) -> FlagResolutionDetails[str]:
        if FEATURE_SEPARATOR in flag_key:
            return self._type_mismatch(flag_key, "a string")
        state, r = self._decide(flag_key, evaluation_context)
        return FlagResolutionDetails(value=r.version, variant=_VARIANTS[r.variant], reason=_REASONS[r.reason], flag_metadata=self._metadata(state, r))

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: Optional[EvaluationContext] = None
    ) -> FlagResolutionDetails[bool]:
        rollout, sep, feature = flag_key.partition(FEATURE_SEPARATOR)
        if not sep:
            return self._type_mismatch(flag_key, "a boolean")
        state, r = self._decide(rollout, evaluation_context)
        if feature not in state.features:
            raise FlagNotFoundError(f'rollout "{rollout}" has no feature "{feature}"')
        on = feature in r.features
        return FlagResolutionDetails(value=on, variant="on" if on else "off", reason=_REASONS[r.reason], flag_metadata=self._metadata(state, r))

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: Optional[EvaluationContext] = None
    ) -> FlagResolutionDetails[int]:
        return self._type_mismatch(flag_key, "an integer")

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: Optional[EvaluationContext] = None
    ) -> FlagResolutionDetails[float]:
        return self._type_mismatch(flag_key, "a float")

    def resolve_object_details(
        self, flag_key: str, default_value: Any, evaluation_context: Optional[EvaluationContext] = None
    ) -> FlagResolutionDetails[Any]:
        return self._type_mismatch(flag_key, "an object")

    # --- tracking -------------------------------------------------------------------------

    def track(
        self,
        tracking_event_name: str,
        evaluation_context: Optional[EvaluationContext] = None,
        tracking_event_details: Optional[TrackingEventDetails] = None,
    ) -> None:
        """Buffers an outcome of the event's rollout for the variant the context's key goes to.

        The latency, in milliseconds, is the attribute ``latencyMs`` when given, else ``details.value``;
        ``success`` is the attribute of that name (default True). Raises ValueError for a
        missing key, an unknown rollout or a missing latency.
        """
        rollout = tracking_event_name.partition(FEATURE_SEPARATOR)[0]
        key = evaluation_context.targeting_key if evaluation_context is not None else None
        if not key:
            raise ValueError("track: context.targeting_key is required")
        router = self._router
        if router is None or router.rollout_state(rollout) is None:
            raise ValueError(f'track: no rollout "{rollout}"')
        attributes: Mapping[str, Any] = tracking_event_details.attributes if tracking_event_details is not None else {}
        # The same order in every rollgate provider: the attribute latencyMs when given, else value.
        latency = attributes.get("latencyMs")
        if latency is None and tracking_event_details is not None:
            latency = tracking_event_details.value
        if not isinstance(latency, (int, float)) or isinstance(latency, bool):
            raise ValueError("track: the attribute latencyMs (or details.value) must be a latency in milliseconds")
        success = attributes.get("success", True)
        if not isinstance(success, bool):
            raise ValueError("track: the attribute success must be a boolean")
        r = router.route(rollout, key)
        if r.fallback != FallbackReason.NONE:
            raise ValueError(f"track: key not routable ({r.fallback.name})")
        self._client.record_outcome(rollout, variant=r.variant, success=success, latency_ms=float(latency), key=key)
