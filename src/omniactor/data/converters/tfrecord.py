"""TFRecord files and ``tf.train.Example`` messages, read (and written) without TensorFlow.

A TFRecord file (optionally GZIP- or ZLIB-compressed as a whole) is a sequence of records::

    uint64 length (little endian) | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)

with ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xA282EAD8 (mod 2**32)`` and CRC-32C
(Castagnoli). ``read_records`` checks both checksums: a bad *data* checksum spoils one
record (reported as a ``BadRecord``; the framing is intact, so reading goes on); a bad
*length* checksum or a file cut short leaves no trustworthy framing, so the rest of the
file is reported as one ``BadRecord`` with ``fatal=True``. Nothing is skipped silently.

``tf.train.Example`` is ``Features features = 1``; ``Features`` is ``map<string, Feature>
feature = 1``; a ``Feature`` holds one of ``BytesList bytes_list = 1``, ``FloatList
float_list = 2``, ``Int64List int64_list = 3``, each a ``repeated value = 1`` (floats and
ints packed or not). ``parse_example`` returns ``{name: list of bytes | float | int}``.

CRC-32C runs in C with ``google-crc32c`` (``pip install 'omniactor[convert]'``); without
it a pure-Python table (~100x slower, a few MB/s) is used.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from .protobuf import (
    BYTES,
    FIXED32,
    VARINT,
    ProtobufError,
    as_float,
    field_bytes,
    fields,
    packed_floats,
    packed_varints,
    signed64,
    varint,
)

Compression = Literal["auto", "gzip", "zlib", "none"]
_MASK_DELTA = 0xA282EAD8


# ---------------------------------------------------------------------------- CRC-32C


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c_python(data: bytes) -> int:
    """CRC-32C in pure Python (reference and fallback)."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:
    import google_crc32c as _google_crc32c

    def crc32c(data: bytes) -> int:
        """CRC-32C (Castagnoli) of ``data``."""
        return _google_crc32c.value(bytes(data))

    CRC32C_BACKEND = "google-crc32c"
except ImportError:  # pragma: no cover - depends on the environment
    crc32c = crc32c_python
    CRC32C_BACKEND = "python"


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


# ---------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class BadRecord:
    """A record that could not be read: its index in the file, byte offset and why.

    ``fatal`` means the framing is lost, so no further record of the file can be read.
    """

    index: int
    offset: int
    reason: str
    fatal: bool = False


def _open(path: Path, compression: Compression) -> BinaryIO:
    if compression == "auto":
        with open(path, "rb") as f:
            head = f.read(2)
        compression = "gzip" if head == b"\x1f\x8b" else "none"
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "zlib":
        return _ZlibReader(open(path, "rb"))
    if compression == "none":
        return open(path, "rb")
    raise ValueError(f"compression {compression!r} is not one of auto, gzip, zlib, none")


