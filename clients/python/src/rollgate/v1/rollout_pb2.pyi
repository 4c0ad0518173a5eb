import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Variant(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VARIANT_UNSPECIFIED: _ClassVar[Variant]
    VARIANT_STABLE: _ClassVar[Variant]
    VARIANT_CANARY: _ClassVar[Variant]

class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_UNSPECIFIED: _ClassVar[Stage]
    STAGE_CANARY: _ClassVar[Stage]
    STAGE_STAGING: _ClassVar[Stage]
    STAGE_PRODUCTION: _ClassVar[Stage]
    STAGE_ROLLED_BACK: _ClassVar[Stage]
    STAGE_HALTED: _ClassVar[Stage]

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNSPECIFIED: _ClassVar[Action]
    ACTION_ROLLBACK: _ClassVar[Action]
    ACTION_HALT: _ClassVar[Action]
    ACTION_STEP_BACK: _ClassVar[Action]
    ACTION_SCALE_DOWN: _ClassVar[Action]
    ACTION_HOLD: _ClassVar[Action]
    ACTION_NOTIFY: _ClassVar[Action]

class MetricAggregation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_AGGREGATION_UNSPECIFIED: _ClassVar[MetricAggregation]
    METRIC_AGGREGATION_MEAN: _ClassVar[MetricAggregation]
    METRIC_AGGREGATION_MAX: _ClassVar[MetricAggregation]
VARIANT_UNSPECIFIED: Variant
VARIANT_STABLE: Variant
VARIANT_CANARY: Variant
STAGE_UNSPECIFIED: Stage
STAGE_CANARY: Stage
STAGE_STAGING: Stage
STAGE_PRODUCTION: Stage
STAGE_ROLLED_BACK: Stage
STAGE_HALTED: Stage
ACTION_UNSPECIFIED: Action
ACTION_ROLLBACK: Action
ACTION_HALT: Action
ACTION_STEP_BACK: Action
ACTION_SCALE_DOWN: Action
ACTION_HOLD: Action
ACTION_NOTIFY: Action
METRIC_AGGREGATION_UNSPECIFIED: MetricAggregation
METRIC_AGGREGATION_MEAN: MetricAggregation
METRIC_AGGREGATION_MAX: MetricAggregation

class Rollout(_message.Message):
    __slots__ = ("name", "stable_version", "canary_version", "steps", "stage", "current_step", "weight_bp", "paused", "features", "overrides", "salt", "gates", "analysis", "version", "fingerprint", "created_by", "created_at", "updated_by", "updated_at", "step_started_at", "rolled_back_at")
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
        value: Variant
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Variant, str]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    STABLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CANARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STEP_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_BP_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STEP_STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    stable_version: str
    canary_version: str
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    stage: Stage
    current_step: int
    weight_bp: int
    paused: bool
    features: _containers.ScalarMap[str, bool]
    overrides: _containers.ScalarMap[str, Variant]
    salt: str
    gates: _containers.RepeatedCompositeFieldContainer[Gate]
    analysis: Analysis
    version: int
    fingerprint: str
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    updated_by: str
    updated_at: _timestamp_pb2.Timestamp
    step_started_at: _timestamp_pb2.Timestamp
    rolled_back_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., stable_version: _Optional[str] = ..., canary_version: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., stage: _Optional[_Union[Stage, str]] = ..., current_step: _Optional[int] = ..., weight_bp: _Optional[int] = ..., paused: _Optional[bool] = ..., features: _Optional[_Mapping[str, bool]] = ..., overrides: _Optional[_Mapping[str, Variant]] = ..., salt: _Optional[str] = ..., gates: _Optional[_Iterable[_Union[Gate, _Mapping]]] = ..., analysis: _Optional[_Union[Analysis, _Mapping]] = ..., version: _Optional[int] = ..., fingerprint: _Optional[str] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_by: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., step_started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rolled_back_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("weight_bp", "min_duration", "min_samples")
    WEIGHT_BP_FIELD_NUMBER: _ClassVar[int]
    MIN_DURATION_FIELD_NUMBER: _ClassVar[int]
    MIN_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    weight_bp: int
    min_duration: _duration_pb2.Duration
    min_samples: int
    def __init__(self, weight_bp: _Optional[int] = ..., min_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., min_samples: _Optional[int] = ...) -> None: ...

