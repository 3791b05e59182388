"""What crosses the wire: images (base64 PNG/JPEG in JSON, raw arrays in msgpack) and request
fields, each checked with an error that names the field (``RequestError``: an HTTP status).

Decompression bombs: the image header's width x height is checked against ``max_pixels``
before a single pixel is decoded. msgpack arrays are ``{"dtype", "shape", "data"}`` with raw
bytes, from a short list of dtypes; nothing is ever unpickled.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from typing import Any

import numpy as np

from ..errors import OmniactorError

#: the image formats a request may carry
IMAGE_FORMATS = ("PNG", "JPEG")
#: the dtypes a msgpack array may have
ARRAY_DTYPES = ("uint8", "float32", "float64", "int32", "int64")
#: the default pixel limit of one decoded image (about 4096 x 4096)
MAX_PIXELS = 16_777_216


class RequestError(OmniactorError, ValueError):
    """A request the server refuses: ``status`` (400, 401, 404, 413, 422, 429, ...) and a message
    that names the field."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
    """``data[name]``, of type ``kind`` (422 naming the field otherwise)."""
    if name not in data or data[name] is None:
        if required:
            raise RequestError(422, f"{name}: missing")
        return None
    value = data[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
        raise RequestError(422, f"{name}: expected {' or '.join(k.__name__ for k in kinds)}, "
                                f"got {type(value).__name__}")
    return value


def decode_image(data: Any, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 array from base64 text or bytes of a PNG or JPEG file, or from a
    msgpack array (``decode_array``)."""
    from PIL import Image

    if isinstance(data, dict):
        return check_image_array(decode_array(data, name), name, max_pixels)
    if isinstance(data, str):
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, f"{name}: not base64 text (send the PNG or JPEG file base64-encoded)") from None
    if not isinstance(data, bytes | bytearray):
        raise RequestError(422, f"{name}: expected a base64 PNG/JPEG, got {type(data).__name__}")
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            if image.format not in IMAGE_FORMATS:
                raise RequestError(400, f"{name}: a {image.format} image; send {' or '.join(IMAGE_FORMATS)}")
            width, height = image.size
            if width * height > max_pixels:
                raise RequestError(400, f"{name}: {width} x {height} pixels is over the limit of {max_pixels}")
            return np.asarray(image.convert("RGB"))
    except RequestError:
        raise
    except Exception as err:  # noqa: BLE001 - PIL raises many kinds on a damaged file
        raise RequestError(400, f"{name}: cannot be decoded as an image ({type(err).__name__})") from None


def check_image_array(array: np.ndarray, name: str, max_pixels: int) -> np.ndarray:
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or min(array.shape[:2]) < 1:
        raise RequestError(422, f"{name}: an image array must be (H, W, 3) uint8, got {array.shape} {array.dtype}")
    if array.shape[0] * array.shape[1] > max_pixels:
        raise RequestError(400, f"{name}: {array.shape[1]} x {array.shape[0]} pixels is over the limit of {max_pixels}")
    return array


def encode_image(image: np.ndarray) -> str:
    """An ``(H, W, 3)`` uint8 array as base64 PNG text."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """A numpy array as a msgpack map of raw bytes, dtype and shape."""
    array = np.ascontiguousarray(array)
    if array.dtype.name not in ARRAY_DTYPES:
        raise ValueError(f"dtype {array.dtype} is not sent; use one of {', '.join(ARRAY_DTYPES)}")
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": array.tobytes()}


def decode_array(data: Any, name: str) -> np.ndarray:
    """The array of an ``encode_array`` map, checked (dtype, shape, byte count)."""
    if not isinstance(data, dict) or set(data) != {"dtype", "shape", "data"}:
        raise RequestError(422, f"{name}: an array is a map of dtype, shape and data")
    dtype, shape, raw = data["dtype"], data["shape"], data["data"]
    if dtype not in ARRAY_DTYPES:
        raise RequestError(422, f"{name}.dtype: {dtype!r} is not one of {', '.join(ARRAY_DTYPES)}")
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**31
                                              for n in shape) or len(shape) > 4:
        raise RequestError(422, f"{name}.shape: {shape!r:.60} is not a list of up to 4 sizes below 2**31")
    if not isinstance(raw, bytes):
        raise RequestError(422, f"{name}.data: expected bytes, got {type(raw).__name__}")
    expected = math.prod(shape) * np.dtype(dtype).itemsize  # Python ints: no overflow
    if len(raw) != expected:
        raise RequestError(422, f"{name}.data: {len(raw)} bytes, and shape {shape} of {dtype} needs {expected}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def decode_state(data: Any, name: str = "state") -> np.ndarray | None:
    """A state vector from a JSON list of numbers or a msgpack array."""
    if data is None:
        return None
    if isinstance(data, dict):
        state = decode_array(data, name).astype(np.float64)
    elif isinstance(data, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in data):
        try:
            state = np.asarray(data, dtype=np.float64)
        except OverflowError:
            raise RequestError(422, f"{name}: a number is too large for a float") from None
    else:
        raise RequestError(422, f"{name}: expected a list of numbers, got {type(data).__name__}")
    if state.ndim != 1 or not np.isfinite(state).all():
        raise RequestError(422, f"{name}: must be a flat list of finite numbers")
    return state
