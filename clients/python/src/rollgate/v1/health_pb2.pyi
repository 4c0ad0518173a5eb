import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from rollgate.v1 import rollout_pb2 as _rollout_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_PASS: _ClassVar[Verdict]
    VERDICT_WARN: _ClassVar[Verdict]
    VERDICT_FAIL: _ClassVar[Verdict]
    VERDICT_INCONCLUSIVE: _ClassVar[Verdict]

class Recommendation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECOMMENDATION_UNSPECIFIED: _ClassVar[Recommendation]
    RECOMMENDATION_HEALTHY: _ClassVar[Recommendation]
    RECOMMENDATION_MONITOR: _ClassVar[Recommendation]
    RECOMMENDATION_ROLLBACK: _ClassVar[Recommendation]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_CONTINUE: _ClassVar[Decision]
    DECISION_PROMOTE: _ClassVar[Decision]
    DECISION_HOLD: _ClassVar[Decision]
    DECISION_STEP_BACK: _ClassVar[Decision]
    DECISION_SCALE_DOWN: _ClassVar[Decision]
    DECISION_ROLLBACK: _ClassVar[Decision]
    DECISION_EMERGENCY_STOP: _ClassVar[Decision]
VERDICT_UNSPECIFIED: Verdict
VERDICT_PASS: Verdict
VERDICT_WARN: Verdict
VERDICT_FAIL: Verdict
VERDICT_INCONCLUSIVE: Verdict
RECOMMENDATION_UNSPECIFIED: Recommendation
RECOMMENDATION_HEALTHY: Recommendation
RECOMMENDATION_MONITOR: Recommendation
RECOMMENDATION_ROLLBACK: Recommendation
DECISION_UNSPECIFIED: Decision
DECISION_CONTINUE: Decision
DECISION_PROMOTE: Decision
DECISION_HOLD: Decision
DECISION_STEP_BACK: Decision
DECISION_SCALE_DOWN: Decision
DECISION_ROLLBACK: Decision
DECISION_EMERGENCY_STOP: Decision

class GateStatus(_message.Message):
    __slots__ = ("name", "kind", "observed", "threshold", "baseline", "samples", "verdict", "consecutive_breaches", "message", "on_breach", "sequential")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_BREACHES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ON_BREACH_FIELD_NUMBER: _ClassVar[int]
    SEQUENTIAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    observed: float
    threshold: float
    baseline: float
    samples: int
    verdict: Verdict
    consecutive_breaches: int
    message: str
    on_breach: _rollout_pb2.Action
    sequential: SequentialEvidence
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., observed: _Optional[float] = ..., threshold: _Optional[float] = ..., baseline: _Optional[float] = ..., samples: _Optional[int] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., consecutive_breaches: _Optional[int] = ..., message: _Optional[str] = ..., on_breach: _Optional[_Union[_rollout_pb2.Action, str]] = ..., sequential: _Optional[_Union[SequentialEvidence, _Mapping]] = ...) -> None: ...

class SequentialEvidence(_message.Message):
    __slots__ = ("bound", "look", "planned_looks", "statistic", "boundary", "expected", "spent_share", "alpha", "p_value", "rate_variation", "crossed")
    BOUND_FIELD_NUMBER: _ClassVar[int]
    LOOK_FIELD_NUMBER: _ClassVar[int]
    PLANNED_LOOKS_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    BOUNDARY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    SPENT_SHARE_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    RATE_VARIATION_FIELD_NUMBER: _ClassVar[int]
    CROSSED_FIELD_NUMBER: _ClassVar[int]
    bound: str
    look: int
    planned_looks: int
    statistic: int
    boundary: int
    expected: float
    spent_share: float
    alpha: float
    p_value: float
    rate_variation: float
    crossed: bool
    def __init__(self, bound: _Optional[str] = ..., look: _Optional[int] = ..., planned_looks: _Optional[int] = ..., statistic: _Optional[int] = ..., boundary: _Optional[int] = ..., expected: _Optional[float] = ..., spent_share: _Optional[float] = ..., alpha: _Optional[float] = ..., p_value: _Optional[float] = ..., rate_variation: _Optional[float] = ..., crossed: _Optional[bool] = ...) -> None: ...

class VariantSamples(_message.Message):
    __slots__ = ("stable", "canary")
    STABLE_FIELD_NUMBER: _ClassVar[int]
    CANARY_FIELD_NUMBER: _ClassVar[int]
    stable: int
    canary: int
    def __init__(self, stable: _Optional[int] = ..., canary: _Optional[int] = ...) -> None: ...

class RolloutHealth(_message.Message):
    __slots__ = ("rollout", "score", "recommendation", "gates", "consecutive_breaches", "samples", "stage", "weight_bp", "current_step", "paused", "next_action", "next_action_at", "evaluated_at", "rollout_version", "message")
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_BREACHES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_BP_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STEP_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    NEXT_ACTION_FIELD_NUMBER: _ClassVar[int]
    NEXT_ACTION_AT_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_AT_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    rollout: str
    score: float
    recommendation: Recommendation
    gates: _containers.RepeatedCompositeFieldContainer[GateStatus]
    consecutive_breaches: int
    samples: VariantSamples
    stage: _rollout_pb2.Stage
    weight_bp: int
    current_step: int
    paused: bool
    next_action: Decision
    next_action_at: _timestamp_pb2.Timestamp
    evaluated_at: _timestamp_pb2.Timestamp
    rollout_version: int
    message: str
    def __init__(self, rollout: _Optional[str] = ..., score: _Optional[float] = ..., recommendation: _Optional[_Union[Recommendation, str]] = ..., gates: _Optional[_Iterable[_Union[GateStatus, _Mapping]]] = ..., consecutive_breaches: _Optional[int] = ..., samples: _Optional[_Union[VariantSamples, _Mapping]] = ..., stage: _Optional[_Union[_rollout_pb2.Stage, str]] = ..., weight_bp: _Optional[int] = ..., current_step: _Optional[int] = ..., paused: _Optional[bool] = ..., next_action: _Optional[_Union[Decision, str]] = ..., next_action_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., evaluated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rollout_version: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...
