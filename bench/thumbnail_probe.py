"""Time and peak memory of save_image.make_thumbnail on one image, in a fresh process.

    .venv/bin/python bench/thumbnail_probe.py IMAGE [RUNS]

Prints one JSON line (with "rejected" and the message when the limits refuse it).
Peak memory is what the thumbnailer adds above the process's resident size just
before the call: the kernel's high-water mark (VmHWM) is reset through
/proc/self/clear_refs, so Pillow's C allocations count
too (tracemalloc would only see Python objects; its peak is reported beside).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import save_image  # noqa: E402

try:
    from config import DEFAULTS  # noqa: E402

    MAX_PIXELS = int(DEFAULTS.get("MAX_IMAGE_PIXELS", 50_000_000))
    DECODE_BUDGET = int(DEFAULTS.get("MAX_IMAGE_DECODE_BYTES", 96 * 2**20))
except Exception:  # the probe must not depend on app internals staying put
    MAX_PIXELS, DECODE_BUDGET = 50_000_000, 96 * 2**20


def status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def thumbnail(path: str):
    # An open file, as a streamed upload would be; the call is whatever the app does with it.
    with open(path, "rb") as stream:
        return save_image.make_thumbnail(stream, MAX_PIXELS, DECODE_BUDGET)


def main() -> None:
    path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3

    # 1. Memory, on a cold first call.
    peak_reset = reset_peak()
    rss_before = status_kib("VmRSS")
    started = time.perf_counter()
    try:
        data, extension = thumbnail(path)
    except save_image.ImageRejected as exc:  # refused by the limits: what that cost is the answer
        print(
            json.dumps(
                {
                    "file_bytes": os.path.getsize(path),
                    "rejected": str(exc),
                    "cold_seconds": time.perf_counter() - started,
                    "peak_added_kib": status_kib("VmHWM") - rss_before if peak_reset else None,
                    "peak_reset_worked": peak_reset,
                }
            )
        )
        return
    cold_seconds = time.perf_counter() - started
    hwm = status_kib("VmHWM")

    # 2. Time, on warm calls.
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        thumbnail(path)
        times.append(time.perf_counter() - started)

    # 3. Python-level allocations (slows the call down, so measured apart).
    tracemalloc.start()
    thumbnail(path)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(
        json.dumps(
            {
                "file_bytes": os.path.getsize(path),
                "thumbnail_bytes": len(data),
                "thumbnail_extension": extension,
                "cold_seconds": cold_seconds,
                "median_seconds": statistics.median(times),
                "runs": runs,
                "rss_before_kib": rss_before,
                "peak_rss_kib": hwm,
                "peak_added_kib": hwm - rss_before if peak_reset else None,
                "peak_reset_worked": peak_reset,
                "tracemalloc_peak_bytes": traced_peak,
            }
        )
    )


if __name__ == "__main__":
    main()
