"""Cover thumbnails: sniff the real format, refuse bombs, re-encode at 150x150, store atomically."""

from __future__ import annotations

import io
import os
import secrets
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, ImageOps, UnidentifiedImageError

THUMBNAIL_SIZE = (150, 150)
# Format detected from the bytes -> extension of the stored file.
FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}


class ImageRejected(ValueError):
    """The upload is not an acceptable image; the message is safe to show the client."""


def make_thumbnail(stream, max_pixels: int) -> tuple[bytes, str]:
    """Return (encoded thumbnail, extension) for an uploaded file object.

    Only the header is read before the pixel count is checked, so a
    decompression bomb is refused without being decoded.
    """
    too_large = f"Cover image has too many pixels (at most {max_pixels:,})."
    try:
        with warnings.catch_warnings():
            # Our own limit below decides; Pillow's warning threshold is not ours.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream, formats=list(FORMATS))  # an MPO opens as JPEG
    except Image.DecompressionBombError:
        raise ImageRejected(too_large) from None
    except UnidentifiedImageError:
        raise ImageRejected("Cover image must be a JPEG, PNG, GIF or WebP image.") from None
    except OSError:
        raise ImageRejected("Cover image could not be read.") from None

    with image:
        # A multi-picture JPEG (phone HDR shots) is a JPEG whose first picture is the photo.
        fmt = "JPEG" if image.format == "MPO" else image.format
        width, height = image.size
        if width * height > max_pixels:
            raise ImageRejected(too_large)
        try:
            if fmt == "JPEG":
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: a fraction of the memory and time.
                image.draft("RGB", (THUMBNAIL_SIZE[0] * 2, THUMBNAIL_SIZE[1] * 2))
            image.seek(0)  # first frame of an animation
            with warnings.catch_warnings():
                # Pillow warns about corrupt EXIF; the metadata is dropped anyway.
                warnings.simplefilter("ignore")
                thumb = ImageOps.exif_transpose(image)
            if thumb.mode.startswith("I"):  # 16-bit greyscale PNG: scale, don't clip, to 8 bits
                thumb = thumb.convert("I").point(lambda value: value / 256).convert("L")
            thumb.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
            data = _encode(thumb, fmt)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise ImageRejected("Cover image is damaged or truncated.") from None
    return data, FORMATS[fmt]


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


def store(data: bytes, extension: str, folder: str) -> str:
    """Write the thumbnail under a fresh random name, atomically; return the name."""
    os.makedirs(folder, exist_ok=True)
    name = f"{secrets.token_hex(16)}.{extension}"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(folder, name))
    except BaseException:
        _unlink(tmp)
        raise
    return name


@contextmanager
def stored(thumbnail: tuple[bytes, str] | None, folder: str) -> Iterator[str | None]:
    """Store the thumbnail (if any) for the block; remove it again if the block fails,
    so a failed request leaves no orphan file."""
    name = store(*thumbnail, folder) if thumbnail is not None else None
    try:
        yield name
    except BaseException:
        remove(name, folder)
        raise


def remove(name: str | None, folder: str) -> None:
    if name:
        _unlink(os.path.join(folder, os.path.basename(name)))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
