import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageOps
from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import (
    GotOcr2ImageProcessorPil,
    get_optimal_tiled_canvas,
)

from got_lightning.data.annotations.records import parse_record
from got_lightning.data.errors import BadSampleError
from got_lightning.data.images.decode import decode_pixels, open_image, to_rgb
from got_lightning.data.images.pixels import PageProcessor
from got_lightning.data.images.tiling import tile_grid
from got_lightning.data.prompt import PromptBuilder
from got_lightning.data.sample import SampleBuilder


def scan(path, size, fmt="JPEG"):
    page = Image.new("RGB", size, (245, 240, 230))
    draw = ImageDraw.Draw(page)
    rng = np.random.default_rng(0)
    for y in range(10, size[1] - 20, 24):
        draw.text((10, y), "".join(map(str, rng.integers(0, 10, 60))), fill=(10, 10, 10))
    page.save(path, format=fmt)
    return path


@pytest.mark.parametrize("size", [(1345, 2895), (2480, 3508), (2480, 1754), (640, 480), (900, 1200)])
def test_resize_matches_transformers_image_processor(tmp_path, size):
    path = scan(tmp_path / "page.jpg", size)
    reference = GotOcr2ImageProcessorPil(size={"height": 1024, "width": 1024})(Image.open(path), return_tensors="np")
    ours = PageProcessor(image_size=1024).page_tiles(path)
    difference = (ours - torch.from_numpy(np.asarray(reference["pixel_values"]))).abs().max().item()
    print(f"max abs pixel difference vs GotOcr2ImageProcessorPil at {size}: {difference:.6f}")
    assert ours.shape == (1, 3, 1024, 1024)
    assert difference <= 0.05


@pytest.mark.parametrize("size", [(3000, 1000), (1000, 3000), (2048, 2048), (1500, 800), (5000, 700), (300, 200)])
@pytest.mark.parametrize("limits", [(1, 6), (1, 12), (2, 4)])
def test_tile_grid_and_pixels_match_transformers_crop_to_patches(tmp_path, size, limits):
    tile = 256
    assert tile_grid(size[0], size[1], tile, *limits) == get_optimal_tiled_canvas((size[1], size[0]), (tile, tile), *limits)
    path = scan(tmp_path / "page.png", size, "PNG")
    processor = GotOcr2ImageProcessorPil(
        size={"height": tile, "width": tile}, crop_to_patches=True, min_patches=limits[0], max_patches=limits[1]
    )
    reference = torch.from_numpy(np.asarray(processor(Image.open(path), return_tensors="np")["pixel_values"]))
    ours = PageProcessor(image_size=tile, mode="tiles", min_tiles=limits[0], max_tiles=limits[1]).page_tiles(path)
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max().item() <= 0.05


def test_pad_keeps_aspect_ratio_on_white(tmp_path):
    path = scan(tmp_path / "tall.png", (200, 800), "PNG")
    tiles = PageProcessor(image_size=128, mode="pad").page_tiles(path)
    white = (1.0 - torch.tensor([0.48145466, 0.4578275, 0.40821073])) / torch.tensor([0.26862954, 0.26130258, 0.27577711])
    assert torch.allclose(tiles[0, :, :, :40].mean(dim=(1, 2)), white, atol=1e-4)
    assert tiles[0, :, :, 48:80].min() < white.min() - 1


def pillow_upright(path):
    return np.asarray(to_rgb(ImageOps.exif_transpose(Image.open(path))))


def ours_upright(path):
    return decode_pixels(open_image(path, None), path).permute(1, 2, 0).numpy()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied_as_pillow_does(tmp_path, orientation, fmt):
    page = Image.new("RGB", (40, 10), "white")
    ImageDraw.Draw(page).rectangle((0, 0, 9, 4), fill="black")
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"page.{fmt.lower()}"
    page.save(path, format=fmt, exif=exif)
    ours = ours_upright(path)
    assert ours.shape == ((40, 10, 3) if orientation >= 5 else (10, 40, 3))
    assert np.array_equal(ours, pillow_upright(path))


@pytest.mark.parametrize(
    "save",
    [
        {"subsampling": 2},
        {"subsampling": 0, "quality": 95},
        {"progressive": True},
        {"keep_rgb": True},
    ],
    ids=["420", "444", "progressive", "rgb-no-ycbcr"],
)
@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_jpeg_decoding_gives_pillows_pixels(tmp_path, save, mode):
    page = Image.open(scan(tmp_path / "scan.png", (333, 257), "PNG")).convert(mode)
    path = tmp_path / "page.jpg"
    page.save(path, format="JPEG", **save)
    assert np.array_equal(ours_upright(path), pillow_upright(path))


def test_jpeg_that_libjpeg_flags_as_damaged_still_decodes_as_pillow_decodes_it(tmp_path):
    path = scan(tmp_path / "page.jpg", (300, 200))
    data = path.read_bytes()
    path.write_bytes(data[:-2] + b"\x00\x17" + data[-2:])  # stray bytes before the end marker
    assert np.array_equal(ours_upright(path), pillow_upright(path))


