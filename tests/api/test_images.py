"""Cover images over HTTP: real formats, thumbnails, metadata, limits, bombs and the stored files,
with covers in a folder and in GridFS."""

from __future__ import annotations

import functools
import io
import os
import random
import re
import resource
import struct
import time
import zlib
from datetime import UTC, datetime
from urllib.parse import urlsplit

import gridfs
import pytest
from PIL import Image, PngImagePlugin

from database.client import state as database_state
from helpers import (
    BOOK_NOT_FOUND,
    COVER_NOT_FOUND,
    DUPLICATE_TITLE,
    INVALID_FIELDS,
    RATE_LIMITED,
    TOO_LARGE,
    Fragment,
    assert_429,
    assert_envelope,
    book_form,
    encode,
    image_bytes,
    limits,
)

# Pillow format -> (extension of the stored file, Content-Type it is served with)
FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "GIF": ("gif", "image/gif"),
    "WEBP": ("webp", "image/webp"),
}
NAME = re.compile(r"^[0-9a-f]{32}\.(jpg|png|gif|webp)$")
MARKER = "Marker-7f3a9c"  # planted in metadata; must not survive into a thumbnail
NOT_AN_IMAGE = "Cover image must be a JPEG, PNG, GIF or WebP image."
UNREADABLE = "Cover image could not be read."
TRUNCATED = "Cover image is damaged or truncated."
COVER_REQUIRED = "A cover image file is required."
# The 400 for a cover too large to decode states every format's limit: with the defaults,
# with MAX_IMAGE_PIXELS=1,000,000, and with MAX_IMAGE_DECODE_BYTES=4 MiB.
TOO_LARGE_TO_DECODE = (
    "Cover image is too large to process. Limits: JPEG 50,000,000 pixels (progressive: 16.8 megapixels, more "
    "with chroma subsampling); PNG and GIF 25.2 megapixels in colour, 12.6 with transparency, 50.0 in greyscale "
    "or a palette; WebP 6.3 megapixels."
)
TOO_LARGE_AT_1_MEGAPIXEL = (
    "Cover image is too large to process. Limits: JPEG 1,000,000 pixels (progressive: 1.0 megapixels, more "
    "with chroma subsampling); PNG and GIF 1.0 megapixels in colour, 1.0 with transparency, 1.0 in greyscale "
    "or a palette; WebP 1.0 megapixels."
)
TOO_LARGE_AT_4_MIB = (
    "Cover image is too large to process. Limits: JPEG 50,000,000 pixels (progressive: 0.7 megapixels, more "
    "with chroma subsampling); PNG and GIF 1.0 megapixels in colour, 0.5 with transparency, 4.2 in greyscale "
    "or a palette; WebP 0.3 megapixels."
)
CATEGORY_UNKNOWN = (
    "Category must be one of: romance, poetry, politics, picture book, science, fantasy, horror, thriller."
)


# --- helpers --------------------------------------------------------------------


def gradient(size=(600, 300)):
    """An RGB picture with detail, so that encoders produce realistic, non-trivial files."""
    return Image.merge(
        "RGB",
        [
            Image.linear_gradient("L").resize(size),
            Image.radial_gradient("L").resize(size),
            Image.linear_gradient("L").rotate(90).resize(size),
        ],
    )


def noise_png(size=(200, 200), seed=0):
    """A PNG of random pixels: it does not compress, so its file size is about 3 bytes per pixel."""
    pixels = random.Random(seed).randbytes(size[0] * size[1] * 3)
    return encode(Image.frombytes("RGB", size, pixels), "PNG")


def post_cover(client, headers, cover, filename="cover.png", content_type=None, **fields):
    form = book_form(cover=False, **fields)
    form["cover_image"] = (
        (io.BytesIO(cover), filename) if content_type is None else (io.BytesIO(cover), filename, content_type)
    )
    return client.post("/books/", data=form, headers=headers)


def put_cover(client, headers, book, cover, filename="new.png", **fields):
    form = {"cover_image": (io.BytesIO(cover), filename), **fields}
    return client.put(f"/books/{book['id']}", data=form, headers=headers)


def fetch(client, url):
    """(status, mimetype, bytes) of a GET, with the streamed response closed."""
    with client.get(url) as response:
        return response.status_code, response.mimetype, response.get_data()


def thumbnail_of(client, book):
    """The served thumbnail of a book, opened with Pillow and fully loaded."""
    status, mimetype, data = fetch(client, book["image_url"])
    assert status == 200
    image = Image.open(io.BytesIO(data))
    image.load()
    return image, mimetype, data


def file_name(book):
    return urlsplit(book["image_url"]).path.rsplit("/", 1)[-1]


def stored(app):
    """Every cover kept in either storage: the upload folder (hidden temporaries included)
    and the GridFS bucket."""
    folder = app.config["UPLOAD_FOLDER"]
    files = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    return files | {doc["_id"] for doc in database_state(app).db["covers.files"].find({}, {"_id": 1})}


