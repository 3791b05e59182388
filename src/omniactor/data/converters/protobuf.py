"""The protobuf wire format, just enough to read (and, for test fixtures, write) messages
without generated code: ``tf.train.Example`` in TFRecords and Android accessibility trees.

A message is a sequence of fields, each a key varint ``(number << 3) | wire_type`` then a
value: 0 varint, 1 fixed 64-bit, 2 length-delimited bytes (strings, sub-messages, packed
repeated scalars), 5 fixed 32-bit. ``fields(data)`` yields ``(number, wire_type, value)``;
the caller knows its schema and decodes sub-messages by calling ``fields`` again. Unknown
fields are simply yielded and can be ignored, as protobuf readers do.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from ...errors import OmniactorError

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5


class ProtobufError(OmniactorError, ValueError):
    """Bytes that are not a well-formed protobuf message."""


def read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the position after it."""
    result = shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise ProtobufError("message ends inside a varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint longer than 10 bytes")


def fields(data: bytes | memoryview) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` for every field of one message, in order.

    Varints are unsigned ints (see ``signed64``); fixed-width values are raw ints (see
    ``as_float``); length-delimited values are ``bytes``.
    """
    data = memoryview(data)
    pos, end = 0, len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0")
        if wire == VARINT:
            value, pos = read_varint(data, pos)
        elif wire == BYTES:
            size, pos = read_varint(data, pos)
            if pos + size > end:
                raise ProtobufError(f"field {number} claims {size} bytes but only {end - pos} remain")
            value = bytes(data[pos : pos + size])
            pos += size
        elif wire == FIXED32:
            if pos + 4 > end:
                raise ProtobufError("message ends inside a fixed32")
            value = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        elif wire == FIXED64:
            if pos + 8 > end:
                raise ProtobufError("message ends inside a fixed64")
            value = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        else:
            raise ProtobufError(f"field {number} has unsupported wire type {wire} (groups are not supported)")
        yield number, wire, value


def signed64(value: int) -> int:
    """An int64/int32 field's varint as a signed number (negatives are 10-byte two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def packed_varints(data: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(data):
        value, pos = read_varint(data, pos)
        out.append(value)
    return out


def packed_floats(data: bytes) -> list[float]:
    if len(data) % 4:
        raise ProtobufError(f"packed floats of {len(data)} bytes (not a multiple of 4)")
    return list(struct.unpack(f"<{len(data) // 4}f", data))


def as_float(value: int) -> float:
    """A fixed32 field's raw value as an IEEE float."""
    return struct.unpack("<f", value.to_bytes(4, "little"))[0]


# ---------------------------------------------------------------------------- writing (fixtures)


def varint(value: int) -> bytes:
    """Encode an unsigned varint (negative int64 values as their 64-bit two's complement)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3 | VARINT) + varint(int(value))


def field_bytes(number: int, value: bytes | str) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return varint(number << 3 | BYTES) + varint(len(raw)) + raw