class _ZlibReader:
    """A minimal file-like ``read(n)`` over a ZLIB-compressed stream."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.inflate, self.buffer = raw, zlib.decompressobj(), b""

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.raw.read(1 << 16)
            if not chunk:
                self.buffer += self.inflate.flush()
                break
            self.buffer += self.inflate.decompress(chunk)
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> _ZlibReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(
    path: str | os.PathLike, *, compression: Compression = "auto", verify: bool = True
) -> Iterator[bytes | BadRecord]:
    """Every record of a TFRecord file as ``bytes``, or a ``BadRecord`` saying why not.

    ``compression="auto"`` recognises GZIP by its magic bytes (ZLIB must be named).
    ``verify=False`` skips the data checksum (the length checksum is always checked:
    without it a corrupt length could make the reader swallow gigabytes).
    """
    path = Path(path)
    index = offset = 0
    try:
        with _open(path, compression) as f:
            while True:
                header = f.read(12)
                if not header:
                    return
                if len(header) < 12:
                    cut = f"file ends inside a record header ({len(header)} of 12 bytes)"
                    yield BadRecord(index, offset, cut, True)
                    return
                (length,) = struct.unpack("<Q", header[:8])
                (length_crc,) = struct.unpack("<I", header[8:])
                if masked_crc32c(header[:8]) != length_crc:
                    yield BadRecord(index, offset, "length checksum mismatch: the framing is corrupt", True)
                    return
                data = f.read(length)
                footer = f.read(4)
                if len(data) < length or len(footer) < 4:
                    yield BadRecord(index, offset, f"file ends inside a record ({len(data)} of {length} bytes)", True)
                    return
                if verify and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                    yield BadRecord(index, offset, "data checksum mismatch")
                else:
                    yield data
                index += 1
                offset += 16 + length
    except (OSError, EOFError, zlib.error) as err:  # a broken GZIP/ZLIB stream
        yield BadRecord(index, offset, f"cannot decompress: {err}", True)


# ---------------------------------------------------------------------------- tf.train.Example

FeatureValues = list[bytes] | list[float] | list[int]


def _parse_feature(data: bytes) -> FeatureValues:
    for kind, wire, body in fields(data):
        if wire != BYTES:
            raise ProtobufError(f"Feature field {kind} is not a message")
        if kind == 1:
            return [value for n, w, value in fields(body) if n == 1 and w == BYTES]
        if kind == 2:
            floats: list[float] = []
            for n, w, value in fields(body):
                if n == 1:
                    floats.extend(packed_floats(value) if w == BYTES else [as_float(value)] if w == FIXED32 else [])
            return floats
        if kind == 3:
            ints: list[int] = []
            for n, w, value in fields(body):
                if n == 1:
                    raw = packed_varints(value) if w == BYTES else [value] if w == VARINT else []
                    ints.extend(signed64(v) for v in raw)
            return ints
    return []  # a Feature with no kind set: an empty list, as TensorFlow reads it


def parse_example(data: bytes) -> dict[str, FeatureValues]:
    """The features of a serialised ``tf.train.Example``: ``{name: values}``."""
    out: dict[str, FeatureValues] = {}
    for number, wire, features in fields(data):
        if number != 1 or wire != BYTES:
            continue
        for n, w, entry in fields(features):
            if n != 1 or w != BYTES:
                continue
            key, value = "", b""
            for en, ew, ev in fields(entry):
                if en == 1 and ew == BYTES:
                    key = ev.decode("utf-8")
                elif en == 2 and ew == BYTES:
                    value = ev
            out[key] = _parse_feature(value)
    return out


# ---------------------------------------------------------------------------- writing (fixtures, tools)


def encode_example(features: Mapping[str, Sequence[bytes | str] | Sequence[float] | Sequence[int]]) -> bytes:
    """Serialise ``{name: values}`` as a ``tf.train.Example``: bytes/str -> bytes_list,
    floats -> packed float_list, ints -> packed int64_list (an empty list -> empty bytes_list)."""
    entries = b""
    for key, values in features.items():
        values = list(values)
        if all(isinstance(v, (bytes, bytearray, str)) for v in values):
            feature = field_bytes(1, b"".join(field_bytes(1, v) for v in values))
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            feature = field_bytes(3, field_bytes(1, b"".join(varint(v) for v in values)))
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            feature = field_bytes(2, field_bytes(1, struct.pack(f"<{len(values)}f", *values)))
        else:
            raise TypeError(f"feature {key!r}: values must be all bytes/str, all ints or all floats")
        entries += field_bytes(1, field_bytes(1, key) + field_bytes(2, feature))
    return field_bytes(1, entries)


def frame_record(data: bytes) -> bytes:
    """One record in TFRecord framing (length, its masked CRC, data, its masked CRC)."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def write_records(path: str | os.PathLike, records: Iterable[bytes], compression: Compression = "gzip") -> int:
    """Write a TFRecord file (``gzip`` as AndroidControl ships, ``zlib`` or ``none``); returns the count."""
    path = Path(path)
    payload = bytearray()
    count = 0
    for data in records:
        payload += frame_record(data)
        count += 1
    if compression == "gzip":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    elif compression == "zlib":
        path.write_bytes(zlib.compress(bytes(payload)))
    elif compression == "none":
        path.write_bytes(bytes(payload))
    else:
        raise ValueError(f"compression {compression!r} is not one of gzip, zlib, none")
    return count
