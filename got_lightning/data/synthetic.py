"""Synthetic text pages with their transcripts in GOT's format, rendered with PIL (tests and demo)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

from got_lightning.core.atomic_files import atomic_write_text
from got_lightning.core.errors import InputNotFoundError

Script = Literal["digits", "latin", "cjk"]
Layout = Literal["horizontal", "vertical"]

ALPHABETS: dict[str, str] = {
    "digits": "0123456789",
    "latin": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "cjk": "天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏閏餘成歲律呂調陽雲騰致雨露結為霜金生麗水玉出崑岡",
}
FONT_CANDIDATES: dict[str, tuple[str, ...]] = {
    "latin": (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/System/Library/Fonts/Supplemental/Arial.ttf",
        "C:/Windows/Fonts/arial.ttf",
    ),
    "cjk": (
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
        "/System/Library/Fonts/PingFang.ttc",
        "C:/Windows/Fonts/msyh.ttc",
    ),
}
DEFAULT_PROMPT = "<image>\nOCR: "


@dataclass(frozen=True)
class PageStyle:
    """How synthetic pages look.

    Args:
        width: Page width in pixels.
        height: Page height in pixels.
        font_size: Glyph size in pixels.
        lines: Lines (columns when vertical) per page.
        min_chars: Fewest characters per line.
        max_chars: Most characters per line.
        script: `digits`, `latin` or `cjk` (needs a CJK font on the machine).
        fallback_script: Drawn instead of `cjk` when no CJK font is installed (none: fail).
        layout: `horizontal`, or `vertical` columns read right to left like guji pages.
        line_break: Text put between lines in the transcript ("" like the user story's labels).
        char_width: Draw horizontal text monospaced, each character centred in a cell this wide
            (None: the font's own spacing).
    """

    width: int = 256
    height: int = 64
    font_size: int = 40
    lines: int = 1
    min_chars: int = 3
    max_chars: int = 5
    script: Script = "digits"
    fallback_script: Script | None = None
    layout: Layout = "horizontal"
    line_break: str = ""
    char_width: int | None = None


@dataclass(frozen=True)
class SyntheticSpec(PageStyle):
    """A dataset rendered when its annotation file does not exist (demo and tests): how many pages,
    the seed (same seed, same pages and transcripts) and the page style.

    Args:
        count: Pages to render.
        seed: Random seed of the transcripts.
    """

    count: int = 200
    seed: int = 0


def installed_font(script: Script) -> Path | None:
    """The first installed TrueType font able to draw the script."""
    return next((Path(path) for path in FONT_CANDIDATES["cjk" if script == "cjk" else "latin"] if Path(path).is_file()), None)


def drawn_script(style: PageStyle) -> Script:
    """The style's script, or its fallback when the script needs a font the machine lacks."""
    if style.script == "cjk" and style.fallback_script is not None and installed_font("cjk") is None:
        return style.fallback_script
    return style.script


def find_font(script: Script, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font able to draw the script; raise if a CJK font is needed and none is installed."""
    path = installed_font(script)
    if path is not None:
        return ImageFont.truetype(str(path), size)
    if script == "cjk":
        raise InputNotFoundError("no CJK font found; install one (e.g. fonts-noto-cjk) to render CJK pages")
    return ImageFont.load_default(size)


def render_page(text_lines: list[str], style: PageStyle, font) -> Image.Image:
    """Black text on white, lines top to bottom, or columns right to left when vertical."""
    page = Image.new("RGB", (style.width, style.height), "white")
    draw = ImageDraw.Draw(page)
    step = int(style.font_size * 1.3)
    margin = max(2, style.font_size // 4)
    for number, line in enumerate(text_lines):
        if style.layout == "vertical":
            x = style.width - margin - step * (number + 1)
            for position, char in enumerate(line):
                draw.text((x, margin + position * step), char, fill="black", font=font)
        elif style.char_width:
            for position, char in enumerate(line):
                centre = margin + (position + 0.5) * style.char_width
                draw.text((centre, margin + number * step), char, fill="black", font=font, anchor="mt")
        else:
            draw.text((margin, margin + number * step), line, fill="black", font=font)
    return page


def make_dataset(
    output: str | Path,
    count: int,
    style: PageStyle = PageStyle(),
    seed: int = 0,
    prompt: str = DEFAULT_PROMPT,
    annotations_name: str = "data.json",
) -> Path:
    """Render `count` pages into `output/images/` and write `output/<annotations_name>`.

    The same arguments always give the same pages and transcripts.
    """
    output = Path(output)
    (output / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    script = drawn_script(style)
    font = find_font(script, style.font_size)
    alphabet = ALPHABETS[script]
    records = []
    for number in range(count):
        lines = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(style.min_chars, style.max_chars)))
            for _ in range(style.lines)
        ]
        name = f"images/{number:06d}.png"
        render_page(lines, style, font).save(output / name)
        records.append(
            {
                "image": name,
                "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": style.line_break.join(lines)}],
            }
        )
    annotations = output / annotations_name
    # Written last and atomically: an existing annotation file always has all its images.
    atomic_write_text(annotations, json.dumps(records, ensure_ascii=False, indent=1))
    return annotations


def materialize(spec: SyntheticSpec, annotations: str | Path) -> Path:
    """Render a config's synthetic dataset next to `annotations` unless that file already exists."""
    annotations = Path(annotations)
    if annotations.is_file():
        return annotations
    return make_dataset(annotations.parent, spec.count, spec, spec.seed, annotations_name=annotations.name)
