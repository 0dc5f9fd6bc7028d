import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PreparationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREPARATION_STATE_UNSPECIFIED: _ClassVar[PreparationState]
    PREPARATION_STATE_PENDING: _ClassVar[PreparationState]
    PREPARATION_STATE_RUNNING: _ClassVar[PreparationState]
    PREPARATION_STATE_SUCCEEDED: _ClassVar[PreparationState]
    PREPARATION_STATE_FAILED: _ClassVar[PreparationState]
    PREPARATION_STATE_CANCELLED: _ClassVar[PreparationState]

class StepState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATE_UNSPECIFIED: _ClassVar[StepState]
    STEP_STATE_PENDING: _ClassVar[StepState]
    STEP_STATE_RUNNING: _ClassVar[StepState]
    STEP_STATE_SUCCEEDED: _ClassVar[StepState]
    STEP_STATE_SKIPPED: _ClassVar[StepState]
    STEP_STATE_FAILED: _ClassVar[StepState]
    STEP_STATE_CANCELLED: _ClassVar[StepState]

class DockerSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOCKER_SOURCE_UNSPECIFIED: _ClassVar[DockerSource]
    DOCKER_SOURCE_OFFICIAL: _ClassVar[DockerSource]
    DOCKER_SOURCE_DISTRO: _ClassVar[DockerSource]

class LogStream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOG_STREAM_UNSPECIFIED: _ClassVar[LogStream]
    LOG_STREAM_STDOUT: _ClassVar[LogStream]
    LOG_STREAM_STDERR: _ClassVar[LogStream]
    LOG_STREAM_EVENT: _ClassVar[LogStream]
PREPARATION_STATE_UNSPECIFIED: PreparationState
PREPARATION_STATE_PENDING: PreparationState
PREPARATION_STATE_RUNNING: PreparationState
PREPARATION_STATE_SUCCEEDED: PreparationState
PREPARATION_STATE_FAILED: PreparationState
PREPARATION_STATE_CANCELLED: PreparationState
STEP_STATE_UNSPECIFIED: StepState
STEP_STATE_PENDING: StepState
STEP_STATE_RUNNING: StepState
STEP_STATE_SUCCEEDED: StepState
STEP_STATE_SKIPPED: StepState
STEP_STATE_FAILED: StepState
STEP_STATE_CANCELLED: StepState
DOCKER_SOURCE_UNSPECIFIED: DockerSource
DOCKER_SOURCE_OFFICIAL: DockerSource
DOCKER_SOURCE_DISTRO: DockerSource
LOG_STREAM_UNSPECIFIED: LogStream
LOG_STREAM_STDOUT: LogStream
LOG_STREAM_STDERR: LogStream
LOG_STREAM_EVENT: LogStream

class PrepareOptions(_message.Message):
    __slots__ = ("docker_source", "step_timeout_seconds", "docker_version", "channel", "repository_url", "http_proxy", "https_proxy", "no_proxy")
    DOCKER_SOURCE_FIELD_NUMBER: _ClassVar[int]
    STEP_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DOCKER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_URL_FIELD_NUMBER: _ClassVar[int]
    HTTP_PROXY_FIELD_NUMBER: _ClassVar[int]
    HTTPS_PROXY_FIELD_NUMBER: _ClassVar[int]
    NO_PROXY_FIELD_NUMBER: _ClassVar[int]
    docker_source: DockerSource
    step_timeout_seconds: int
    docker_version: str
    channel: str
    repository_url: str
    http_proxy: str
    https_proxy: str
    no_proxy: str
    def __init__(self, docker_source: _Optional[_Union[DockerSource, str]] = ..., step_timeout_seconds: _Optional[int] = ..., docker_version: _Optional[str] = ..., channel: _Optional[str] = ..., repository_url: _Optional[str] = ..., http_proxy: _Optional[str] = ..., https_proxy: _Optional[str] = ..., no_proxy: _Optional[str] = ...) -> None: ...

