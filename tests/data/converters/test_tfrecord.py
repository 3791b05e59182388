"""TFRecord framing, CRC-32C, GZIP/ZLIB and tf.train.Example decoding, checked byte by byte."""

from __future__ import annotations

import gzip
import struct
import zlib

import pytest

from omniactor.data.converters import protobuf as pb
from omniactor.data.converters.tfrecord import (
    BadRecord,
    crc32c,
    crc32c_python,
    encode_example,
    frame_record,
    masked_crc32c,
    parse_example,
    read_records,
    write_records,
)


def test_crc32c_known_values():
    # RFC 3720 (iSCSI) check value and test vectors
    assert crc32c(b"123456789") == crc32c_python(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == crc32c_python(bytes(32)) == 0x8A9136AA
    assert crc32c(bytes([0xFF] * 32)) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert masked_crc32c(b"") == 0xA282EAD8  # crc 0 masked: only the delta remains


def test_frame_layout_is_exact():
    data = b"hello tfrecord"
    framed = frame_record(data)
    length = struct.pack("<Q", len(data))
    crc = crc32c_python(length)
    masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert framed[:8] == length
    assert framed[8:12] == struct.pack("<I", masked)
    assert framed[12:-4] == data
    crc = crc32c_python(data)
    assert framed[-4:] == struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


@pytest.mark.parametrize("compression", ["gzip", "zlib", "none"])
def test_round_trip(tmp_path, compression):
    path = tmp_path / "f.tfrecord"
    payloads = [b"", b"a", bytes(range(256)) * 40]
    assert write_records(path, payloads, compression) == 3
    raw = path.read_bytes()
    if compression == "gzip":
        assert raw[:2] == b"\x1f\x8b"
        raw = gzip.decompress(raw)
    elif compression == "zlib":
        raw = zlib.decompress(raw)
    assert raw == b"".join(frame_record(p) for p in payloads)
    read = list(read_records(path, compression="zlib" if compression == "zlib" else "auto"))
    assert read == payloads


def _framed_file(tmp_path, payloads, corrupt):
    raw = bytearray(b"".join(frame_record(p) for p in payloads))
    corrupt(raw)
    path = tmp_path / "bad.tfrecord.gz"
    path.write_bytes(gzip.compress(bytes(raw)))
    return path


def test_bad_data_checksum_skips_one_record(tmp_path):
    payloads = [b"first", b"second record", b"third"]
    offset = len(frame_record(payloads[0])) + 12 + 2  # inside the second record's data

    def flip(raw):
        raw[offset] ^= 0xFF

    out = list(read_records(_framed_file(tmp_path, payloads, flip)))
    assert out[0] == b"first" and out[2] == b"third"
    assert isinstance(out[1], BadRecord) and out[1].index == 1 and not out[1].fatal
    assert "data checksum" in out[1].reason and out[1].offset == len(frame_record(payloads[0]))
    assert list(read_records(_framed_file(tmp_path, payloads, flip), verify=False))[1] != b"second record"


def test_bad_length_checksum_and_truncation_are_fatal(tmp_path):
    payloads = [b"first", b"second"]

    def length(raw):
        raw[len(frame_record(payloads[0]))] ^= 0x01  # the second record's length

    out = list(read_records(_framed_file(tmp_path, payloads, length)))
    assert out[0] == b"first" and len(out) == 2 and out[1].fatal and "length checksum" in out[1].reason

    path = tmp_path / "cut.tfrecord"
    path.write_bytes(b"".join(frame_record(p) for p in payloads)[:-3])
    out = list(read_records(path))
    assert out[0] == b"first" and out[1].fatal and "ends inside a record" in out[1].reason

    path.write_bytes(gzip.compress(b"".join(frame_record(p) for p in payloads))[:-12])  # broken GZIP stream
    out = list(read_records(path))
    assert isinstance(out[-1], BadRecord) and out[-1].fatal


def test_example_round_trip_and_unpacked_encodings():
    features = {"name": [b"abc", "d\u00e9f"], "ints": [1, -2, 2**40], "floats": [0.5, -1.25], "empty": []}
    parsed = parse_example(encode_example(features))
    assert parsed == {"name": [b"abc", "d\u00e9f".encode()], "ints": [1, -2, 2**40], "floats": [0.5, -1.25],
                      "empty": []}
    # Int64List / FloatList written unpacked (as other protobuf writers may), and an unknown field in Example
    ints = pb.field_bytes(3, pb.field_varint(1, 7) + pb.field_varint(1, -1))
    floats = pb.field_bytes(2, pb.varint(1 << 3 | 5) + struct.pack("<f", 2.5))
    entries = b"".join(pb.field_bytes(1, pb.field_bytes(1, k) + pb.field_bytes(2, v))
                       for k, v in (("i", ints), ("f", floats)))
    example = pb.field_bytes(1, entries) + pb.field_varint(9, 1)
    assert parse_example(example) == {"i": [7, -1], "f": [2.5]}


def test_malformed_protobuf_raises():
    with pytest.raises(pb.ProtobufError):
        parse_example(pb.field_bytes(1, b"\x0a\xff"))  # claims 255 bytes, has none
    with pytest.raises(pb.ProtobufError):
        list(pb.fields(b"\x80"))  # a varint that never ends