def total_books(client, headers):
    response = client.get("/books/", headers=headers)
    assert_envelope(response, 200, "Books.")
    return response.get_json()["meta"]["total"]


def created_book(response):
    """The book of a 201."""
    return assert_envelope(response, 201, "Book created.")


def updated_book(response):
    """The book of a 200 to an update."""
    return assert_envelope(response, 200, "Book updated.")


def get_book(client, headers, book):
    return assert_envelope(client.get(f"/books/{book['id']}", headers=headers), 200, "Book.")


def cover_status(client, url) -> int:
    """200 for a cover that is served; a missing one must be the 404 envelope."""
    with client.get(url) as response:
        if response.status_code != 200:
            assert_envelope(response, 404, COVER_NOT_FOUND, "Not Found")
        return response.status_code


# --- formats ----------------------------------------------------------------------


@pytest.mark.each_cover_storage
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_cover_in_each_allowed_format_is_stored_in_that_format(client, auth, app, fmt):
    extension, mimetype = FORMATS[fmt]
    book = created_book(post_cover(client, auth.headers(), encode(gradient(), fmt), f"cover.{extension}"))
    assert file_name(book).endswith(f".{extension}")
    image, served_type, _ = thumbnail_of(client, book)
    assert image.format == fmt
    assert served_type == mimetype
    assert stored(app) == {file_name(book)}


@pytest.mark.parametrize(
    ("fmt", "filename", "content_type"),
    [
        ("PNG", "cover.jpg", None),
        ("PNG", "cover.jpg", "image/jpeg"),
        ("JPEG", "cover.jpg", "text/plain"),
        ("JPEG", "cover.png", "image/png"),
        ("GIF", "cover.webp", "image/webp"),
        ("WEBP", "cover", "application/octet-stream"),
        ("WEBP", "cover.gif.exe", None),
    ],
)
def test_cover_format_comes_from_the_bytes_not_the_name_or_content_type(client, auth, fmt, filename, content_type):
    extension, mimetype = FORMATS[fmt]
    cover = encode(gradient(), fmt)
    book = created_book(post_cover(client, auth.headers(), cover, filename, content_type))
    assert NAME.match(file_name(book))
    assert file_name(book).endswith(f".{extension}")
    image, served_type, _ = thumbnail_of(client, book)
    assert image.format == fmt
    assert served_type == mimetype


def test_multi_picture_jpeg_is_accepted_as_a_jpeg(client, auth):
    """An MPO file (phones' and 3-D cameras' .jpg, HDR gain maps) is a JPEG to every viewer."""
    second = Image.new("RGB", (600, 300), "navy")
    cover = encode(gradient(), "MPO", save_all=True, append_images=[second])
    assert cover[:3] == b"\xff\xd8\xff"  # a JPEG stream, as far as the first picture goes
    book = created_book(post_cover(client, auth.headers(), cover, "IMG_0001.jpg", "image/jpeg"))
    image, served_type, _ = thumbnail_of(client, book)
    assert image.format == "JPEG"
    assert file_name(book).endswith(".jpg")
    assert served_type == "image/jpeg"


@pytest.mark.parametrize(
    ("cover", "filename", "message"),
    [
        (b"This is not an image, just text.\n" * 20, "cover.png", NOT_AN_IMAGE),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "cover.svg", NOT_AN_IMAGE),
        (b"<html><script>alert(document.cookie)</script></html>", "cover.gif", NOT_AN_IMAGE),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n", "cover.jpg", NOT_AN_IMAGE),
        (b"\x89PNG\r\n\x1a\n", "cover.png", NOT_AN_IMAGE),  # a PNG signature and nothing else
        (encode(gradient((200, 150)), "BMP"), "cover.bmp", NOT_AN_IMAGE),
        (encode(gradient((200, 150)), "BMP"), "cover.png", NOT_AN_IMAGE),
        (encode(gradient((200, 150)), "TIFF"), "cover.tiff", NOT_AN_IMAGE),
        (encode(gradient((200, 150)), "TIFF"), "cover.jpg", NOT_AN_IMAGE),
        (encode(gradient((64, 64)), "ICO"), "cover.ico", NOT_AN_IMAGE),
        (encode(gradient((200, 150)), "PPM"), "cover.png", NOT_AN_IMAGE),
    ],
    ids=[
        "text",
        "svg",
        "html",
        "pdf",
        "png-signature-only",
        "bmp",
        "bmp-named-png",
        "tiff",
        "tiff-named-jpg",
        "ico",
        "ppm",
    ],
)
def test_cover_that_is_not_an_allowed_image_is_400(client, auth, app, cover, filename, message):
    headers = auth.headers()
    response = post_cover(client, headers, cover, filename)
    assert_envelope(response, 400, INVALID_FIELDS, {"cover_image": message})
    assert stored(app) == set()
    assert total_books(client, headers) == 0


def test_empty_cover_file_is_400(client, auth, app):
    headers = auth.headers()
    response = post_cover(client, headers, b"", "cover.png", "image/png")
    assert_envelope(response, 400, INVALID_FIELDS, {"cover_image": COVER_REQUIRED})
    assert stored(app) == set()
    assert total_books(client, headers) == 0


