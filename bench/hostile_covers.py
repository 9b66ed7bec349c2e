"""What a malformed cover costs a worker before it is refused (issue 17).

    .venv/bin/python bench/hostile_covers.py      # about 10 s of CPU (a minute before issue 17)

Builds PNGs whose metadata chunks inflate far beyond their size, the PNG whose
metadata still accepted inflates the most, and PNG and JPEG files of many tiny
chunks or markers, each at most the upload limit (MAX_UPLOAD_BYTES), and runs
each through save_image.open_cover then save_image.thumbnail in this process,
as a view does. Prints, per cover, its size; the CPU time of one call (not wall
time: the machine may be shared); the peak of Python allocations during a
second call (tracemalloc: Pillow keeps inflated text as Python objects;
measured apart because tracing slows the call); and the outcome: accepted,
refused with the message, or the exception that escaped.
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

from PIL import Image  # noqa: E402

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


def tiny_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "JPEG")
    return out.getvalue()


def covers(limit: int) -> list[tuple[str, bytes]]:
    almost = zlib.compress(b"\x00" * (MiB - 1), 9)  # just under Pillow's 1 MiB per chunk
    bad_check = almost[:-1] + bytes([almost[-1] ^ 1])  # inflates fully, then fails its checksum
    quarter = zlib.compress(b"\x00" * (256 * 1024 - 1), 9)  # just under save_image's limit
    jpeg = tiny_jpeg()
    return [
        ("65 zTXt of 1 MiB each", png([chunk(b"zTXt", b"k%d\0\0" % n + almost) for n in range(65)])),
        ("iCCP of 1 MiB, repeated", png(repeated(chunk(b"iCCP", b"icc\0\0" + almost), limit))),
        ("zTXt of 1 MiB failing its checksum, repeated", png(repeated(chunk(b"zTXt", b"k\0\0" + bad_check), limit))),
        ("16 iCCP of 256 KiB (the most accepted)", png([chunk(b"iCCP", b"icc\0\0" + quarter)] * 16)),
        ("empty private chunks, repeated", png(repeated(chunk(b"prVt", b""), limit))),
        ("JPEG of empty comments, repeated", jpeg[:2] + b"".join(repeated(b"\xff\xfe\x00\x02", limit)) + jpeg[2:]),
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
    """(outcome, CPU seconds, peak MiB of Python allocations)."""
    started = time.process_time()
    outcome = run(data)
    seconds = time.process_time() - started
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
        cost = f"{seconds * 1000:>7,.0f} ms CPU  {peak:>6.1f} MiB"
        print(f"  {label:<46} {len(data) / 1000:>7,.0f} KB  {cost}  {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
