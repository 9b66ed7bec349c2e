"""Hostile covers (issue 17): files built so that reading their header fails in unplanned ways
or costs far more than their size, and valid covers mutated at random. The unit tests call
save_image with no app and no database; the last section sends the same files over HTTP."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import Image

import save_image
from helpers import INVALID_FIELDS, assert_429, assert_envelope, book_form, encode, limits

UNREADABLE = "Cover image could not be read."
MiB = 2**20
MAX_PIXELS, BUDGET = 1_000_000, 4 * MiB  # small limits keep the fuzzing fast
SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --- building hostile files ----------------------------------------------------------------


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(*extra: bytes, header: bytes | None = None, trailer: tuple[bytes, ...] = ()) -> bytes:
    """An 8x8 RGB PNG with the `extra` chunks before its pixels and the `trailer` after them."""
    header = header or chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
    pixels = chunk(b"IDAT", zlib.compress(b"\x00" * 25 * 8))
    return SIGNATURE + header + b"".join(extra) + pixels + b"".join(trailer) + chunk(b"IEND", b"")


def inflating(size: int, checksum_ok: bool = True) -> bytes:
    """zlib data that inflates to `size` bytes; with a wrong checksum it fails only once inflated."""
    data = zlib.compress(b"\x00" * size, 9)
    return data if checksum_ok else data[:-1] + bytes([data[-1] ^ 1])


def icc(data: bytes) -> bytes:
    return chunk(b"iCCP", b"icc\0\0" + data)


def ztxt(data: bytes, key: bytes = b"Comment") -> bytes:
    return chunk(b"zTXt", key + b"\0\0" + data)


def itxt(data: bytes) -> bytes:
    return chunk(b"iTXt", b"Comment\0\1\0en\0\0" + data)  # compressed international text


def zero_sampling_jpeg() -> bytes:
    """A progressive JPEG whose frame header gives every component sampling factors of 0."""
    data = bytearray(encode(Image.new("RGB", (16, 16)), "JPEG", progressive=True))
    sof = data.index(b"\xff\xc2")
    for component in range(data[sof + 9]):
        data[sof + 11 + 3 * component] = 0x00
    return bytes(data)


OVER_PILLOW = MiB + 1  # Pillow's own limit for one chunk is 1 MiB
UNDER_PILLOW = MiB - 1

# Each cannot be opened as a cover. Before issue 17, each was a 500 or cost up to 64 MiB of inflating.
HOSTILE = {
    "icc-profile-over-pillows-limit": lambda: png(icc(inflating(OVER_PILLOW))),
    "ztxt-over-pillows-limit": lambda: png(ztxt(inflating(OVER_PILLOW))),
    "itxt-over-pillows-limit": lambda: png(itxt(inflating(OVER_PILLOW))),
    "65-ztxt-of-1-mib-74-kb": lambda: png(*[ztxt(inflating(UNDER_PILLOW), b"k%d" % n) for n in range(65)]),
    "40-icc-profiles-of-1-mib": lambda: png(*[icc(inflating(UNDER_PILLOW))] * 40),
    "40-icc-profiles-after-the-pixels": lambda: png(trailer=(icc(inflating(UNDER_PILLOW)),) * 40),
    "40-ztxt-failing-their-checksum": lambda: png(*[ztxt(inflating(UNDER_PILLOW, checksum_ok=False))] * 40),
    "ihdr-of-5-bytes": lambda: png(header=chunk(b"IHDR", b"\0\0\0\x08\0")),
    "actl-of-2-bytes": lambda: png(chunk(b"acTL", b"\0\0")),
    "fctl-of-10-bytes": lambda: png(chunk(b"acTL", struct.pack(">II", 1, 0)), chunk(b"fcTL", b"\0" * 10)),
    "progressive-jpeg-sampling-0": zero_sampling_jpeg,
}


# --- unit: save_image alone ------------------------------------------------------------------


def open_cover(data: bytes) -> Image.Image:
    return save_image.open_cover(io.BytesIO(data), MAX_PIXELS, BUDGET)


@pytest.fixture
def inflated(monkeypatch) -> list[int]:
    """Bytes inflated through zlib.decompressobj while the test runs: Pillow inflates PNG
    metadata with it (pixels are inflated in C, and not counted)."""
    total = [0]
    real = zlib.decompressobj

    class Counting:
        def __init__(self, *args, **kwargs):
            self._inner = real(*args, **kwargs)

        def decompress(self, data, max_length=0):
            out = self._inner.decompress(data, max_length)
            total[0] += len(out)
            return out

        def __getattr__(self, name):
            return getattr(self._inner, name)

    monkeypatch.setattr(zlib, "decompressobj", Counting)
    return total


@pytest.mark.parametrize("make", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_cover_is_refused_as_unreadable_when_opened(make):
    with pytest.raises(save_image.ImageRejected, match=f"^{UNREADABLE}$"):
        open_cover(make())


@pytest.mark.parametrize("make", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_cover_inflates_at_most_4_mib(make, inflated):
    """At most 16 compressed metadata chunks of 256 KiB: what one upload may make a worker inflate."""
    cover = make()
    with pytest.raises(save_image.ImageRejected):
        save_image.make_thumbnail(io.BytesIO(cover), MAX_PIXELS, BUDGET)
    assert inflated[0] <= 4 * MiB


def test_text_chunks_are_capped_far_below_pillows_default():
    """Covers keep no text: a 300 KiB comment, under Pillow's own 1 MiB, is refused."""
    with pytest.raises(save_image.ImageRejected, match=f"^{UNREADABLE}$"):
        open_cover(png(ztxt(inflating(300 * 1024))))


