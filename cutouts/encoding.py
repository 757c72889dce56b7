"""The stored cutout's file: a PNG whose rows are filtered with numpy and deflated in bands."""

import logging
import struct
import zlib

import numpy as np
from PIL import Image

try:
    # ISA-L's deflate writes the same zlib format as zlib, at a quarter of its level-1 time and
    # for files 5-7 % smaller (bench/README.md, `cutout_encode.py`).
    from isal import isal_zlib as _deflate

    DEFLATE = "isal"
except ImportError:  # A checkout installed before isal was a dependency (pyproject.toml).
    _deflate = zlib
    DEFLATE = "zlib"
    logging.getLogger(__name__).warning(
        "isal is not installed: cutouts are deflated with zlib, four times slower (pip install isal).")

_LEVEL = 1
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_UP = 2  # PNG's filter type "Up": each byte minus the byte above it.
# Rows go through numpy and the compressor this many bytes at a time: the copies stay this size,
# not the cutout's (40 MB of RGBA at the 10 MP cap, and as much again filtered), and in the CPU's
# cache: bands of 1 MB are faster than 16 MB ones.
_BAND_BYTES = 1 << 20


def cutout_png(image: Image.Image) -> bytes:
    """`image` (RGBA) as a PNG file: 8 bits a channel, every row filtered with Up, deflated fast.

    Pillow's PNG encoder tries four filters on every row and keeps the one of least sum: two
    thirds of its time on a large cutout, and its deflate is zlib's. One filter for all rows, Up,
    does nearly as well on a cutout (its background rows are zeros, and a photo's rows predict
    each other), and numpy applies it in one pass.
    """
    if image.mode != "RGBA":
        raise ValueError(f"cutout_png encodes RGBA images, not {image.mode}.")
    width, height = image.size
    stride = width * 4
    band_rows = max(1, _BAND_BYTES // stride)
    compressor = _deflate.compressobj(_LEVEL)
    chunks = [_SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))]
    above = np.zeros(stride, np.uint8)  # Up filters the first row against a row of zeros.
    for top in range(0, height, band_rows):
        band = np.asarray(image.crop((0, top, width, min(top + band_rows, height)))).reshape(-1, stride)
        filtered = np.empty((band.shape[0], 1 + stride), np.uint8)
        filtered[:, 0] = _UP
        np.subtract(band[0], above, out=filtered[0, 1:])  # uint8: modulo 256, as PNG's filters are.
        np.subtract(band[1:], band[:-1], out=filtered[1:, 1:])
        above = band[-1]
        if data := compressor.compress(filtered):
            chunks.append(_chunk(b"IDAT", data))
    chunks += [_chunk(b"IDAT", compressor.flush()), _chunk(b"IEND", b"")]
    return b"".join(chunks)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))
