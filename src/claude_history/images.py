"""Image sizes and image token costs, read from the image bytes themselves.

Token rule (claude-api-facts.md, "Tokens"): an image costs ceil(width/28) * ceil(height/28) tokens after
it is scaled down so that its long edge is at most 1568 px and it costs at most 1,568 tokens; Claude 4.7+
and 5.x models allow 2576 px and 4,784 tokens. Pure functions: the simulator and the token estimator share
them.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct

from claude_history.models import model_info

__all__ = [
    "HIGH_RES_LIMITS",
    "STANDARD_LIMITS",
    "ImageLimits",
    "decode_base64",
    "image_limits",
    "image_media_type",
    "image_size",
    "image_tokens",
]

# (long edge cap in px, token cap) per generation; claude-api-facts.md "Tokens".
ImageLimits = tuple[int, int]
STANDARD_LIMITS: ImageLimits = (1568, 1568)
HIGH_RES_LIMITS: ImageLimits = (2576, 4784)
_PATCH = 28


def image_limits(model: str) -> ImageLimits:
    """Limits for a model: the high-resolution ones for Claude 4.7+ and 5.x; unknown models get the standard."""
    info = model_info(model)
    if info is not None and info.high_res_images:
        return HIGH_RES_LIMITS
    return STANDARD_LIMITS


def image_tokens(width: int, height: int, *, long_edge_cap: int = 1568, token_cap: int | None = None) -> int:
    """Tokens of a ``width`` x ``height`` image after the API's downscaling.

    ``token_cap`` defaults to the cap that goes with ``long_edge_cap`` (1,568 for 1568 px, 4,784 for 2576 px).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if token_cap is None:
        token_cap = HIGH_RES_LIMITS[1] if long_edge_cap >= HIGH_RES_LIMITS[0] else STANDARD_LIMITS[1]
    w, h = float(width), float(height)
    long_edge = max(w, h)
    if long_edge > long_edge_cap:
        scale = long_edge_cap / long_edge
        w, h = w * scale, h * scale
    tokens = _patches(w, h)
    if tokens > token_cap:
        # Scale the area down to the token budget, then step down until the rounded-up patch grid fits.
        scale = math.sqrt(token_cap * _PATCH * _PATCH / (w * h))
        while True:
            tokens = _patches(w * scale, h * scale)
            if tokens <= token_cap:
                break
            scale *= 0.995
    return tokens


def _patches(w: float, h: float) -> int:
    return max(1, math.ceil(round(w, 6) / _PATCH)) * max(1, math.ceil(round(h, 6) / _PATCH))


def decode_base64(data: str) -> bytes:
    """Strict base64 decoding (whitespace tolerated) that raises ``ValueError`` on bad input."""
    try:
        return base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid base64 data: {exc}") from exc


def image_media_type(data: bytes) -> str | None:
    """The media type the bytes really are (png, jpeg, gif, webp), or ``None``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, JPEG, GIF or WebP image from its header; ``ValueError`` if it cannot be
    read."""
    kind = image_media_type(data)
    try:
        if kind == "image/png":
            return _png_size(data)
        if kind == "image/gif":
            w, h = struct.unpack("<HH", data[6:10])
            return _checked(w, h)
        if kind == "image/jpeg":
            return _jpeg_size(data)
        if kind == "image/webp":
            return _webp_size(data)
    except struct.error as exc:
        raise ValueError(f"truncated {kind} image") from exc
    raise ValueError("not a PNG, JPEG, GIF or WebP image")


def _checked(w: int, h: int) -> tuple[int, int]:
    if w <= 0 or h <= 0:
        raise ValueError(f"image has an invalid size {w}x{h}")
    return w, h


def _png_size(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise ValueError("PNG without IHDR chunk")
    w, h = struct.unpack(">II", data[16:24])
    return _checked(w, h)


# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    n = len(data)
    while i < n:
        if data[i] != 0xFF:
            raise ValueError("corrupt JPEG marker stream")
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            continue
        if marker == 0xD9:
            break
        (length,) = struct.unpack(">H", data[i : i + 2])
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 3 : i + 7])
            return _checked(w, h)
        i += length
    raise ValueError("JPEG without a start-of-frame marker")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ValueError("corrupt WebP VP8 frame")
        w, h = struct.unpack("<HH", data[26:30])
        return _checked(w & 0x3FFF, h & 0x3FFF)
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ValueError("corrupt WebP VP8L header")
        (bits,) = struct.unpack("<I", data[21:25])
        return _checked((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return _checked(w, h)
    raise ValueError("unknown WebP chunk")