def test_sixteen_compressed_metadata_chunks_are_accepted_and_seventeen_refused():
    metadata = [icc(inflating(3144))] + [ztxt(inflating(1000), b"k%d" % n) for n in range(16)]
    assert save_image.make_thumbnail(io.BytesIO(png(*metadata[:16])), MAX_PIXELS, BUDGET)[1] == "png"
    with pytest.raises(save_image.ImageRejected, match=f"^{UNREADABLE}$"):
        open_cover(png(*metadata))


def test_metadata_a_real_cover_carries_is_accepted():
    """An sRGB profile, XMP of 20 KB and the text an editor writes."""
    from PIL import ImageCms, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>" + "<rdf:li>a</rdf:li>" * 1200 + "</x:xmpmeta>")
    for key in ("Software", "Author", "date:create", "date:modify"):
        info.add_text(key, "x" * 200, zip=True)
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    cover = encode(Image.new("RGB", (300, 200), "teal"), "PNG", pnginfo=info, icc_profile=profile)
    assert save_image.make_thumbnail(io.BytesIO(cover), MAX_PIXELS, BUDGET)[1] == "png"


# --- unit: fuzzing ---------------------------------------------------------------------------

SEED = 17
CASES_PER_SEED_IMAGE = 60


def _picture(size=(48, 32)) -> Image.Image:
    grey = Image.radial_gradient("L").resize(size)
    return Image.merge("RGB", [grey, grey.rotate(90), grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])


def seed_images() -> dict[str, bytes]:
    """Small valid covers of every accepted format, the variants whose parsers differ."""
    picture, turned = _picture(), _picture().rotate(45)
    return {
        "png": encode(picture, "PNG"),
        "png-palette": encode(picture.convert("P"), "PNG"),
        "apng": encode(picture, "PNG", save_all=True, append_images=[turned]),
        "jpeg": encode(picture, "JPEG"),
        "jpeg-progressive": encode(picture, "JPEG", progressive=True),
        "jpeg-progressive-grey": encode(picture.convert("L"), "JPEG", progressive=True),
        "gif-animated": encode(picture.convert("P"), "GIF", save_all=True, append_images=[turned.convert("P")]),
        "webp": encode(picture, "WEBP"),
        "webp-lossless": encode(picture.convert("RGBA"), "WEBP", lossless=True),
        "webp-animated": encode(picture, "WEBP", save_all=True, append_images=[turned]),
    }


def _mutate_bytes(rnd: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    if not out:
        return rnd.randbytes(rnd.randint(0, 8))
    action = rnd.randrange(3)
    if action == 0:
        for _ in range(rnd.randint(1, 8)):
            out[rnd.randrange(len(out))] = rnd.randrange(256)
    elif action == 1:
        del out[rnd.randrange(len(out)) :]
    else:
        at = rnd.randrange(len(out))
        out[at:at] = rnd.randbytes(rnd.randint(1, 16))
    return bytes(out)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, at = [], len(SIGNATURE)
    while at + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, at)
        chunks.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + length]))
        at += 12 + length
    return chunks


