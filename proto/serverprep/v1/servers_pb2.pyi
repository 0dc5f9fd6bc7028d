import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from serverprep.v1 import preparations_pb2 as _preparations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Server(_message.Message):
    __slots__ = ("name", "host", "port", "user", "host_key", "host_key_fingerprint", "accept_new_host_key", "has_private_key", "has_password", "has_sudo_password", "create_time", "latest_preparation")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    HOST_KEY_FIELD_NUMBER: _ClassVar[int]
    HOST_KEY_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_NEW_HOST_KEY_FIELD_NUMBER: _ClassVar[int]
    HAS_PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    HAS_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    HAS_SUDO_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LATEST_PREPARATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    host: str
    port: int
    user: str
    host_key: str
    host_key_fingerprint: str
    accept_new_host_key: bool
    has_private_key: bool
    has_password: bool
    has_sudo_password: bool
    create_time: _timestamp_pb2.Timestamp
    latest_preparation: _preparations_pb2.PreparationSummary
    def __init__(self, name: _Optional[str] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., user: _Optional[str] = ..., host_key: _Optional[str] = ..., host_key_fingerprint: _Optional[str] = ..., accept_new_host_key: _Optional[bool] = ..., has_private_key: _Optional[bool] = ..., has_password: _Optional[bool] = ..., has_sudo_password: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latest_preparation: _Optional[_Union[_preparations_pb2.PreparationSummary, _Mapping]] = ...) -> None: ...

class Credentials(_message.Message):
    __slots__ = ("private_key", "private_key_passphrase", "password", "sudo_password")
    PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_PASSPHRASE_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    SUDO_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    private_key: str
    private_key_passphrase: str
    password: str
    sudo_password: str
    def __init__(self, private_key: _Optional[str] = ..., private_key_passphrase: _Optional[str] = ..., password: _Optional[str] = ..., sudo_password: _Optional[str] = ...) -> None: ...

class CreateServerRequest(_message.Message):
    __slots__ = ("name", "host", "port", "user", "credentials", "host_key", "accept_new_host_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    HOST_KEY_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_NEW_HOST_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    host: str
    port: int
    user: str
    credentials: Credentials
    host_key: str
    accept_new_host_key: bool
    def __init__(self, name: _Optional[str] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., user: _Optional[str] = ..., credentials: _Optional[_Union[Credentials, _Mapping]] = ..., host_key: _Optional[str] = ..., accept_new_host_key: _Optional[bool] = ...) -> None: ...

class CreateServerResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: Server
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class GetServerRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetServerResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: Server
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class ListServersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListServersResponse(_message.Message):
    __slots__ = ("servers", "next_page_token")
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    servers: _containers.RepeatedCompositeFieldContainer[Server]
    next_page_token: str
    def __init__(self, servers: _Optional[_Iterable[_Union[Server, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateServerRequest(_message.Message):
    __slots__ = ("name", "host", "port", "user", "credentials", "host_key", "accept_new_host_key", "update_mask")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    HOST_KEY_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_NEW_HOST_KEY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    name: str
    host: str
    port: int
    user: str
    credentials: Credentials
    host_key: str
    accept_new_host_key: bool
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, name: _Optional[str] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., user: _Optional[str] = ..., credentials: _Optional[_Union[Credentials, _Mapping]] = ..., host_key: _Optional[str] = ..., accept_new_host_key: _Optional[bool] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateServerResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: Server
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class DeleteServerRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteServerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
