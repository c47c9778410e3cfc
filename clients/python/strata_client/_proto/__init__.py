"""The wire protocol (`strata.v1`), built at import from the proto's encoded descriptor set.

`strata.binpb` is proto/proto/strata.proto compiled to a `FileDescriptorSet` (a Rust test keeps it
equal to the proto). Message classes come from protobuf's own descriptor pool, so the package
works with any protobuf release from 4.22 on and needs no generated code; the gRPC methods are
called by their paths (`/strata.v1.Strata/CreateRun`) with these classes' (de)serializers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "strata.v1"
SERVICE = f"/{PACKAGE}.Strata/"

_pool = descriptor_pool.DescriptorPool()
for _file in descriptor_pb2.FileDescriptorSet.FromString(
    (Path(__file__).parent / "strata.binpb").read_bytes()
).file:
    _pool.Add(_file)

_classes: Dict[str, Any] = {}


def message(name: str) -> Any:
    """The message class `strata.v1.NAME` (e.g. `message("CreateRunRequest")`)."""
    if name not in _classes:
        descriptor = _pool.FindMessageTypeByName(f"{PACKAGE}.{name}")
        get_class = getattr(message_factory, "GetMessageClass", None)
        if get_class is not None:
            _classes[name] = get_class(descriptor)
        else:  # protobuf < 4.22 had only the factory's prototypes
            _classes[name] = message_factory.MessageFactory(_pool).GetPrototype(descriptor)
    return _classes[name]


def enum_value(enum: str, value: str) -> int:
    """The number of `strata.v1.ENUM.VALUE` (e.g. `enum_value("RunStatus", "RUN_STATUS_COMPLETED")`)."""
    return _pool.FindEnumTypeByName(f"{PACKAGE}.{enum}").values_by_name[value].number


def enum_name(enum: str, number: int) -> str:
    """The name of value `number` of `strata.v1.ENUM` (`RUN_STATUS_UNSPECIFIED` if unknown)."""
    values = _pool.FindEnumTypeByName(f"{PACKAGE}.{enum}").values_by_number
    value = values.get(number)
    return value.name if value is not None else next(iter(values.values())).name


def label(enum: str, number: int) -> str:
    """A value as users read it: `RunStatus` 3 → `completed`, `Verdict` 8 → `too-short`."""
    prefix = "".join("_" + c if c.isupper() else c for c in enum).lstrip("_").upper() + "_"
    return enum_name(enum, number)[len(prefix):].lower().replace("_", "-")


class _Messages:
    """`pb.CreateRunRequest(...)`: attribute access to the message classes."""

    def __getattr__(self, name: str) -> Any:
        return message(name)


pb: Any = _Messages()

__all__ = ["PACKAGE", "SERVICE", "message", "enum_value", "enum_name", "label", "pb"]
