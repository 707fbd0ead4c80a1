import io

import numpy as np
import pytest
from PIL import Image

from conftest import made_photos
from otter.data.images import InvalidImage, load_image


def png_bytes(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    "data, needle",
    [
        (b"", "empty"),
        (b"hello, I am text", "not an image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "not an image"),
    ],
)
def test_non_images_are_refused(data, needle):
    with pytest.raises(InvalidImage, match=needle):
        load_image(data)


def test_truncated_jpeg_is_refused():
    data = made_photos("sea", 1)[0].read_bytes()
    with pytest.raises(InvalidImage, match="truncated|broken"):
        load_image(data[: len(data) // 3])


def test_decompression_bomb_is_refused_before_decoding():
    bomb = png_bytes(Image.new("1", (30000, 30000)))
    with pytest.raises(InvalidImage, match="too large"):
        load_image(bomb)


def test_modes_become_rgb():
    cmyk = load_image(png_bytes(Image.new("CMYK", (10, 10), (0, 255, 0, 0)), "JPEG"))
    assert cmyk.mode == "RGB"
    sixteen = Image.fromarray(np.full((8, 8), 30000, dtype=np.uint16))
    out = load_image(png_bytes(sixteen))
    assert out.mode == "RGB" and 100 < np.asarray(out)[0, 0, 0] < 140, "16-bit scaled, not clipped to white"
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.info["transparency"] = 0
    assert np.asarray(load_image(png_bytes(pal, transparency=0)))[0, 0].tolist() == [255, 255, 255]


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert np.asarray(load_image(buf.getvalue()))[0, 0, 0] > 200


def test_exif_rotation_is_applied():
    im = Image.new("RGB", (40, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    out = load_image(png_bytes(im, "JPEG", exif=exif.tobytes()))
    assert out.size == (20, 40)


def test_webp_and_one_pixel_load():
    assert load_image(png_bytes(Image.new("RGB", (16, 16), "red"), "WEBP")).size == (16, 16)
    assert load_image(png_bytes(Image.new("RGB", (1, 1)))).size == (1, 1)
    with pytest.raises(InvalidImage, match="too small"):
        load_image(png_bytes(Image.new("RGB", (1, 1))), min_side=16)