class Gate(_message.Message):
    __slots__ = ("name", "min_samples", "on_breach", "error_rate", "latency", "success_rate", "metric", "invariant")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MIN_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ON_BREACH_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INVARIANT_FIELD_NUMBER: _ClassVar[int]
    name: str
    min_samples: int
    on_breach: Action
    error_rate: ErrorRateGate
    latency: LatencyGate
    success_rate: SuccessRateGate
    metric: MetricGate
    invariant: InvariantGate
    def __init__(self, name: _Optional[str] = ..., min_samples: _Optional[int] = ..., on_breach: _Optional[_Union[Action, str]] = ..., error_rate: _Optional[_Union[ErrorRateGate, _Mapping]] = ..., latency: _Optional[_Union[LatencyGate, _Mapping]] = ..., success_rate: _Optional[_Union[SuccessRateGate, _Mapping]] = ..., metric: _Optional[_Union[MetricGate, _Mapping]] = ..., invariant: _Optional[_Union[InvariantGate, _Mapping]] = ...) -> None: ...

class ErrorRateGate(_message.Message):
    __slots__ = ("max", "max_ratio", "confidence")
    MAX_FIELD_NUMBER: _ClassVar[int]
    MAX_RATIO_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    max: float
    max_ratio: float
    confidence: float
    def __init__(self, max: _Optional[float] = ..., max_ratio: _Optional[float] = ..., confidence: _Optional[float] = ...) -> None: ...

class LatencyGate(_message.Message):
    __slots__ = ("quantile", "max_ms", "max_ratio")
    QUANTILE_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_RATIO_FIELD_NUMBER: _ClassVar[int]
    quantile: float
    max_ms: float
    max_ratio: float
    def __init__(self, quantile: _Optional[float] = ..., max_ms: _Optional[float] = ..., max_ratio: _Optional[float] = ...) -> None: ...

class SuccessRateGate(_message.Message):
    __slots__ = ("min",)
    MIN_FIELD_NUMBER: _ClassVar[int]
    min: float
    def __init__(self, min: _Optional[float] = ...) -> None: ...

class MetricGate(_message.Message):
    __slots__ = ("metric", "aggregation", "max", "max_delta")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MAX_DELTA_FIELD_NUMBER: _ClassVar[int]
    metric: str
    aggregation: MetricAggregation
    max: float
    max_delta: float
    def __init__(self, metric: _Optional[str] = ..., aggregation: _Optional[_Union[MetricAggregation, str]] = ..., max: _Optional[float] = ..., max_delta: _Optional[float] = ...) -> None: ...

class InvariantGate(_message.Message):
    __slots__ = ("max",)
    MAX_FIELD_NUMBER: _ClassVar[int]
    max: int
    def __init__(self, max: _Optional[int] = ...) -> None: ...

class Analysis(_message.Message):
    __slots__ = ("window", "interval", "consecutive_breaches", "grace_period", "max_breach_rate", "auto_promote", "auto_rollback", "no_data_timeout", "cooldown", "max_auto_rollbacks_per_day", "dry_run", "on_no_data")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_BREACHES_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    MAX_BREACH_RATE_FIELD_NUMBER: _ClassVar[int]
    AUTO_PROMOTE_FIELD_NUMBER: _ClassVar[int]
    AUTO_ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    NO_DATA_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_FIELD_NUMBER: _ClassVar[int]
    MAX_AUTO_ROLLBACKS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    ON_NO_DATA_FIELD_NUMBER: _ClassVar[int]
    window: _duration_pb2.Duration
    interval: _duration_pb2.Duration
    consecutive_breaches: int
    grace_period: _duration_pb2.Duration
    max_breach_rate: float
    auto_promote: bool
    auto_rollback: bool
    no_data_timeout: _duration_pb2.Duration
    cooldown: _duration_pb2.Duration
    max_auto_rollbacks_per_day: int
    dry_run: bool
    on_no_data: Action
    def __init__(self, window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., consecutive_breaches: _Optional[int] = ..., grace_period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_breach_rate: _Optional[float] = ..., auto_promote: _Optional[bool] = ..., auto_rollback: _Optional[bool] = ..., no_data_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cooldown: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_auto_rollbacks_per_day: _Optional[int] = ..., dry_run: _Optional[bool] = ..., on_no_data: _Optional[_Union[Action, str]] = ...) -> None: ...
