"""A limit on the pixels of encoded images in requests, read from their headers before decoding.

A few hundred kilobytes of PNG or GIF can describe an image of hundreds of megapixels, which
TensorFlow's decoders would allocate in full.  Every binary string a request feeds (tensor values
and tf.Example bytes features) is looked at here: if it starts like a PNG, JPEG, GIF, BMP or WebP
file, its width and height (times its frames, for GIF) are read from the header and the request is
refused when they exceed ``--max_image_pixels``.  Strings that are not images pass untouched.
"""
import struct
from typing import Iterable, Optional, Tuple

from images.serving.errors import invalid

DEFAULT_MAX_IMAGE_PIXELS = 25_000_000

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _png(data):
    if len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24]) + (1,)
    return None


def _jpeg(data):
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height, 1
        if length < 2:
            return None
        i += 2 + length
    return None


def _gif_frames(data, start):
    """Counts image descriptors by walking GIF blocks (animations decode every frame)."""
    i, frames = start, 0
    n = len(data)

    def skip_sub_blocks(j):
        while j < n:
            size = data[j]
            j += 1 + size
            if size == 0:
                return j
        return n

    while i < n:
        block = data[i]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            i = skip_sub_blocks(i + 2)
        elif block == 0x2C:  # image descriptor
            frames += 1
            if i + 10 > n:
                break
            packed = data[i + 9]
            i += 10
            if packed & 0x80:
                i += 3 * (2 << (packed & 7))
            i = skip_sub_blocks(i + 1)  # LZW minimum code size, then image data
        else:
            break
    return max(frames, 1)


def _gif(data):
    if len(data) < 13:
        return None
    width, height, packed = struct.unpack("<HHB", data[6:11])
    start = 13 + (3 * (2 << (packed & 7)) if packed & 0x80 else 0)
    return width, height, _gif_frames(data, start)


def _bmp(data):
    if len(data) < 26:
        return None
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height), 1


def _webp(data):
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height, 1
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF), 1
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF, 1
    return None


def image_size(data: bytes) -> Optional[Tuple[str, int, int, int]]:
    """``(format, width, height, frames)`` from an encoded image's header, or None."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < 12:
        return None
    head = bytes(data[:16])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        fmt, size = "PNG", _png(data)
    elif head.startswith(b"\xff\xd8\xff"):
        fmt, size = "JPEG", _jpeg(data)
    elif head[:6] in (b"GIF87a", b"GIF89a"):
        fmt, size = "GIF", _gif(data)
    elif head.startswith(b"BM"):
        fmt, size = "BMP", _bmp(data)
    elif head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        fmt, size = "WebP", _webp(data)
    else:
        return None
    return None if size is None else (fmt,) + tuple(size)


def check_images(values: Iterable, max_pixels: int, where: str = "the request"):
    """Refuses encoded images larger than ``max_pixels`` (0 or None: no limit).

    Raises:
      ServingError: ``INVALID_ARGUMENT`` naming the image's size and the limit.
    """
    if not max_pixels:
        return
    for value in values:
        found = image_size(value) if isinstance(value, (bytes, bytearray)) else None
        if found is None:
            continue
        fmt, width, height, frames = found
        pixels = width * height * frames
        if pixels > max_pixels:
            frames_text = " in %d frames" % frames if frames > 1 else ""
            raise invalid("%s holds a %s image of %dx%d pixels%s (%d pixels), more than the "
                          "server's limit of %d (--max_image_pixels); send a smaller image"
                          % (where, fmt, width, height, frames_text, pixels, max_pixels))