def rgba_half_transparent():
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((0, 0, 4, 9), fill=(0, 0, 255, 255))
    return image


@pytest.mark.parametrize(
    "make, left, right",
    [
        (lambda: rgba_half_transparent(), (0, 0, 255), (255, 255, 255)),
        (lambda: rgba_half_transparent().convert("LA"), (29, 29, 29), (255, 255, 255)),
        (lambda: rgba_half_transparent().convert("P"), (0, 0, 255), (255, 255, 255)),
        (lambda: Image.new("CMYK", (10, 10), (0, 255, 255, 0)), (255, 0, 0), (255, 0, 0)),
        (lambda: Image.new("L", (10, 10), 128), (128, 128, 128), (128, 128, 128)),
        (lambda: Image.fromarray(np.full((10, 10), 65535, dtype=np.uint16)), (255, 255, 255), (255, 255, 255)),
        (lambda: Image.fromarray(np.full((10, 10), 32896, dtype=np.uint16)), (128, 128, 128), (128, 128, 128)),
    ],
    ids=["RGBA", "LA", "P-transparency", "CMYK", "L", "I16-white", "I16-grey"],
)
def test_colour_modes_convert_correctly(tmp_path, make, left, right):
    image = make()
    path = tmp_path / ("page.tif" if image.mode == "CMYK" else "page.png")
    image.save(path)
    rgb = np.asarray(to_rgb(Image.open(path)))
    assert tuple(rgb[5, 1]) == left
    assert tuple(rgb[5, 8]) == right


def test_decompression_bomb_is_refused_with_configured_limit(tmp_path):
    path = scan(tmp_path / "big.png", (1000, 1000), "PNG")
    with pytest.raises(BadSampleError, match="decompression bomb refused: 1000x1000"):
        PageProcessor(max_pixels=999_999).page_tiles(path)
    assert PageProcessor(max_pixels=1_000_000).page_tiles(path).shape[0] == 1


def test_jpeg_draft_decodes_large_scans_at_reduced_scale(tmp_path):
    path = scan(tmp_path / "big.jpg", (4000, 6000))
    assert decode_pixels(open_image(path, None), path, min_size=(1024, 1536)).shape == (3, 3000, 2000)
    assert decode_pixels(open_image(path, None), path, min_size=(1000, 1500)).shape == (3, 1500, 1000)
    assert decode_pixels(open_image(path, None), path, min_size=(2001, 10)).shape == (3, 6000, 4000)


@pytest.mark.parametrize("mode", ["resize", "tiles"])
def test_check_without_pixels_counts_the_same_tiles_and_catches_truncation(tmp_path, tokenizer, mode):
    builder = SampleBuilder(PageProcessor(mode=mode, image_size=64), PromptBuilder(tokenizer, 1, 4096))
    page = scan(tmp_path / "page.jpg", (300, 700))
    record = parse_record(
        {"image": page.name, "conversations": [{"from": "human", "value": "<image>\nOCR: "}, {"from": "gpt", "value": "42"}]}
    )
    full, light = builder.build(record, tmp_path), builder.build(record, tmp_path, pixels=False)
    assert light["pixel_values"] is None and light["num_tiles"] == full["num_tiles"]
    assert torch.equal(light["input_ids"], full["input_ids"])
    page.write_bytes(page.read_bytes()[: page.stat().st_size // 2])
    with pytest.raises(BadSampleError, match="truncated"):
        builder.build(record, tmp_path, pixels=False)


def png_chunks(data):
    position, chunks = 8, []
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        chunks.append(data[position : position + 12 + length])
        position += 12 + length
    return chunks


def text_chunk(keyword, text):
    import zlib

    body = keyword + b"\x00" + text
    return len(body).to_bytes(4, "big") + b"tEXt" + body + zlib.crc32(b"tEXt" + body).to_bytes(4, "big")


@pytest.mark.parametrize("text_after_pixels", [False, True])
def test_png_exif_written_after_the_pixels_is_found_without_decoding_first(tmp_path, text_after_pixels):
    page = Image.new("RGB", (40, 10), "white")
    ImageDraw.Draw(page).rectangle((0, 0, 9, 4), fill="black")
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "page.png"
    page.save(path, exif=exif)
    chunks = png_chunks(path.read_bytes())
    exif_chunk = next(chunk for chunk in chunks if chunk[4:8] == b"eXIf")
    rest = [chunk for chunk in chunks if chunk is not exif_chunk]
    after = [exif_chunk] + ([text_chunk(b"Comment", b"scanned 1901")] if text_after_pixels else [])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(rest[:-1] + after + rest[-1:]))
    with Image.open(path) as image:
        assert "exif" not in image.info  # Pillow would decode the page to find it
    assert ours_upright(path).shape == (40, 10, 3)
    assert np.array_equal(ours_upright(path), pillow_upright(path))
    with open_image(path, None) as image:
        from got_lightning.data.images.decode import exif_orientation

        assert exif_orientation(image) == 6
        assert (image._im is None) != text_after_pixels  # decoded only when text chunks follow the pixels
