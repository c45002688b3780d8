"""Draw docs/augmentation.png: a rendered page as scanned beside the same page as one training
epoch sees it with every kind of `data.augment` step (the picture in the README and docs/data.md).

    python tools/draw_augmentation.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from got_lightning.data.images.augment import ScanAugmentation
from got_lightning.data.synthetic import PageStyle, make_dataset

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "augmentation.png"
STEPS = [
    {"name": "rotate", "degrees": 2, "p": 1.0},
    {"name": "perspective", "scale": 0.03, "p": 1.0},
    {"name": "ink_thicker", "size": 2, "p": 1.0},
    {"name": "brightness_contrast", "p": 1.0},
    {"name": "blur", "sigma": 0.8, "p": 1.0},
    {"name": "noise", "std": 0.06, "p": 1.0},
    {"name": "jpeg", "quality_min": 25, "quality_max": 40, "p": 1.0},
]


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    style = PageStyle(width=640, height=360, font_size=28, lines=7, min_chars=24, max_chars=30, script="latin")
    make_dataset(folder, 1, style, seed=5)
    record = json.loads((folder / "data.json").read_text(encoding="utf-8"))[0]
    page = Image.open(folder / record["image"]).convert("RGB")
    pixels = torch.from_numpy(np.array(page)).permute(2, 0, 1)
    after = ScanAugmentation(STEPS, seed=0).for_sample(0, "pages", 0)(pixels)
    after_image = Image.fromarray(after.permute(1, 2, 0).numpy()).resize(page.size)
    width, height = page.size
    canvas = Image.new("RGB", (2 * width + 30, height + 40), "white")
    canvas.paste(page, (0, 40))
    canvas.paste(after_image, (width + 30, 40))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 10), "the page as scanned", fill="black")
    draw.text((width + 34, 10), "epoch 0: " + ", ".join(step["name"] for step in STEPS), fill="black")
    canvas.save(OUTPUT)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
