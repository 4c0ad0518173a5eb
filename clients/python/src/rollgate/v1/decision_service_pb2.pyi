import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from rollgate.v1 import health_pb2 as _health_pb2
from rollgate.v1 import rollout_pb2 as _rollout_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RouteReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTE_REASON_UNSPECIFIED: _ClassVar[RouteReason]
    ROUTE_REASON_WEIGHT: _ClassVar[RouteReason]
    ROUTE_REASON_OVERRIDE: _ClassVar[RouteReason]
    ROUTE_REASON_STAGE: _ClassVar[RouteReason]
    ROUTE_REASON_ROLLED_BACK: _ClassVar[RouteReason]
    ROUTE_REASON_HALTED: _ClassVar[RouteReason]
ROUTE_REASON_UNSPECIFIED: RouteReason
ROUTE_REASON_WEIGHT: RouteReason
ROUTE_REASON_OVERRIDE: RouteReason
ROUTE_REASON_STAGE: RouteReason
ROUTE_REASON_ROLLED_BACK: RouteReason
ROUTE_REASON_HALTED: RouteReason

class RouteRequest(_message.Message):
    __slots__ = ("rollout", "key")
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    rollout: str
    key: str
    def __init__(self, rollout: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class RouteResponse(_message.Message):
    __slots__ = ("variant", "version", "bucket", "weight_bp", "features", "reason", "rollout_version")
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_BP_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_VERSION_FIELD_NUMBER: _ClassVar[int]
    variant: _rollout_pb2.Variant
    version: str
    bucket: int
    weight_bp: int
    features: _containers.RepeatedScalarFieldContainer[str]
    reason: RouteReason
    rollout_version: int
    def __init__(self, variant: _Optional[_Union[_rollout_pb2.Variant, str]] = ..., version: _Optional[str] = ..., bucket: _Optional[int] = ..., weight_bp: _Optional[int] = ..., features: _Optional[_Iterable[str]] = ..., reason: _Optional[_Union[RouteReason, str]] = ..., rollout_version: _Optional[int] = ...) -> None: ...

class RouteBatchRequest(_message.Message):
    __slots__ = ("rollout", "keys")
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    rollout: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, rollout: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ...) -> None: ...

class RouteBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RouteResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[RouteResponse, _Mapping]]] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("variant", "success", "latency_ms", "metrics", "invariant_violations", "key", "time")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    INVARIANT_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    variant: _rollout_pb2.Variant
    success: bool
    latency_ms: float
    metrics: _containers.ScalarMap[str, float]
    invariant_violations: int
    key: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, variant: _Optional[_Union[_rollout_pb2.Variant, str]] = ..., success: _Optional[bool] = ..., latency_ms: _Optional[float] = ..., metrics: _Optional[_Mapping[str, float]] = ..., invariant_violations: _Optional[int] = ..., key: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordOutcomeRequest(_message.Message):
    __slots__ = ("rollout", "outcomes")
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    rollout: str
    outcomes: _containers.RepeatedCompositeFieldContainer[Outcome]
    def __init__(self, rollout: _Optional[str] = ..., outcomes: _Optional[_Iterable[_Union[Outcome, _Mapping]]] = ...) -> None: ...

class RecordOutcomeResponse(_message.Message):
    __slots__ = ("accepted", "ignored")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    IGNORED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    ignored: int
    def __init__(self, accepted: _Optional[int] = ..., ignored: _Optional[int] = ...) -> None: ...

class StreamOutcomesRequest(_message.Message):
    __slots__ = ("rollout", "outcomes")
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    rollout: str
    outcomes: _containers.RepeatedCompositeFieldContainer[Outcome]
    def __init__(self, rollout: _Optional[str] = ..., outcomes: _Optional[_Iterable[_Union[Outcome, _Mapping]]] = ...) -> None: ...

class StreamOutcomesResponse(_message.Message):
    __slots__ = ("accepted", "ignored", "batches")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    IGNORED_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    ignored: int
    batches: int
    def __init__(self, accepted: _Optional[int] = ..., ignored: _Optional[int] = ..., batches: _Optional[int] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ("rollout",)
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    rollout: str
    def __init__(self, rollout: _Optional[str] = ...) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("health",)
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    health: _health_pb2.RolloutHealth
    def __init__(self, health: _Optional[_Union[_health_pb2.RolloutHealth, _Mapping]] = ...) -> None: ...

class WatchHealthRequest(_message.Message):
    __slots__ = ("rollout",)
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    rollout: str
    def __init__(self, rollout: _Optional[str] = ...) -> None: ...

class HealthUpdate(_message.Message):
    __slots__ = ("seq", "health", "deleted")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    health: _health_pb2.RolloutHealth
    deleted: bool
    def __init__(self, seq: _Optional[int] = ..., health: _Optional[_Union[_health_pb2.RolloutHealth, _Mapping]] = ..., deleted: _Optional[bool] = ...) -> None: ...

class WatchRoutesRequest(_message.Message):
    __slots__ = ("rollouts", "after_revision")
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    AFTER_REVISION_FIELD_NUMBER: _ClassVar[int]
    rollouts: _containers.RepeatedScalarFieldContainer[str]
    after_revision: int
    def __init__(self, rollouts: _Optional[_Iterable[str]] = ..., after_revision: _Optional[int] = ...) -> None: ...

class WatchRoutesResponse(_message.Message):
    __slots__ = ("revision", "reset", "routes", "removed")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    revision: int
    reset: bool
    routes: _containers.RepeatedCompositeFieldContainer[RouteState]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, revision: _Optional[int] = ..., reset: _Optional[bool] = ..., routes: _Optional[_Iterable[_Union[RouteState, _Mapping]]] = ..., removed: _Optional[_Iterable[str]] = ...) -> None: ...

class RouteState(_message.Message):
    __slots__ = ("rollout", "rollout_version", "stage", "weight_bp", "salt", "stable_version", "canary_version", "features", "overrides")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bool
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bool] = ...) -> None: ...
    class OverridesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _rollout_pb2.Variant
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_rollout_pb2.Variant, str]] = ...) -> None: ...
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_VERSION_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_BP_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    STABLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CANARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    rollout: str
    rollout_version: int
    stage: _rollout_pb2.Stage
    weight_bp: int
    salt: str
    stable_version: str
    canary_version: str
    features: _containers.ScalarMap[str, bool]
    overrides: _containers.ScalarMap[str, _rollout_pb2.Variant]
    def __init__(self, rollout: _Optional[str] = ..., rollout_version: _Optional[int] = ..., stage: _Optional[_Union[_rollout_pb2.Stage, str]] = ..., weight_bp: _Optional[int] = ..., salt: _Optional[str] = ..., stable_version: _Optional[str] = ..., canary_version: _Optional[str] = ..., features: _Optional[_Mapping[str, bool]] = ..., overrides: _Optional[_Mapping[str, _rollout_pb2.Variant]] = ...) -> None: ...