@pytest.mark.parametrize(
    ("fmt", "message"),
    [("JPEG", TRUNCATED), ("PNG", TRUNCATED), ("GIF", TRUNCATED), ("WEBP", UNREADABLE)],
    ids=list(FORMATS),
)
def test_truncated_cover_is_400(client, auth, app, fmt, message):
    headers = auth.headers()
    whole = encode(gradient(), fmt)
    response = post_cover(client, headers, whole[: len(whole) // 2], "cover.img")
    assert_envelope(response, 400, INVALID_FIELDS, {"cover_image": message})
    assert stored(app) == set()
    assert total_books(client, headers) == 0


# --- thumbnails --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((600, 300), (150, 75)),
        ((300, 600), (75, 150)),
        ((1000, 1000), (150, 150)),
        ((1200, 40), (150, 5)),
        ((150, 150), (150, 150)),
        ((151, 100), (150, 99)),
        ((100, 50), (100, 50)),  # smaller than the box: not enlarged
        ((1, 1), (1, 1)),
    ],
)
def test_thumbnail_fits_150x150_keeping_the_aspect_ratio(client, auth, fmt, size, expected):
    book = created_book(post_cover(client, auth.headers(), encode(gradient(size), fmt)))
    image, _, _ = thumbnail_of(client, book)
    assert image.size == expected


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_cover_becomes_a_thumbnail_of_its_first_frame(client, auth, fmt):
    frames = [Image.new("RGB", (600, 300), colour) for colour in ("red", "blue", "green")]
    cover = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    book = created_book(post_cover(client, auth.headers(), cover))
    image, _, _ = thumbnail_of(client, book)
    assert image.format == fmt
    assert image.size == (150, 75)
    red, green, blue = image.convert("RGB").getpixel((75, 37))
    assert red > 200 and green < 60 and blue < 60


def test_exif_orientation_is_applied_then_dropped(client, auth):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    cover = encode(gradient((600, 300)), "JPEG", exif=exif.tobytes())
    book = created_book(post_cover(client, auth.headers(), cover, "photo.jpg"))
    image, _, _ = thumbnail_of(client, book)
    assert image.size == (75, 150)
    assert 0x0112 not in image.getexif()


def _exif():
    exif = Image.Exif()
    exif[0x010F] = MARKER  # Make
    exif[0x0110] = "Model " + MARKER
    exif[0x0131] = "Software " + MARKER
    return exif


def _png_text():
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", MARKER)
    info.add_text("Comment", MARKER, zip=True)
    info.add_itxt("Description", MARKER, lang="en", tkey="Description")
    return info


def _icc():
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize(
    ("fmt", "options", "planted"),
    [
        ("JPEG", lambda: {"exif": _exif().tobytes()}, {"exif"}),
        ("JPEG", lambda: {"comment": MARKER.encode()}, {"comment"}),
        ("JPEG", lambda: {"icc_profile": _icc()}, {"icc_profile"}),
        ("PNG", lambda: {"pnginfo": _png_text()}, {"Author", "Comment", "Description"}),
        ("PNG", lambda: {"exif": _exif()}, {"exif"}),
        (
            "WEBP",
            lambda: {"exif": _exif().tobytes(), "xmp": f"<x:xmpmeta>{MARKER}</x:xmpmeta>".encode()},
            {"exif", "xmp"},
        ),
        ("GIF", lambda: {"comment": MARKER.encode()}, {"comment"}),
    ],
    ids=["jpeg-exif", "jpeg-comment", "jpeg-icc", "png-text", "png-exif", "webp-exif-xmp", "gif-comment"],
)
def test_thumbnail_metadata_is_stripped(client, auth, fmt, options, planted):
    cover = encode(gradient(), fmt, **options())
    with Image.open(io.BytesIO(cover)) as original:  # the planted metadata is really in the upload
        assert planted <= set(original.info)
    book = created_book(post_cover(client, auth.headers(), cover))
    image, _, data = thumbnail_of(client, book)
    assert image.format == fmt
    assert not planted & set(image.info)
    assert dict(image.getexif()) == {}
    assert getattr(image, "text", {}) == {}
    assert MARKER.encode() not in data


