"""Cover thumbnails: sniff the real format, refuse bombs, re-encode at 150x150 (cover_storage.py keeps them)."""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator
from typing import IO

from PIL import Image, ImageMode, ImageOps, PngImagePlugin, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile

THUMBNAIL_SIZE = (150, 150)
# Format detected from the bytes -> extension of the stored file.
FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}
UNREADABLE = "Cover image could not be read."

# Covers keep no text and no ICC profile, yet Pillow inflates both while it reads a PNG's
# header. Its limits (1 MiB a chunk, 64 MiB of text in all) are module globals, lowered here
# for every PNG this process opens: covers are the only images the app reads. ICC profiles
# share the per-chunk limit, which stays far above an RGB profile's size (sRGB: 3 KB).
PngImagePlugin.MAX_TEXT_CHUNK = 256 * 1024
PngImagePlugin.MAX_TEXT_MEMORY = 1024 * 1024
# Pillow's total counts neither ICC profiles nor text that fails its checksum once inflated:
# repeated, either made a 5 MiB upload inflate 5 GiB. Counted from the chunk headers, the
# compressed metadata of one cover inflates at most 16 x 256 KiB.
MAX_COMPRESSED_METADATA = 16
COMPRESSED_METADATA = {b"iCCP", b"zTXt", b"iTXt"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageRejected(ValueError):
    """The upload is not an acceptable image; the message is safe to show the client."""


def bytes_per_pixel(mode: str) -> int:
    """What Pillow keeps in memory per pixel: 4 for any multi-band mode (RGB included)."""
    descriptor = ImageMode.getmode(mode)
    return 4 if len(descriptor.bands) > 1 else int(descriptor.typestr[-1])


# Full-size buffers that exist at once while a cover of this format is decoded and
# shrunk: Pillow's WebP decoder holds the frame in libwebp's buffer and two copies, and
# resizing an image with alpha premultiplies a full-size copy first.
WEBP_COPIES = 4
ALPHA_COPIES = 2


def decode_cost(image: Image.Image, fmt: str) -> int | None:
    """Peak bytes of full-size buffers needed to thumbnail this image, from its header;
    None for a baseline JPEG, which libjpeg decodes at reduced scale."""
    pixels = image.width * image.height
    if fmt == "JPEG":
        if not image.info.get("progressive"):
            return None
        assert isinstance(image, JpegImageFile)  # the JPEG plugin opened it (an MPO's is a subclass)
        # A progressive JPEG is decoded at reduced scale too, but only after libjpeg has
        # gathered every scan: 2 bytes per DCT coefficient of each component, at full size.
        h_max = max(layer[1] for layer in image.layer)
        v_max = max(layer[2] for layer in image.layer)
        return int(sum(pixels * 2 * layer[1] * layer[2] / (h_max * v_max) for layer in image.layer))
    decoded = pixels * bytes_per_pixel(image.mode)
    if fmt == "WEBP":
        return decoded * WEBP_COPIES
    return decoded * (ALPHA_COPIES if image.mode in ("LA", "RGBA") else 1)


def limits_message(max_pixels: int, budget: int) -> str:
    """The limits as a client reads them in the 400."""

    def megapixels(bytes_per_pixel: int) -> str:
        return f"{min(max_pixels, budget // bytes_per_pixel) / 1e6:.1f}"

    return (
        f"Limits: JPEG {max_pixels:,} pixels (progressive: {megapixels(6)} megapixels, more with chroma "
        f"subsampling); PNG and GIF {megapixels(4)} megapixels in colour, {megapixels(4 * ALPHA_COPIES)} with "
        f"transparency, {megapixels(1)} in greyscale or a palette; WebP {megapixels(4 * WEBP_COPIES)} megapixels."
    )


def _check_budget(image: Image.Image, fmt: str, max_pixels: int, budget: int) -> None:
    """Refuse from the header alone what would cost too much to decode."""
    cost = decode_cost(image, fmt)
    if image.width * image.height > max_pixels or (cost is not None and cost > budget):
        raise ImageRejected("Cover image is too large to process. " + limits_message(max_pixels, budget))


def _sampling_valid(image: Image.Image) -> bool:
    """JPEG sampling factors are 1 to 4 (libjpeg refuses others); decode_cost divides by them."""
    assert isinstance(image, JpegImageFile)  # the JPEG plugin opened it (an MPO's is a subclass)
    return bool(image.layer) and all(1 <= layer[1] <= 4 and 1 <= layer[2] <= 4 for layer in image.layer)


def _png_chunk_types(stream: IO[bytes]) -> Iterator[bytes]:
    """The type of each chunk after a PNG's signature, read from the 8-byte chunk headers
    (the data is skipped), up to IEND or the end of the file."""
    while len(header := stream.read(8)) == 8:
        length, kind = struct.unpack(">I4s", header)
        yield kind
        if kind == b"IEND":
            return
        stream.seek(length + 4, io.SEEK_CUR)  # the data and its checksum


def _check_png_metadata(stream: IO[bytes]) -> None:
    """Refuse a PNG with more compressed metadata chunks than MAX_COMPRESSED_METADATA, before
    Pillow inflates any, wherever they are (Pillow reads those after the pixels as it decodes)."""
    try:
        if stream.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            return
        compressed = 0
        for kind in _png_chunk_types(stream):
            compressed += kind in COMPRESSED_METADATA
            if compressed > MAX_COMPRESSED_METADATA:
                raise ImageRejected(UNREADABLE)
    finally:
        stream.seek(0)


def _open(stream: IO[bytes], max_pixels: int, budget: int) -> Image.Image:
    """Image.open, with every way it fails on a malformed file turned into ImageRejected."""
    try:
        with warnings.catch_warnings():
            # Our own limits decide; Pillow's warning threshold is not ours. Its warnings about
            # a malformed file it can still read concern the sender, who gets the answer.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            return Image.open(stream, formats=list(FORMATS))  # an MPO opens as JPEG
    except Image.DecompressionBombError:
        raise ImageRejected("Cover image is too large to process. " + limits_message(max_pixels, budget)) from None
    except UnidentifiedImageError:
        raise ImageRejected("Cover image must be a JPEG, PNG, GIF or WebP image.") from None
    except (OSError, ValueError):
        # ValueError: a chunk too short for its kind (IHDR, acTL, fcTL), text over the limits.
        raise ImageRejected(UNREADABLE) from None


def open_cover(stream: IO[bytes], max_pixels: int, budget: int) -> Image.Image:
    """The upload opened from its header alone and checked against `max_pixels` and the
    decoding `budget` (bytes): cheap, so a view can do it before anything else and decode
    later. A decompression bomb is refused here without being decoded."""
    _check_png_metadata(stream)
    image = _open(stream, max_pixels, budget)
    try:
        fmt = _format(image)
        if fmt == "JPEG" and not _sampling_valid(image):
            raise ImageRejected(UNREADABLE)
        _check_budget(image, fmt, max_pixels, budget)
    except ImageRejected:
        image.close()
        raise
    return image


def thumbnail(image: Image.Image) -> tuple[bytes, str]:
    """Decode a cover from open_cover and return (encoded thumbnail, extension); closes it."""
    with image:
        fmt = _format(image)
        try:
            return _encode(_shrink(image, fmt), fmt), FORMATS[fmt]
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise ImageRejected("Cover image is damaged or truncated.") from None


def make_thumbnail(stream: IO[bytes], max_pixels: int, budget: int) -> tuple[bytes, str]:
    """open_cover and thumbnail in one go."""
    return thumbnail(open_cover(stream, max_pixels, budget))


def _format(image: Image.Image) -> str:
    # A multi-picture JPEG (phone HDR shots) is a JPEG whose first picture is the photo.
    assert image.format is not None  # opened from a file by one of the FORMATS plugins
    return "JPEG" if image.format == "MPO" else image.format


def _shrink(image: Image.Image, fmt: str) -> Image.Image:
    """The first frame, at most 150x150, upright; only the decode is full-size."""
    if fmt == "JPEG":
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: a fraction of the memory and time.
        image.draft("RGB", (THUMBNAIL_SIZE[0] * 2, THUMBNAIL_SIZE[1] * 2))
    image.seek(0)  # first frame of an animation
    # Pillow's reducing step has no 16-bit greyscale; those resize in one pass.
    gap = None if image.mode.startswith("I;16") else 2.0
    image.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS, reducing_gap=gap)
    with warnings.catch_warnings():
        # Pillow warns about corrupt EXIF; the metadata is dropped anyway.
        warnings.simplefilter("ignore")
        # Upright after the resize: the orientation tag stays with the image, and
        # turning the full-size picture would copy it.
        thumb = ImageOps.exif_transpose(image)
    if thumb.mode.startswith("I"):  # 16-bit greyscale PNG: scale, don't clip, to 8 bits
        thumb = thumb.convert("I").point(lambda value: value / 256).convert("L")
    return thumb


def _encode(image: Image.Image, fmt: str) -> bytes:
    """Re-encode pixels only: EXIF, XMP, ICC profiles and comments are left behind."""
    if fmt == "JPEG":
        image = image.convert("RGB")
        options = {"quality": 85, "optimize": True}
    elif fmt == "PNG":
        keep = ("1", "L", "LA", "P", "RGB", "RGBA")
        image = image.convert(image.mode if image.mode in keep else "RGBA")
        options = {"optimize": True}
    elif fmt == "GIF":
        image = image.convert(image.mode if image.mode in ("P", "L") else "P")
        options = {}
    else:
        image = image.convert("RGBA" if "A" in image.mode or image.mode == "P" else "RGB")
        options = {"quality": 85}
    # convert() always returns a new image, so its info can be emptied safely.
    image.info = {key: value for key, value in image.info.items() if key == "transparency"}
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()
