"""PNG and TIFF pages through libpng/libtiff (imagecodecs) give exactly Pillow's pixels, and every
layout that path does not know, or a damaged file, is decoded or refused by Pillow as before."""

import io

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageDraw

from got_lightning.data.errors import BadSampleError
from got_lightning.data.images.decode import check_decodes, decode_pixels, open_image, to_rgb
from got_lightning.data.images.lossless import decode_lossless
from got_lightning.data.images.pixels import PageProcessor


def text_page(mode="RGB", size=(301, 203)):
    page = Image.new("RGB", size, (245, 240, 230))
    draw = ImageDraw.Draw(page)
    rng = np.random.default_rng(0)
    for y in range(5, size[1] - 12, 14):
        draw.text((5, y), "".join(map(str, rng.integers(0, 10, 40))), fill=(int(rng.integers(0, 90)), 10, 40))
    return page.convert(mode)


def grey16():
    ramp = np.linspace(0, 65535, 301 * 203).reshape(203, 301)
    return Image.fromarray(ramp.astype(np.uint16))


def rgb16():
    rng = np.random.default_rng(1)
    return rng.integers(0, 65536, (203, 301, 3), dtype=np.uint16)


def pillow_pixels(path, frame=0):
    with Image.open(path) as image:
        image.seek(frame)
        return np.asarray(to_rgb(image))


def ours(path, frame=0):
    with open_image(path, None, frame) as image:
        return decode_pixels(image, path).permute(1, 2, 0).numpy()


def took_fast_path(path, frame=0):
    with open_image(path, None, frame) as image:
        return decode_lossless(image, path) is not None


def write(path, data):
    path.write_bytes(data)
    return path


def save_pillow(image, path, **options):
    image.save(path, **options)
    return path


FAST = {
    "png-rgb": lambda p: save_pillow(text_page(), p / "a.png"),
    "png-grey": lambda p: save_pillow(text_page("L"), p / "a.png"),
    "png-grey16": lambda p: save_pillow(grey16(), p / "a.png"),
    "png-rgb16": lambda p: write(p / "a.png", imagecodecs.png_encode(rgb16())),
    "tif-raw": lambda p: save_pillow(text_page(), p / "a.tif"),
    "tif-lzw": lambda p: save_pillow(text_page(), p / "a.tif", compression="tiff_lzw"),
    "tif-deflate-grey": lambda p: save_pillow(text_page("L"), p / "a.tif", compression="tiff_adobe_deflate"),
    "tif-packbits": lambda p: save_pillow(text_page(), p / "a.tif", compression="packbits"),
    "tif-lzw-predictor": lambda p: tiff(p, text_page(), compression="lzw", predictor=True),
    "tif-grey16-deflate": lambda p: save_pillow(grey16(), p / "a.tif", compression="tiff_adobe_deflate"),
    "tif-rgb-strips": lambda p: tiff(p, text_page(), compression="zlib", rowsperstrip=16),
}
PILLOW = {
    "png-palette": lambda p: save_pillow(text_page("P"), p / "a.png"),
    "png-rgba": lambda p: save_pillow(text_page("RGBA"), p / "a.png"),
    "png-bilevel": lambda p: save_pillow(text_page("1"), p / "a.png"),
    "tif-jpeg": lambda p: save_pillow(text_page(), p / "a.tif", compression="jpeg"),
    "tif-group4": lambda p: save_pillow(text_page("1"), p / "a.tif", compression="group4"),
    "tif-miniswhite": lambda p: tiff(p, 255 - np.asarray(text_page("L")), photometric="miniswhite"),
    "tif-cmyk": lambda p: save_pillow(text_page("CMYK"), p / "a.tif", compression="tiff_lzw"),
    "tif-planar": lambda p: tiff(p, np.moveaxis(np.asarray(text_page()), 2, 0), photometric="rgb", planarconfig="separate"),
}


def tiff(folder, pixels, **options):
    path = folder / "a.tif"
    tifffile.imwrite(path, np.asarray(pixels), **options)
    return path


@pytest.mark.parametrize("layout", list(FAST))
def test_plain_png_and_tiff_pages_take_libpng_and_libtiff_with_pillows_pixels(tmp_path, layout):
    path = FAST[layout](tmp_path)
    assert took_fast_path(path)
    assert np.array_equal(ours(path), pillow_pixels(path))


@pytest.mark.parametrize("layout", list(PILLOW))
def test_other_layouts_are_left_to_pillow(tmp_path, layout):
    path = PILLOW[layout](tmp_path)
    assert not took_fast_path(path)
    assert np.array_equal(ours(path), pillow_pixels(path))


def test_each_page_of_a_multipage_tiff_is_its_own_image(tmp_path):
    pages = [text_page(), text_page("L").convert("RGB"), Image.new("RGB", (301, 203), (0, 90, 200))]
    path = tmp_path / "book.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:], compression="tiff_lzw")
    for frame, page in enumerate(pages):
        assert took_fast_path(path, frame)
        assert np.array_equal(ours(path, frame), np.asarray(page))


@pytest.mark.parametrize("suffix, cut", [("png", 0.5), ("tif", 0.5), ("png", 0.97)])
def test_damaged_files_are_refused_or_read_exactly_as_pillow_does(tmp_path, suffix, cut):
    path = save_pillow(text_page(), tmp_path / f"whole.{suffix}", **({"compression": "tiff_lzw"} if suffix == "tif" else {}))
    data = path.read_bytes()
    damaged = tmp_path / f"damaged.{suffix}"
    damaged.write_bytes(data[: int(len(data) * cut)])
    try:
        expected = pillow_pixels(damaged)
    except OSError:
        expected = None
    if expected is None:
        with pytest.raises(BadSampleError, match="damaged|truncated|corrupt|cannot open"):
            ours(damaged)
        with pytest.raises(BadSampleError), open_image(damaged, None) as image:
            check_decodes(image, damaged)
    else:
        assert np.array_equal(ours(damaged), expected)


def test_in_memory_pages_decode_as_files_do(tmp_path):
    from got_lightning.data.images.decode import EncodedImage

    path = save_pillow(text_page(), tmp_path / "a.png")
    encoded = EncodedImage("row-3", path.read_bytes())
    with open_image(encoded, None) as image:
        assert decode_lossless(image, encoded) is not None
    processor = PageProcessor(image_size=64)
    assert processor.page_tiles(encoded).equal(processor.page_tiles(path))


def test_a_png_page_reads_like_pillow_through_the_whole_pipeline(tmp_path):
    path = save_pillow(text_page(size=(900, 1300)), tmp_path / "a.png")
    buffer = io.BytesIO()
    Image.open(path).save(buffer, "BMP")  # BMP: always Pillow's decode
    bmp = tmp_path / "a.bmp"
    bmp.write_bytes(buffer.getvalue())
    for mode in ("resize", "tiles"):
        processor = PageProcessor(image_size=256, mode=mode)
        assert processor.page_tiles(path).equal(processor.page_tiles(bmp))
