"""PNG encoding for collected frames: a direct zlib encoder for small uint8 frames, Pillow otherwise.

A BabyAI step takes about 1.2 ms, and Pillow spends about 0.15 ms on a 64x64 frame whatever
the compression level: nearly all of it is fixed per-call cost (plugin lookup, chunk
machinery), not compression. Writing the few chunks of a PNG ourselves (filter type 0 on
every row, one zlib stream) costs about 0.05 ms for the same frame and, on grid-world images
with large flat areas, gives files as small as Pillow's. Large frames (camera images) keep
Pillow, whose per-row adaptive filtering compresses natural images better and whose fixed cost
is small next to their size.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

#: Frames up to this many pixels take the direct encoder.
FAST_PNG_PIXELS = 128 * 128
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (grey, RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png_fast(image: np.ndarray, level: int = 1) -> bytes:
    """A valid 8-bit PNG of a uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array: filter 0, one IDAT."""
    if image.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8, got {image.dtype}")
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.ndim not in (2, 3) or channels not in _COLOR_TYPES:
        raise ValueError(f"image arrays must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
    rows = np.zeros((height, width * channels + 1), np.uint8)  # column 0: each row's filter byte (0: none)
    rows[:, 1:] = image.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    return b"".join(
        (
            _SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)),
            _chunk(b"IEND", b""),
        )
    )


def encode_png(image: np.ndarray, level: int) -> bytes:
    """PNG bytes of ``image`` at zlib ``level``: the direct encoder for small uint8 frames, else Pillow."""
    small = image.ndim in (2, 3) and image.shape[0] * image.shape[1] <= FAST_PNG_PIXELS
    if small and image.dtype == np.uint8 and (image.ndim == 2 or image.shape[2] in _COLOR_TYPES):
        return encode_png_fast(image, level)
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG", compress_level=level)
    return buffer.getvalue()
