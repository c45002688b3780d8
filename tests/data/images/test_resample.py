import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from got_lightning.data.images.resample import pillow_resizes_vertically_first, resize_bicubic


def text_page(width, height):
    page = Image.new("RGB", (width, height), (245, 240, 230))
    draw = ImageDraw.Draw(page)
    for y in range(0, height, 12):
        draw.text((2, y), "0123456789" * 20, fill=(10, 10, 10))
    return page


def random_geometries(count, seed=0):
    rng = np.random.default_rng(seed)
    return [tuple(int(v) for v in rng.integers(8, 600, 4)) for _ in range(count)]


def differs_from_pillow(page, width, height):
    ours = resize_bicubic(torch.from_numpy(np.array(page)).permute(2, 0, 1), width, height)
    reference = np.asarray(page.resize((width, height), Image.Resampling.BICUBIC))
    return int(np.abs(ours.permute(1, 2, 0).numpy().astype(int) - reference).max())


@pytest.mark.parametrize("geometry", random_geometries(60), ids=lambda g: "{}x{}-to-{}x{}".format(*g))
def test_resize_stays_within_two_grey_levels_of_pillow(geometry):
    source_w, source_h, width, height = geometry
    assert differs_from_pillow(text_page(source_w, source_h), width, height) <= 2


def observed_pillow_order(page, width, height):
    """'vertical' or 'horizontal' when only one two-call order reproduces Pillow's one-call resize."""
    one_call = np.asarray(page.resize((width, height), Image.Resampling.BICUBIC))
    vertical = np.asarray(
        page.resize((page.width, height), Image.Resampling.BICUBIC).resize((width, height), Image.Resampling.BICUBIC)
    )
    horizontal = np.asarray(
        page.resize((width, page.height), Image.Resampling.BICUBIC).resize((width, height), Image.Resampling.BICUBIC)
    )
    matches = {name for name, pixels in (("vertical", vertical), ("horizontal", horizontal)) if np.array_equal(one_call, pixels)}
    return matches.pop() if len(matches) == 1 else None


@pytest.mark.parametrize("geometry", [(1345, 2895, 1024, 1024), (2480, 3508, 1024, 1024), *random_geometries(40, seed=1)])
def test_pass_order_is_the_one_pillow_uses(geometry):
    source_w, source_h, width, height = geometry
    rng = np.random.default_rng(0)
    noise = Image.fromarray((rng.random((source_h, source_w, 3)) > 0.5).astype(np.uint8) * 255)
    observed = observed_pillow_order(noise, width, height)
    if observed is None:
        pytest.skip("both orders give Pillow's pixels here")
    assert pillow_resizes_vertically_first((source_w, source_h), (width, height)) == (observed == "vertical")


def test_same_size_returns_the_pixels_unchanged():
    pixels = torch.from_numpy(np.array(text_page(64, 48))).permute(2, 0, 1)
    assert resize_bicubic(pixels, 64, 48) is pixels
