"""gRPC server reflection, v1 and v1alpha, from the API's descriptor set with its comments."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

#: Written by proto/generate.py next to the generated modules: the API, google.rpc.Status and its
#: error details, health and reflection, with source info so that clients see the comments.
DESCRIPTOR_SET = "serverprep.binpb"
REFLECTION_SERVICES = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")


class Descriptors:
    """The files of a FileDescriptorSet, served byte for byte (``CopyToProto`` would drop the comments)."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet):
        self.pool = descriptor_pool.DescriptorPool()
        self._serialized: dict[str, bytes] = {}
        self._dependencies: dict[str, list[str]] = {}
        for file in files.file:  # protoc writes every file after its imports
            self.pool.Add(file)
            self._serialized[file.name] = file.SerializeToString()
            self._dependencies[file.name] = list(file.dependency)

    @classmethod
    def load(cls) -> Descriptors:
        """The descriptor set shipped in the serverprep.v1 package."""
        data = resources.files("serverprep.v1").joinpath(DESCRIPTOR_SET).read_bytes()
        return cls(descriptor_pb2.FileDescriptorSet.FromString(data))

    def file_with_imports(self, name: str) -> list[bytes]:
        """A file and everything it imports, transitively; the file itself first. KeyError if unknown."""
        order: list[str] = []
        pending = [name]
        while pending:
            current = pending.pop()
            if current in order:
                continue
            if current not in self._serialized:
                raise KeyError(current)
            order.append(current)
            pending.extend(self._dependencies[current])
        return [self._serialized[n] for n in order]

    def file_containing_symbol(self, symbol: str) -> str:
        """The file declaring a message, enum, service, field, enum value or method. KeyError if none."""
        try:
            return str(self.pool.FindFileContainingSymbol(symbol).name)
        except KeyError:
            # upb's pool does not look methods up by symbol; grpcurl asks for them (describe Service.Method).
            return str(self.pool.FindMethodByName(symbol).containing_service.file.name)

    def extension_numbers(self, message_type: str) -> list[int]:
        message = self.pool.FindMessageTypeByName(message_type)
        return sorted(ext.number for ext in self.pool.FindAllExtensions(message))


class _Reflection:
    """ServerReflectionInfo of one version; v1 and v1alpha have the same messages in different packages."""

    def __init__(self, package: str, descriptors: Descriptors, service_names: Sequence[str]):
        def message(name: str) -> Any:
            return message_factory.GetMessageClass(descriptors.pool.FindMessageTypeByName(f"{package}.{name}"))

        self.request_type = message("ServerReflectionRequest")
        self.response_type = message("ServerReflectionResponse")
        self.descriptors = descriptors
        self.service_names = service_names

    def handler(self) -> grpc.RpcMethodHandler:
        return grpc.stream_stream_rpc_method_handler(
            self.info,
            request_deserializer=self.request_type.FromString,
            response_serializer=self.response_type.SerializeToString,
        )

    async def info(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for request in requests:
            yield self.answer(request)

    def answer(self, request: Any) -> Any:
        response = self.response_type(original_request=request)
        kind = request.WhichOneof("message_request")
        try:
            if kind == "file_by_filename":
                files = self.descriptors.file_with_imports(request.file_by_filename)
                response.file_descriptor_response.file_descriptor_proto.extend(files)
            elif kind == "file_containing_symbol":
                name = self.descriptors.file_containing_symbol(request.file_containing_symbol)
                response.file_descriptor_response.file_descriptor_proto.extend(self.descriptors.file_with_imports(name))
            elif kind == "file_containing_extension":
                # None of the served files declares an extension.
                raise KeyError(request.file_containing_extension.containing_type)
            elif kind == "all_extension_numbers_of_type":
                numbers = self.descriptors.extension_numbers(request.all_extension_numbers_of_type)
                response.all_extension_numbers_response.base_type_name = request.all_extension_numbers_of_type
                response.all_extension_numbers_response.extension_number.extend(numbers)
            elif kind == "list_services":
                response.list_services_response.SetInParent()  # set even if the list were empty
                for name in self.service_names:
                    response.list_services_response.service.add(name=name)
            else:
                response.error_response.error_code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
                response.error_response.error_message = "the request names no known message_request"
        except KeyError:
            response.error_response.error_code = grpc.StatusCode.NOT_FOUND.value[0]
            response.error_response.error_message = f"{kind} not found: {str(getattr(request, kind)).strip()}"
        return response


def enable_reflection(server: grpc.aio.Server, service_names: Iterable[str], descriptors: Descriptors | None = None) -> None:
    """Serve reflection v1 and v1alpha on ``server``, listing ``service_names`` and both reflection services.

    Descriptors come from :data:`DESCRIPTOR_SET` (with comments, so ``grpcurl describe`` shows them)
    and include ``google.rpc.Status``, ``ErrorInfo``, ``BadRequest`` and the other error details, so a
    reflection-only client can decode the details of any error::

        enable_reflection(server, ["serverprep.v1.ServerService", "grpc.health.v1.Health"])

    Raises ValueError when a listed service is not in the descriptor set (stale generated files).
    """
    descriptors = descriptors or Descriptors.load()
    names = sorted({*service_names, *REFLECTION_SERVICES})
    for name in names:
        try:
            descriptors.pool.FindServiceByName(name)
        except KeyError:
            raise ValueError(f"service {name} is not in {DESCRIPTOR_SET}: add its proto to proto/generate.py and rerun it") from None
    handlers = [
        grpc.method_handlers_generic_handler(service, {"ServerReflectionInfo": _Reflection(service.rsplit(".", 1)[0], descriptors, names).handler()})
        for service in REFLECTION_SERVICES
    ]
    server.add_generic_rpc_handlers(handlers)