class OperatingSystem(_message.Message):
    __slots__ = ("id", "version_id", "pretty_name", "codename", "architecture", "driver")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    PRETTY_NAME_FIELD_NUMBER: _ClassVar[int]
    CODENAME_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    id: str
    version_id: str
    pretty_name: str
    codename: str
    architecture: str
    driver: str
    def __init__(self, id: _Optional[str] = ..., version_id: _Optional[str] = ..., pretty_name: _Optional[str] = ..., codename: _Optional[str] = ..., architecture: _Optional[str] = ..., driver: _Optional[str] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("name", "state", "exit_code", "message", "start_time", "end_time", "attempts")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: StepState
    exit_code: int
    message: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    attempts: int
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[StepState, str]] = ..., exit_code: _Optional[int] = ..., message: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[int] = ...) -> None: ...

class Failure(_message.Message):
    __slots__ = ("reason", "message", "step")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    step: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ..., step: _Optional[str] = ...) -> None: ...

class Preparation(_message.Message):
    __slots__ = ("id", "server", "state", "options", "steps", "operating_system", "failure", "request_id", "create_time", "start_time", "end_time", "last_seq", "attempt")
    ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    OPERATING_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    id: str
    server: str
    state: PreparationState
    options: PrepareOptions
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    operating_system: OperatingSystem
    failure: Failure
    request_id: str
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    last_seq: int
    attempt: int
    def __init__(self, id: _Optional[str] = ..., server: _Optional[str] = ..., state: _Optional[_Union[PreparationState, str]] = ..., options: _Optional[_Union[PrepareOptions, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., operating_system: _Optional[_Union[OperatingSystem, _Mapping]] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., request_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seq: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class PreparationSummary(_message.Message):
    __slots__ = ("id", "state", "attempt", "last_seq")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: PreparationState
    attempt: int
    last_seq: int
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[PreparationState, str]] = ..., attempt: _Optional[int] = ..., last_seq: _Optional[int] = ...) -> None: ...

class PrepareRequest(_message.Message):
    __slots__ = ("server", "options", "request_id")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    server: str
    options: PrepareOptions
    request_id: str
    def __init__(self, server: _Optional[str] = ..., options: _Optional[_Union[PrepareOptions, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class PrepareResponse(_message.Message):
    __slots__ = ("preparation",)
    PREPARATION_FIELD_NUMBER: _ClassVar[int]
    preparation: Preparation
    def __init__(self, preparation: _Optional[_Union[Preparation, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("server", "preparation_id")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    PREPARATION_ID_FIELD_NUMBER: _ClassVar[int]
    server: str
    preparation_id: str
    def __init__(self, server: _Optional[str] = ..., preparation_id: _Optional[str] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("preparation",)
    PREPARATION_FIELD_NUMBER: _ClassVar[int]
    preparation: Preparation
    def __init__(self, preparation: _Optional[_Union[Preparation, _Mapping]] = ...) -> None: ...

class LogEntry(_message.Message):
    __slots__ = ("seq", "time", "step", "stream", "text", "step_state", "preparation_state")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    STEP_STATE_FIELD_NUMBER: _ClassVar[int]
    PREPARATION_STATE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: _timestamp_pb2.Timestamp
    step: str
    stream: LogStream
    text: str
    step_state: StepState
    preparation_state: PreparationState
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., step: _Optional[str] = ..., stream: _Optional[_Union[LogStream, str]] = ..., text: _Optional[str] = ..., step_state: _Optional[_Union[StepState, str]] = ..., preparation_state: _Optional[_Union[PreparationState, str]] = ...) -> None: ...

class StreamLogsRequest(_message.Message):
    __slots__ = ("server", "preparation_id", "after_seq", "no_follow")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    PREPARATION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    NO_FOLLOW_FIELD_NUMBER: _ClassVar[int]
    server: str
    preparation_id: str
    after_seq: int
    no_follow: bool
    def __init__(self, server: _Optional[str] = ..., preparation_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., no_follow: _Optional[bool] = ...) -> None: ...

class StreamLogsResponse(_message.Message):
    __slots__ = ("entries", "preparation_state")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    PREPARATION_STATE_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LogEntry]
    preparation_state: PreparationState
    def __init__(self, entries: _Optional[_Iterable[_Union[LogEntry, _Mapping]]] = ..., preparation_state: _Optional[_Union[PreparationState, str]] = ...) -> None: ...

class RetryRequest(_message.Message):
    __slots__ = ("server", "preparation_id")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    PREPARATION_ID_FIELD_NUMBER: _ClassVar[int]
    server: str
    preparation_id: str
    def __init__(self, server: _Optional[str] = ..., preparation_id: _Optional[str] = ...) -> None: ...

class RetryResponse(_message.Message):
    __slots__ = ("preparation",)
    PREPARATION_FIELD_NUMBER: _ClassVar[int]
    preparation: Preparation
    def __init__(self, preparation: _Optional[_Union[Preparation, _Mapping]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("server", "preparation_id")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    PREPARATION_ID_FIELD_NUMBER: _ClassVar[int]
    server: str
    preparation_id: str
    def __init__(self, server: _Optional[str] = ..., preparation_id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("preparation",)
    PREPARATION_FIELD_NUMBER: _ClassVar[int]
    preparation: Preparation
    def __init__(self, preparation: _Optional[_Union[Preparation, _Mapping]] = ...) -> None: ...

class ListPreparationsRequest(_message.Message):
    __slots__ = ("server", "page_size", "page_token")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    server: str
    page_size: int
    page_token: str
    def __init__(self, server: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class PlanRequest(_message.Message):
    __slots__ = ("server", "options")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    server: str
    options: PrepareOptions
    def __init__(self, server: _Optional[str] = ..., options: _Optional[_Union[PrepareOptions, _Mapping]] = ...) -> None: ...

class Repository(_message.Message):
    __slots__ = ("url", "suite", "component", "key_url")
    URL_FIELD_NUMBER: _ClassVar[int]
    SUITE_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    KEY_URL_FIELD_NUMBER: _ClassVar[int]
    url: str
    suite: str
    component: str
    key_url: str
    def __init__(self, url: _Optional[str] = ..., suite: _Optional[str] = ..., component: _Optional[str] = ..., key_url: _Optional[str] = ...) -> None: ...

class PlannedStep(_message.Message):
    __slots__ = ("name", "commands", "checks", "as_user", "skip_reason", "summaries", "check_summary")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    AS_USER_FIELD_NUMBER: _ClassVar[int]
    SKIP_REASON_FIELD_NUMBER: _ClassVar[int]
    SUMMARIES_FIELD_NUMBER: _ClassVar[int]
    CHECK_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    name: str
    commands: _containers.RepeatedScalarFieldContainer[str]
    checks: _containers.RepeatedScalarFieldContainer[str]
    as_user: bool
    skip_reason: str
    summaries: _containers.RepeatedScalarFieldContainer[str]
    check_summary: str
    def __init__(self, name: _Optional[str] = ..., commands: _Optional[_Iterable[str]] = ..., checks: _Optional[_Iterable[str]] = ..., as_user: _Optional[bool] = ..., skip_reason: _Optional[str] = ..., summaries: _Optional[_Iterable[str]] = ..., check_summary: _Optional[str] = ...) -> None: ...

class PlanResponse(_message.Message):
    __slots__ = ("driver", "operating_system", "repository", "steps")
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    OPERATING_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    driver: str
    operating_system: OperatingSystem
    repository: Repository
    steps: _containers.RepeatedCompositeFieldContainer[PlannedStep]
    def __init__(self, driver: _Optional[str] = ..., operating_system: _Optional[_Union[OperatingSystem, _Mapping]] = ..., repository: _Optional[_Union[Repository, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[PlannedStep, _Mapping]]] = ...) -> None: ...

class ListPreparationsResponse(_message.Message):
    __slots__ = ("preparations", "next_page_token")
    PREPARATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    preparations: _containers.RepeatedCompositeFieldContainer[Preparation]
    next_page_token: str
    def __init__(self, preparations: _Optional[_Iterable[_Union[Preparation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
