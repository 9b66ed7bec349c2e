"""Peak memory of one worker thumbnailing the worst cover each format may send.

    .venv/bin/python bench/image_memory.py [--json PATH]

With the default limits (MAX_IMAGE_PIXELS, MAX_IMAGE_DECODE_BYTES in config.DEFAULTS),
writes the largest accepted single-colour cover of each format and mode that costs
the most per pixel (a single colour keeps each file small, far under the upload
limit), plus the 7,070 x 7,070 RGBA PNG that used to cost half a gigabyte, and runs
each through save_image.make_thumbnail in a fresh process (bench/thumbnail_probe.py).
Prints, per cover, whether it was accepted and the peak resident memory the call
added; the target is under 150 MiB for every accepted cover.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, ROOT)

from PIL import Image  # noqa: E402

from config import DEFAULTS  # noqa: E402
from save_image import ALPHA_COPIES, WEBP_COPIES  # noqa: E402

TARGET_MIB = 150
COLOUR = (90, 60, 30, 255)


def side(pixels: int) -> int:
    return math.isqrt(pixels)


def covers(max_pixels: int, budget: int) -> list[tuple[str, str, int, str, dict]]:
    """(label, mode, side, format, save options): the worst accepted cover per format, and the old bomb."""
    most = side(max_pixels)
    return [
        ("JPEG baseline CMYK at the pixel limit", "CMYK", most, "JPEG", {}),
        (
            "JPEG progressive CMYK 4:4:4 at the budget",
            "CMYK",
            side(budget // 8),
            "JPEG",
            {"progressive": True, "subsampling": 0},
        ),
        ("PNG RGBA at the budget", "RGBA", side(budget // (4 * ALPHA_COPIES)), "PNG", {}),
        ("PNG RGB at the budget", "RGB", side(budget // 4), "PNG", {}),
        ("PNG 16-bit grey at the pixel limit", "I;16", side(min(max_pixels, budget // 2)), "PNG", {}),
        ("GIF palette at the pixel limit", "P", side(min(max_pixels, budget)), "GIF", {}),
        ("WebP RGBA at the budget", "RGBA", side(budget // (4 * WEBP_COPIES)), "WEBP", {"lossless": True}),
        ("PNG RGBA 7070x7070 (the old bomb)", "RGBA", 7070, "PNG", {}),
    ]


def probe(path: str) -> dict:
    result = subprocess.run(
        [sys.executable, os.path.join(BENCH, "thumbnail_probe.py"), path, "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    max_pixels, budget = int(DEFAULTS["MAX_IMAGE_PIXELS"]), int(DEFAULTS["MAX_IMAGE_DECODE_BYTES"])
    print(f"image memory: MAX_IMAGE_PIXELS={max_pixels:,}, MAX_IMAGE_DECODE_BYTES={budget / 2**20:g} MiB")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for label, mode, length, fmt, options in covers(max_pixels, budget):
            path = os.path.join(folder, "cover")
            bands = Image.getmodebands(mode)
            colour = COLOUR[:bands] if bands > 1 else 7
            Image.new(mode, (length, length), colour).save(path, fmt, **options)
            outcome = probe(path)
            entry = {"cover": label, "width": length, "height": length, "file_bytes": os.path.getsize(path), **outcome}
            results.append(entry)
            print(describe(entry), flush=True)
    accepted = [r["peak_added_kib"] / 1024 for r in results if "rejected" not in r and r.get("peak_added_kib")]
    worst = max(accepted, default=0)
    verdict = "within" if worst < TARGET_MIB else "OVER"
    print(f"image memory: worst accepted cover +{worst:.1f} MiB ({verdict} the {TARGET_MIB} MiB target)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"covers": results, "worst_accepted_mib": worst, "target_mib": TARGET_MIB}, handle, indent=2)
    return 0 if worst < TARGET_MIB else 1


def describe(entry: dict) -> str:
    head = f"  {entry['cover']:<44} {entry['width']}x{entry['height']}, {entry['file_bytes'] / 1000:,.0f} KB: "
    if "error" in entry:
        return head + f"probe failed: {entry['error']}"
    peak = entry.get("peak_added_kib")
    memory = f"+{peak / 1024:.1f} MiB" if peak is not None else "peak unknown (could not reset VmHWM)"
    seconds = entry["cold_seconds"] * 1000
    if "rejected" in entry:
        return head + f"refused in {seconds:.0f} ms, {memory}"
    return head + f"accepted, {seconds:.0f} ms, peak {memory}"


if __name__ == "__main__":
    sys.exit(main())
