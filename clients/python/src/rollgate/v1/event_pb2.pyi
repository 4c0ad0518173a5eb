import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_CREATED: _ClassVar[EventType]
    EVENT_TYPE_UPDATED: _ClassVar[EventType]
    EVENT_TYPE_DELETED: _ClassVar[EventType]
    EVENT_TYPE_STEP_CHANGED: _ClassVar[EventType]
    EVENT_TYPE_WEIGHT_CHANGED: _ClassVar[EventType]
    EVENT_TYPE_PROMOTED: _ClassVar[EventType]
    EVENT_TYPE_ROLLED_BACK: _ClassVar[EventType]
    EVENT_TYPE_HALTED: _ClassVar[EventType]
    EVENT_TYPE_RESUMED: _ClassVar[EventType]
    EVENT_TYPE_PAUSED: _ClassVar[EventType]
    EVENT_TYPE_FEATURE_CHANGED: _ClassVar[EventType]
    EVENT_TYPE_OVERRIDE_CHANGED: _ClassVar[EventType]
    EVENT_TYPE_GATE_BREACH: _ClassVar[EventType]
    EVENT_TYPE_DECISION: _ClassVar[EventType]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_CREATED: EventType
EVENT_TYPE_UPDATED: EventType
EVENT_TYPE_DELETED: EventType
EVENT_TYPE_STEP_CHANGED: EventType
EVENT_TYPE_WEIGHT_CHANGED: EventType
EVENT_TYPE_PROMOTED: EventType
EVENT_TYPE_ROLLED_BACK: EventType
EVENT_TYPE_HALTED: EventType
EVENT_TYPE_RESUMED: EventType
EVENT_TYPE_PAUSED: EventType
EVENT_TYPE_FEATURE_CHANGED: EventType
EVENT_TYPE_OVERRIDE_CHANGED: EventType
EVENT_TYPE_GATE_BREACH: EventType
EVENT_TYPE_DECISION: EventType

class Event(_message.Message):
    __slots__ = ("seq", "time", "rollout", "type", "actor", "reason", "fingerprint", "snapshot", "prev_hash", "hash")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: _timestamp_pb2.Timestamp
    rollout: str
    type: EventType
    actor: str
    reason: str
    fingerprint: str
    snapshot: str
    prev_hash: str
    hash: str
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rollout: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., fingerprint: _Optional[str] = ..., snapshot: _Optional[str] = ..., prev_hash: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...
