"""Open any image a user might give us (path, bytes, PIL image, array) as an RGB PIL image, or refuse it clearly."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..config import MAX_FILE_BYTES, MAX_IMAGE_PIXELS
from ..errors import BadInput

ImageInput = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray]


# Why an image was refused (`InvalidImage.reason`): codes for code to count and branch on, never parsed from text.
NOT_AN_IMAGE = "not an image"  # not a format Pillow reads, an empty file, an array that is no image
TOO_SMALL = "too small"
TOO_LARGE = "too large"  # the file's bytes or its pixels (a decompression bomb)
BROKEN = "broken image"  # a known format that fails to decode: truncated, corrupt
NO_FILE = "no such file"  # a path that is missing or a folder
REASONS = (NOT_AN_IMAGE, TOO_SMALL, TOO_LARGE, BROKEN, NO_FILE)


class InvalidImage(BadInput):
    """The input is not an image we can use. `reason` is one of `REASONS`; `detail` says exactly why, for people;
    the message is "<file name>: <detail>" (just the detail when there is no name), in one line."""

    def __init__(self, reason: str, detail: str, name: str | None = None):
        super().__init__(f"{name}: {detail}" if name else detail)
        self.reason, self.detail, self.name = reason, detail, name

    def __reduce__(self):  # pickled whole (ZeroGPU runs a prediction in another process and sends failures back)
        return type(self), (self.reason, self.detail, self.name)


def _open(src: ImageInput) -> tuple[Image.Image, str]:
    if isinstance(src, Image.Image):
        return src, "image"
    if isinstance(src, np.ndarray):
        if src.dtype != np.uint8:
            src = np.clip(src, 0, 255).astype(np.uint8)
        try:
            return Image.fromarray(src), "array"
        except (TypeError, ValueError) as ex:
            raise InvalidImage(NOT_AN_IMAGE, f"array of shape {src.shape} is not an image") from ex
    if isinstance(src, (bytes, bytearray)):
        name, data = "upload", bytes(src)
        if len(data) > MAX_FILE_BYTES:
            raise InvalidImage(
                TOO_LARGE, f"file is too large ({len(data) // 1_000_000} MB, limit {MAX_FILE_BYTES // 1_000_000} MB)", name
            )
    else:
        path = Path(src)
        name = path.name
        if not path.is_file():
            raise InvalidImage(NO_FILE, "a folder, not an image file" if path.is_dir() else "no such file", name)
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidImage(
                TOO_LARGE, f"file is too large ({size // 1_000_000} MB, limit {MAX_FILE_BYTES // 1_000_000} MB)", name
            )
        data = path.read_bytes()
    if not data:
        raise InvalidImage(NOT_AN_IMAGE, "file is empty (0 bytes)", name)
    try:
        return Image.open(io.BytesIO(data)), name
    except UnidentifiedImageError as ex:
        raise InvalidImage(NOT_AN_IMAGE, "not an image Pillow can read (JPEG, PNG, GIF, WebP, BMP, TIFF)", name) from ex
    except Image.DecompressionBombError as ex:
        raise InvalidImage(
            TOO_LARGE, f"image is too large (possible decompression bomb; limit {MAX_IMAGE_PIXELS // 1_000_000} megapixels)", name
        ) from ex
    except (OSError, ValueError) as ex:
        raise InvalidImage(BROKEN, f"cannot open image ({ex})", name) from ex


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit and float greyscale: scale to 8 bits instead of letting convert() clip to white.
        arr = np.asarray(im, dtype=np.float32)
        hi = float(arr.max()) if arr.size else 0.0
        scale = 255.0 / (65535.0 if hi > 255 else 255.0) if im.mode != "F" else (255.0 / hi if hi > 0 else 1.0)
        im = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        # Transparent pixels become white, not whatever colour happens to hide under them.
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def load_image(src: ImageInput, min_side: int = 1) -> Image.Image:
    """Decode `src` fully into an RGB image: EXIF rotation applied, first frame of animations,
    any mode converted. Raises `InvalidImage` for non-images, broken files and decompression bombs."""
    im, name = _open(src)
    w, h = im.size
    if w * h > MAX_IMAGE_PIXELS:
        raise InvalidImage(
            TOO_LARGE, f"image is too large ({w}x{h} pixels, limit {MAX_IMAGE_PIXELS // 1_000_000} megapixels)", name
        )
    if min(w, h) < min_side:
        raise InvalidImage(TOO_SMALL, f"image is too small ({w}x{h} pixels, need at least {min_side} a side)", name)
    try:
        if getattr(im, "is_animated", False):
            im.seek(0)
        im.load()
        im = ImageOps.exif_transpose(im) or im
        return _to_rgb(im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as ex:
        raise InvalidImage(BROKEN, f"broken or truncated image ({ex})", name) from ex