def _palette_image():
    """Every pixel is palette entry 1 (red), the entry that the file marks transparent."""
    image = Image.new("P", (300, 200), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    return image


@pytest.mark.parametrize(
    ("fmt", "make"),
    [
        ("PNG", lambda: encode(Image.new("RGBA", (300, 200), (255, 0, 0, 0)), "PNG")),
        ("WEBP", lambda: encode(Image.new("RGBA", (300, 200), (255, 0, 0, 0)), "WEBP")),
        ("GIF", lambda: encode(_palette_image(), "GIF", transparency=1)),
        ("PNG", lambda: encode(_palette_image(), "PNG", transparency=1)),
    ],
    ids=["png-rgba", "webp-rgba", "gif-palette", "png-palette"],
)
def test_thumbnail_keeps_transparency(client, auth, fmt, make):
    cover = make()
    with Image.open(io.BytesIO(cover)) as original:
        assert original.convert("RGBA").getpixel((10, 10))[3] == 0
    book = created_book(post_cover(client, auth.headers(), cover))
    image, _, _ = thumbnail_of(client, book)
    assert image.format == fmt
    assert image.convert("RGBA").getpixel((10, 10))[3] == 0


def test_16_bit_grayscale_png_keeps_its_tones(client, auth):
    """A mid-grey 16-bit PNG must not come out white (values clipped instead of scaled to 8 bits)."""
    cover = encode(Image.new("I;16", (300, 200), 32768), "PNG")
    book = created_book(post_cover(client, auth.headers(), cover))
    image, _, _ = thumbnail_of(client, book)
    assert image.format == "PNG"
    assert 100 <= image.convert("L").getpixel((75, 50)) <= 156


def test_cover_file_names_are_random_hex_with_the_real_extension(client, auth, app):
    headers = auth.headers()
    cover = image_bytes("PNG")
    first = created_book(post_cover(client, headers, cover, "cover.png", title="First"))
    second = created_book(post_cover(client, headers, cover, "cover.png", title="Second"))
    assert NAME.match(file_name(first)) and NAME.match(file_name(second))
    assert file_name(first) != file_name(second)
    assert "cover" not in file_name(first)
    assert stored(app) == {file_name(first), file_name(second)}  # and no temporary left behind
    assert fetch(client, first["image_url"])[2] == fetch(client, second["image_url"])[2]


# --- upload and pixel limits ------------------------------------------------------


class TestUploadLimit:
    @pytest.fixture
    def app_config(self):
        return {"MAX_UPLOAD_BYTES": 50_000}

    def test_create_with_cover_over_the_limit_is_413(self, client, auth, app):
        headers = auth.headers()
        cover = noise_png()
        assert len(cover) > 100_000
        assert_envelope(post_cover(client, headers, cover), 413, TOO_LARGE, "Request Entity Too Large")
        assert stored(app) == set()
        assert total_books(client, headers) == 0

    def test_update_with_cover_over_the_limit_is_413_and_book_unchanged(self, client, auth, app):
        headers = auth.headers()
        book = created_book(post_cover(client, headers, image_bytes("PNG")))
        response = put_cover(client, headers, book, noise_png(), title="New")
        assert_envelope(response, 413, TOO_LARGE, "Request Entity Too Large")
        assert get_book(client, headers, book) == book
        assert stored(app) == {file_name(book)}
        assert cover_status(client, book["image_url"]) == 200

    def test_update_with_json_body_over_the_limit_is_413_and_book_unchanged(self, client, auth):
        headers = auth.headers()
        book = created_book(post_cover(client, headers, image_bytes("PNG")))
        response = client.put(f"/books/{book['id']}", json={"description": "d" * 60_000}, headers=headers)
        assert_envelope(response, 413, TOO_LARGE, "Request Entity Too Large")
        assert get_book(client, headers, book) == book

    def test_cover_under_the_limit_is_accepted(self, client, auth):
        cover = noise_png((100, 100))
        assert 30_000 < len(cover) < 40_000
        created_book(post_cover(client, auth.headers(), cover))


BOUNDARY = "b0undary"


def multipart_of_size(size: int, title: str = "Dune") -> bytes:
    """A valid book form with a small PNG cover, padded with an extra field to exactly `size` bytes."""

    def part(name, value, extra=""):
        return (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n'.encode() + value + b"\r\n"
        )

    head = part("title", title.encode()) + part("category", b"science")
    tail = part("cover_image", image_bytes("PNG"), '; filename="c.png"') + f"--{BOUNDARY}--\r\n".encode()
    padding = size - len(head) - len(tail) - len(part("padding", b""))
    body = head + part("padding", b"x" * padding) + tail
    assert len(body) == size
    return body


class TestUploadLimitIsInclusive:
    """MAX_UPLOAD_BYTES is the largest body accepted: exactly that many bytes pass, one more is 413.
    gunicorn ends the request stream itself (wsgi.input_terminated), with or without a length."""

    LIMIT = 50_000

    @pytest.fixture
    def app_config(self):
        return {"MAX_UPLOAD_BYTES": self.LIMIT}

    def post(self, client, headers, body, chunked):
        environ = {"wsgi.input_terminated": True}
        kind = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        if chunked:  # no Content-Length: the server reads chunks until the end
            headers = {**headers, **kind, "Transfer-Encoding": "chunked"}
            return client.post("/books/", input_stream=io.BytesIO(body), headers=headers, environ_overrides=environ)
        return client.post("/books/", data=body, headers={**headers, **kind}, environ_overrides=environ)

    @pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
    def test_a_body_of_exactly_the_limit_is_accepted(self, client, auth, chunked):
        created_book(self.post(client, auth.headers(), multipart_of_size(self.LIMIT), chunked))

    @pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
    def test_a_body_one_byte_over_the_limit_is_413(self, client, auth, app, chunked):
        response = self.post(client, auth.headers(), multipart_of_size(self.LIMIT + 1), chunked)
        assert_envelope(response, 413, TOO_LARGE, "Request Entity Too Large")
        assert stored(app) == set()

    def test_a_chunked_json_body_over_the_limit_is_413_not_cut_short(self, client, auth):
        headers = auth.headers()
        book = created_book(post_cover(client, headers, image_bytes("PNG")))
        body = b'{"description": "' + b"d" * self.LIMIT + b'"}'
        response = client.put(
            f"/books/{book['id']}",
            input_stream=io.BytesIO(body),
            environ_overrides={"wsgi.input_terminated": True},
            headers={**headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        )
        assert_envelope(response, 413, TOO_LARGE, "Request Entity Too Large")
        assert get_book(client, headers, book) == book


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def png_bomb(width: int, height: int) -> bytes:
    """A complete, valid 1-bit PNG of all-black pixels: a huge image in a small file."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    block = row * 1000
    parts = [compressor.compress(block) for _ in range(height // 1000)]
    parts += [compressor.compress(row * (height % 1000)), compressor.flush()]
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # depth 1, greyscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def gif_bomb() -> bytes:
    """A 1x1 GIF whose logical screen claims 65535x65535 pixels."""
    data = bytearray(encode(Image.new("P", (1, 1)), "GIF"))
    data[6:10] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


def jpeg_bomb() -> bytes:
    """A small JPEG whose frame header claims 65000x65000 pixels."""
    data = bytearray(encode(Image.new("RGB", (16, 16)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)
    return bytes(data)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@pytest.mark.parametrize(
    "make",
    [lambda: png_bomb(30000, 30000), lambda: png_bomb(8000, 8000), gif_bomb, jpeg_bomb],
    ids=["png-900-megapixels", "png-64-megapixels", "gif-header-4-gigapixels", "jpeg-header-4-gigapixels"],
)
def test_decompression_bomb_is_rejected_without_decoding_it(client, auth, app, make):
    headers = auth.headers()
    cover = make()
    assert len(cover) < 200_000
    rss_before = _peak_rss_mb()
    response = post_cover(client, headers, cover)
    assert_envelope(response, 400, INVALID_FIELDS, {"cover_image": TOO_LARGE_TO_DECODE})
    # Decoding 900 megapixels would take hundreds of MB; reading a header does not.
    assert _peak_rss_mb() - rss_before < 200
    assert stored(app) == set()
    assert total_books(client, headers) == 0


def test_decompression_bomb_as_a_new_cover_is_400_and_book_unchanged(client, auth, app):
    headers = auth.headers()
    book = created_book(post_cover(client, headers, image_bytes("PNG")))
    response = put_cover(client, headers, book, png_bomb(30000, 30000))
    assert_envelope(response, 400, INVALID_FIELDS, {"cover_image": TOO_LARGE_TO_DECODE})
    assert get_book(client, headers, book) == book
    assert stored(app) == {file_name(book)}


class TestPixelLimit:
    @pytest.fixture
    def app_config(self):
        return {"MAX_IMAGE_PIXELS": 1_000_000}

    @pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
    def test_cover_over_the_pixel_limit_is_400(self, client, auth, app, fmt):
        headers = auth.headers()
        cover = image_bytes(fmt, size=(2000, 2000))
        response = post_cover(client, headers, cover)
        assert_envelope(response, 400, INVALID_FIELDS, {"cover_image": TOO_LARGE_AT_1_MEGAPIXEL})
        assert stored(app) == set()
        assert total_books(client, headers) == 0

    def test_cover_at_the_pixel_limit_is_accepted(self, client, auth):
        book = created_book(post_cover(client, auth.headers(), image_bytes("PNG", size=(1000, 1000))))
        image, _, _ = thumbnail_of(client, book)
        assert image.size == (150, 150)


# --- decoding budget -------------------------------------------------------------------


def filled(mode, side):
    """A single-colour square: a large picture in a small file."""
    bands = Image.getmodebands(mode)
    return Image.new(mode, (side, side), (90, 60, 30, 255)[:bands] if bands > 1 else 7)


def test_single_colour_rgba_png_under_the_pixel_limit_but_over_the_decode_budget_is_400(client, auth, app):
    """7070x7070 RGBA is 50 megapixels (under the pixel limit) in a ~200 KB file, but decoding
    and shrinking it needs about 400 MB: refused from its header, with the limits in the message."""
    headers = auth.headers()
    cover = encode(filled("RGBA", 7070), "PNG")
    assert len(cover) < 300_000
    rss_before = _peak_rss_mb()
    response = post_cover(client, headers, cover)
    assert_envelope(response, 400, INVALID_FIELDS, {"cover_image": TOO_LARGE_TO_DECODE})
    assert _peak_rss_mb() - rss_before < 100
    assert stored(app) == set()


class TestDecodeBudget:
    """A 4 MiB budget, so that small pictures sit on either side of it."""

    @pytest.fixture
    def app_config(self):
        return {"MAX_IMAGE_DECODE_BYTES": 4 * 2**20}

    @pytest.mark.parametrize(
        "fmt, mode, side, options, accepted",
        [
            ("PNG", "RGB", 1000, {}, True),  # 4 bytes a pixel in memory: 4.0 MB
            ("PNG", "RGB", 1100, {}, False),
            ("PNG", "RGBA", 700, {}, True),  # alpha: a premultiplied copy as well, 3.9 MB
            ("PNG", "RGBA", 800, {}, False),
            ("PNG", "L", 2000, {}, True),  # 1 byte a pixel
            ("PNG", "L", 2100, {}, False),
            ("GIF", "P", 2000, {}, True),
            ("GIF", "P", 2100, {}, False),
            ("WEBP", "RGB", 500, {}, True),  # the decoder's buffers: four copies, 4.0 MB
            ("WEBP", "RGB", 600, {}, False),
            ("JPEG", "RGB", 3000, {}, True),  # baseline: decoded at 1/8 scale, only the pixel limit
            ("JPEG", "RGB", 800, {"progressive": True, "subsampling": 0}, True),  # 6 bytes a pixel: 3.8 MB
            ("JPEG", "RGB", 900, {"progressive": True, "subsampling": 0}, False),
            ("JPEG", "RGB", 1100, {"progressive": True, "subsampling": 2}, True),  # 4:2:0: 3 bytes a pixel
            ("JPEG", "CMYK", 800, {"progressive": True}, False),  # 8 bytes a pixel
        ],
    )
    def test_cover_is_refused_above_its_formats_decode_budget(
        self, client, auth, app, fmt, mode, side, options, accepted
    ):
        response = post_cover(client, auth.headers(), encode(filled(mode, side), fmt, **options))
        if accepted:
            image, _, _ = thumbnail_of(client, created_book(response))
            assert image.size == (150, 150)
        else:
            assert_envelope(response, 400, INVALID_FIELDS, {"cover_image": TOO_LARGE_AT_4_MIB})
            assert stored(app) == set()


# --- files on disk ----------------------------------------------------------------


@pytest.mark.each_cover_storage
def test_replacing_the_cover_removes_the_old_file_and_serves_the_new(client, auth, app):
    headers = auth.headers()
    book = created_book(post_cover(client, headers, image_bytes("PNG")))
    updated = updated_book(put_cover(client, headers, book, encode(gradient(), "WEBP"), "new.webp"))
    assert stored(app) == {file_name(updated)}
    assert cover_status(client, book["image_url"]) == 404
    image, served_type, _ = thumbnail_of(client, updated)
    assert (image.format, served_type) == ("WEBP", "image/webp")


@pytest.mark.each_cover_storage
def test_updating_fields_only_keeps_the_cover_file(client, auth, app):
    headers = auth.headers()
    book = created_book(post_cover(client, headers, image_bytes("PNG")))
    updated_book(client.put(f"/books/{book['id']}", json={"title": "Renamed"}, headers=headers))
    assert stored(app) == {file_name(book)}
    assert cover_status(client, book["image_url"]) == 200


@pytest.mark.each_cover_storage
def test_deleting_a_book_removes_its_cover_file(client, auth, app):
    headers = auth.headers()
    keep = created_book(post_cover(client, headers, image_bytes("PNG"), title="Keep"))
    book = created_book(post_cover(client, headers, image_bytes("PNG"), title="Delete"))
    assert client.delete(f"/books/{book['id']}", headers=headers).status_code == 204
    assert stored(app) == {file_name(keep)}
    assert cover_status(client, book["image_url"]) == 404
    assert cover_status(client, keep["image_url"]) == 200


@pytest.mark.each_cover_storage
def test_create_with_duplicate_title_leaves_no_file_or_document(client, auth, app):
    headers = auth.headers()
    book = created_book(post_cover(client, headers, image_bytes("PNG"), title="Dune"))
    response = post_cover(client, headers, image_bytes("JPEG"), title="DUNE")
    assert_envelope(response, 409, DUPLICATE_TITLE, "Conflict")
    assert stored(app) == {file_name(book)}
    assert total_books(client, headers) == 1


@pytest.mark.each_cover_storage
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"category": "cooking"}, "category", CATEGORY_UNKNOWN),
        ({"title": ""}, "title", "Title must be 1 to 200 characters."),
        ({"description": "d" * 2001}, "description", "Description must be at most 2000 characters."),
    ],
)
def test_create_with_invalid_field_and_valid_cover_leaves_no_file_or_document(
    client, auth, app, fields, field, message
):
    headers = auth.headers()
    response = post_cover(client, headers, image_bytes("PNG"), **fields)
    assert_envelope(response, 400, INVALID_FIELDS, {field: message})
    assert stored(app) == set()
    assert total_books(client, headers) == 0


@pytest.mark.each_cover_storage
def test_update_with_duplicate_title_and_new_cover_keeps_the_old_file_and_adds_none(client, auth, app):
    headers = auth.headers()
    book = created_book(post_cover(client, headers, image_bytes("PNG"), title="Dune"))
    other = created_book(post_cover(client, headers, image_bytes("PNG"), title="Emma"))
    response = put_cover(client, headers, book, image_bytes("JPEG"), "new.jpg", title="emma")
    assert_envelope(response, 409, DUPLICATE_TITLE, "Conflict")
    assert stored(app) == {file_name(book), file_name(other)}
    assert get_book(client, headers, book) == book
    assert cover_status(client, book["image_url"]) == 200


@pytest.mark.each_cover_storage
def test_update_with_invalid_field_and_new_cover_keeps_the_old_file_and_adds_none(client, auth, app):
    headers = auth.headers()
    book = created_book(post_cover(client, headers, image_bytes("PNG")))
    response = put_cover(client, headers, book, image_bytes("JPEG"), "new.jpg", category="cooking")
    assert_envelope(response, 400, INVALID_FIELDS, {"category": CATEGORY_UNKNOWN})
    assert stored(app) == {file_name(book)}
    assert get_book(client, headers, book) == book


@pytest.mark.each_cover_storage
def test_update_with_invalid_cover_is_400_and_keeps_the_old_cover(client, auth, app):
    headers = auth.headers()
    book = created_book(post_cover(client, headers, image_bytes("PNG")))
    response = put_cover(client, headers, book, encode(gradient((200, 150)), "BMP"), "new.png", title="New")
    assert_envelope(response, 400, INVALID_FIELDS, {"cover_image": NOT_AN_IMAGE})
    assert stored(app) == {file_name(book)}
    assert get_book(client, headers, book) == book


@pytest.mark.each_cover_storage
def test_update_of_another_users_book_with_a_cover_is_404_and_adds_no_file(client, auth, app):
    owner, stranger = auth.headers(), auth.headers()
    book = created_book(post_cover(client, owner, image_bytes("PNG")))
    response = put_cover(client, stranger, book, image_bytes("JPEG"), "new.jpg")
    assert_envelope(response, 404, BOOK_NOT_FOUND, "Not Found")
    assert stored(app) == {file_name(book)}
    assert get_book(client, owner, book) == book


@pytest.mark.each_cover_storage
def test_update_of_a_missing_book_with_a_cover_is_404_and_adds_no_file(client, auth, app):
    headers = auth.headers()
    missing = {"id": "5f0c9a1b2c3d4e5f6a7b8c9d"}
    response = put_cover(client, headers, missing, image_bytes("JPEG"), "new.jpg")
    assert_envelope(response, 404, BOOK_NOT_FOUND, "Not Found")
    assert stored(app) == set()


def damaged_cover() -> bytes:
    return image_bytes("PNG", size=(600, 400))[:-200]  # a valid header, truncated pixels


@pytest.mark.each_cover_storage
def test_update_of_a_missing_book_with_a_damaged_cover_is_404_not_400(client, auth, app):
    """What the header shows is checked with the fields; decoding waits for the book to be found."""
    headers = auth.headers()
    missing = {"id": "5f0c9a1b2c3d4e5f6a7b8c9d"}

    response = put_cover(client, headers, missing, damaged_cover())

    assert_envelope(response, 404, BOOK_NOT_FOUND, "Not Found")
    assert stored(app) == set()


@pytest.mark.each_cover_storage
def test_update_of_another_users_book_with_a_damaged_cover_is_404_not_400(client, auth, app):
    owner, stranger = auth.headers(), auth.headers()
    book = created_book(post_cover(client, owner, image_bytes("PNG")))

    assert_envelope(put_cover(client, stranger, book, damaged_cover()), 404, BOOK_NOT_FOUND, "Not Found")

    response = put_cover(client, owner, book, damaged_cover())
    assert_envelope(response, 400, INVALID_FIELDS, {"cover_image": TRUNCATED})


class TestCoverUploadLimit:
    @pytest.fixture
    def app_config(self):
        return limits(COVER_UPLOAD_RATE_LIMIT="2 per minute")

    def test_a_users_third_cover_in_a_minute_is_429_with_retry_after(self, client, auth, app):
        headers = auth.headers()
        first = created_book(post_cover(client, headers, image_bytes("PNG"), title="One"))
        updated_book(put_cover(client, headers, first, image_bytes("GIF", mode="P", color=3)))

        assert_429(post_cover(client, headers, image_bytes("PNG"), title="Three"), RATE_LIMITED)
        assert_429(put_cover(client, headers, first, image_bytes("JPEG")), RATE_LIMITED)

        assert len(stored(app)) == 1
        assert total_books(client, headers) == 1

    def test_the_limit_is_per_user_and_leaves_other_changes_alone(self, client, auth):
        headers, other = auth.headers(), auth.headers()
        book = created_book(post_cover(client, headers, image_bytes("PNG"), title="One"))
        created_book(post_cover(client, headers, image_bytes("PNG"), title="Two"))

        created_book(post_cover(client, other, image_bytes("PNG"), title="Theirs"))
        updated_book(client.put(f"/books/{book['id']}", json={"description": "No cover this time."}, headers=headers))

    def test_covers_refused_from_their_header_are_counted(self, client, auth):
        """Reading a header can cost work too (tests/test_hostile_covers.py)."""
        headers = auth.headers()
        for _ in range(2):
            response = post_cover(client, headers, b"not an image at all")
            assert_envelope(response, 400, INVALID_FIELDS, {"cover_image": NOT_AN_IMAGE})

        assert_429(post_cover(client, headers, image_bytes("PNG")), RATE_LIMITED)


# --- unreferenced cover files: flask prune-covers -----------------------------------------------


def prune(app, *args):
    return app.test_cli_runner().invoke(args=["prune-covers", *args])


def plant(app, name: str, storage: str, age_seconds: float = 0) -> None:
    """A cover that no book references, written `age_seconds` ago, in either storage."""
    written = time.time() - age_seconds
    if storage == "local":
        path = os.path.join(app.config["UPLOAD_FOLDER"], name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(b"orphan")
        os.utime(path, (written, written))
        return
    db = database_state(app).db
    gridfs.GridFSBucket(db, bucket_name="covers").upload_from_stream_with_id(name, name, io.BytesIO(b"orphan"))
    age(app, name, age_seconds)


def age(app, name: str, seconds: float) -> None:
    """Make a stored cover look written `seconds` ago, wherever it is."""
    written = time.time() - seconds
    path = os.path.join(app.config["UPLOAD_FOLDER"], name)
    if os.path.exists(path):
        os.utime(path, (written, written))
    files = database_state(app).db["covers.files"]
    files.update_one({"_id": name}, {"$set": {"uploadDate": datetime.fromtimestamp(written, UTC)}})


@pytest.mark.each_cover_storage
def test_prune_covers_removes_only_old_covers_no_book_references_from_both_storages(client, auth, app):
    kept = created_book(post_cover(client, auth.headers(), image_bytes("PNG")))
    age(app, file_name(kept), 2 * 3600)  # old but referenced
    plant(app, "0123456789abcdef0123456789abcdef.png", "local", age_seconds=2 * 3600)
    plant(app, ".upload-abc123", "local", age_seconds=2 * 3600)  # a killed worker's partial upload
    plant(app, "1123456789abcdef0123456789abcdef.png", "gridfs", age_seconds=2 * 3600)
    plant(app, "fedcba9876543210fedcba9876543210.png", "local")  # just written: an upload in flight
    plant(app, "eedcba9876543210fedcba9876543210.png", "gridfs")

    result = prune(app)

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "removed .upload-abc123",
        "removed 0123456789abcdef0123456789abcdef.png",
        "removed 1123456789abcdef0123456789abcdef.png",
        "3 unreferenced cover(s) removed; 1 referenced.",
    ]
    assert stored(app) == {
        file_name(kept),
        "fedcba9876543210fedcba9876543210.png",
        "eedcba9876543210fedcba9876543210.png",
    }
    assert cover_status(client, kept["image_url"]) == 200


@pytest.mark.each_cover_storage
def test_prune_covers_with_no_grace_removes_every_unreferenced_cover(client, auth, app, cover_storage):
    kept = created_book(post_cover(client, auth.headers(), image_bytes("PNG")))
    plant(app, "fedcba9876543210fedcba9876543210.png", cover_storage)

    result = prune(app, "--grace-minutes", "0")

    assert result.exit_code == 0, result.output
    assert stored(app) == {file_name(kept)}


# --- serving ----------------------------------------------------------------------


@pytest.mark.each_cover_storage
@pytest.mark.parametrize("name", ["0123456789abcdef0123456789abcdef.png", "missing.jpg", ".upload-abc"])
def test_missing_cover_is_404_envelope(client, name):
    with client.get(f"/static/images/books/{name}") as response:
        assert_envelope(response, 404, COVER_NOT_FOUND, "Not Found")


@pytest.mark.each_cover_storage
@pytest.mark.parametrize(
    "path",
    [
        "/static/images/books/..%2f..%2fapp.py",
        "/static/images/books/..%2f..%2f..%2fapp.py",
        "/static/images/books/%2e%2e%2f%2e%2e%2f%2e%2e%2fapp.py",
        "/static/images/books/..%5c..%5c..%5capp.py",
        "/static/images/books/../../../app.py",
        "/static/..%2fapp.py",
        "/static/images/books/..%2finstance%2fsecret_key",
        "/static/images/books/..%2f..%2f..%2finstance%2fsecret_key",
        "/static/images/books/%2fetc%2fpasswd",
    ],
)
def test_path_traversal_outside_the_covers_is_not_served(client, app, path):
    with client.get(path) as response:
        # No route (werkzeug's message), or the covers route finding no such cover (ours).
        assert_envelope(response, 404, Fragment("not found"), "Not Found")
        body = response.get_data()
    assert b"create_app" not in body
    assert b"root:" not in body
    assert app.config["SECRET_KEY"].encode() not in body
