"""Images and books: encoded images and the multipart form that creates a book."""

from __future__ import annotations

import io

from PIL import Image


def encode(image, fmt, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def image_bytes(fmt="PNG", size=(300, 200), color=(200, 30, 30), mode="RGB", **save_options) -> bytes:
    return encode(Image.new(mode, size, color), fmt, **save_options)


def book_form(title="Dune", category="science", description="Spice and sand.", cover=None, filename="cover.png"):
    """A multipart form as Postman's form-data sends it."""
    form = {"title": title, "category": category, "description": description}
    if cover is not False:
        form["cover_image"] = (io.BytesIO(cover or image_bytes()), filename)
    return form
