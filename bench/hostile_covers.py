"""What a malformed cover costs a worker before it is refused (issue 17).

    .venv/bin/python bench/hostile_covers.py

Builds PNGs whose metadata chunks inflate far beyond their size, and one of
many tiny chunks, each at most the upload limit (MAX_UPLOAD_BYTES), and runs
each through save_image.open_cover then save_image.thumbnail in this process,
as a view does. Prints, per cover, its size, the time of one call, the peak
of Python allocations during a second call (tracemalloc: Pillow keeps inflated
text as Python objects; measured apart because tracing slows the call) and the
outcome: accepted, refused with the message, or the exception that escaped.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import time
import tracemalloc
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import save_image  # noqa: E402
from config import DEFAULTS  # noqa: E402

MiB = 2**20
SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(chunks: list[bytes]) -> bytes:
    """An 8x8 RGB PNG with `chunks` between its header and its pixels."""
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
    pixels = chunk(b"IDAT", zlib.compress(b"\x00" * 25 * 8)) + chunk(b"IEND", b"")
    return SIGNATURE + header + b"".join(chunks) + pixels


def repeated(one: bytes, limit: int) -> list[bytes]:
    """As many copies of a chunk as fit in an upload of `limit` bytes."""
    return [one] * ((limit - 200) // len(one))


def covers(limit: int) -> list[tuple[str, bytes]]:
    almost = zlib.compress(b"\x00" * (MiB - 1), 9)  # just under Pillow's 1 MiB per chunk
    bad_check = almost[:-1] + bytes([almost[-1] ^ 1])  # inflates fully, then fails its checksum
    return [
        ("65 zTXt of 1 MiB each", png([chunk(b"zTXt", b"k%d\0\0" % n + almost) for n in range(65)])),
        ("iCCP of 1 MiB, repeated", png(repeated(chunk(b"iCCP", b"icc\0\0" + almost), limit))),
        ("zTXt of 1 MiB failing its checksum, repeated", png(repeated(chunk(b"zTXt", b"k\0\0" + bad_check), limit))),
        ("empty private chunks, repeated", png(repeated(chunk(b"prVt", b""), limit))),
    ]


def run(data: bytes) -> str:
    max_pixels, budget = int(DEFAULTS["MAX_IMAGE_PIXELS"]), int(DEFAULTS["MAX_IMAGE_DECODE_BYTES"])
    try:
        save_image.thumbnail(save_image.open_cover(io.BytesIO(data), max_pixels, budget))
    except save_image.ImageRejected as exc:
        return f"refused: {exc}"
    except Exception as exc:  # what this measures: anything that escapes would be a 500
        return f"escaped: {type(exc).__name__}"
    return "accepted"


def measure(data: bytes) -> tuple[str, float, float]:
    """(outcome, seconds, peak MiB of Python allocations)."""
    started = time.perf_counter()
    outcome = run(data)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    run(data)
    peak = tracemalloc.get_traced_memory()[1] / MiB
    tracemalloc.stop()
    return outcome, seconds, peak


def main() -> int:
    limit = int(DEFAULTS["MAX_UPLOAD_BYTES"])
    print(f"hostile covers: MAX_UPLOAD_BYTES={limit / MiB:g} MiB")
    for label, data in covers(limit):
        outcome, seconds, peak = measure(data)
        print(f"  {label:<46} {len(data) / 1000:>7,.0f} KB  {seconds * 1000:>7,.0f} ms  {peak:>6.1f} MiB  {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