def mutate(rnd: random.Random, data: bytes) -> bytes:
    """A random byte flip, cut or insertion; in a PNG, mostly inside one chunk with its length and
    checksum made right, so that the change reaches the chunk's parser instead of the checksum test."""
    if not data.startswith(SIGNATURE) or rnd.random() < 0.4:
        return _mutate_bytes(rnd, data)
    chunks = _png_chunks(data)
    pick = rnd.randrange(len(chunks))
    kind, body = chunks[pick]
    chunks[pick] = (kind, _mutate_bytes(rnd, body))
    return SIGNATURE + b"".join(chunk(kind, body) for kind, body in chunks)


@pytest.mark.parametrize("name", list(seed_images()))
def test_mutated_cover_is_thumbnailed_or_refused_never_anything_else(name):
    rnd = random.Random(f"{SEED}:{name}")  # a str seed is hashed the same in every run
    original = seed_images()[name]
    escaped = []
    for case in range(CASES_PER_SEED_IMAGE):
        cover = mutate(rnd, original)
        try:
            save_image.make_thumbnail(io.BytesIO(cover), MAX_PIXELS, BUDGET)
        except save_image.ImageRejected:
            pass
        except Exception as exc:  # what the test looks for: anything else would be a 500
            escaped.append((case, repr(exc)))
    assert escaped == []


# --- over HTTP ----------------------------------------------------------------------------------


def post_cover(client, headers, cover: bytes, title="Dune"):
    form = book_form(title=title, cover=False)
    form["cover_image"] = (io.BytesIO(cover), "cover.png")
    return client.post("/books/", data=form, headers=headers)


def put_cover(client, headers, book: dict, cover: bytes):
    return client.put(f"/books/{book['id']}", data={"cover_image": (io.BytesIO(cover), "cover.png")}, headers=headers)


def a_cover() -> bytes:
    return encode(_picture(), "PNG")


@pytest.mark.parametrize("make", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_cover_is_400_on_create_and_on_update(client, auth, make):
    headers = auth.headers()
    book = assert_envelope(post_cover(client, headers, a_cover()), 201, "Book created.")

    response = post_cover(client, headers, make(), title="Emma")
    assert_envelope(response, 400, INVALID_FIELDS, {"cover_image": UNREADABLE})
    response = put_cover(client, headers, book, make())
    assert_envelope(response, 400, INVALID_FIELDS, {"cover_image": UNREADABLE})

    assert client.get("/books/", headers=headers).get_json()["meta"]["total"] == 1
    assert client.get(f"/books/{book['id']}", headers=headers).get_json()["data"] == book


class TestHeaderParsingCountsAgainstTheCoverLimit:
    @pytest.fixture
    def app_config(self):
        return limits(COVER_UPLOAD_RATE_LIMIT="3 per minute")

    def test_covers_refused_from_their_header_are_counted(self, client, auth):
        headers = auth.headers()
        book = assert_envelope(post_cover(client, headers, a_cover()), 201, "Book created.")
        hostile = HOSTILE["65-ztxt-of-1-mib-74-kb"]()
        assert_envelope(post_cover(client, headers, hostile, "Emma"), 400, INVALID_FIELDS, {"cover_image": UNREADABLE})
        assert_envelope(put_cover(client, headers, book, hostile), 400, INVALID_FIELDS, {"cover_image": UNREADABLE})

        assert_429(post_cover(client, headers, a_cover(), "Persuasion"))
        assert_429(put_cover(client, headers, book, a_cover()))

    def test_once_the_limit_is_used_up_a_cover_is_429_before_its_header_is_read(self, client, auth):
        headers = auth.headers()
        for title in ("One", "Two", "Three"):
            assert_envelope(post_cover(client, headers, a_cover(), title), 201, "Book created.")

        assert_429(post_cover(client, headers, HOSTILE["ihdr-of-5-bytes"](), "Four"))
        assert_429(post_cover(client, headers, b"not an image at all", "Four"))
