"""Scan augmentation of training pages (`data.augment`), built on albumentations: small rotation and
skew, perspective, blur, noise, JPEG re-compression, brightness/contrast, thicker or thinner ink.

Deterministic: the pixels of a page depend only on (data.seed, epoch, dataset, record position), in
any process, worker or rank, so a killed and resumed run sees the pages an uninterrupted one sees;
another epoch draws again. Only the training split is augmented (never held-out pages, predict or
serve).

Why albumentations: it has every one of these effects, ink erosion and dilation and JPEG
re-compression included, works on uint8 arrays with no tie to torch's version (torchvision's v2
transforms must match torch's build exactly and have no morphology), and a pipeline's random
generator can be seeded per call (`Compose.set_random_seed`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from got_lightning.core.errors import SettingError
from got_lightning.core.optional import require

WHITE = (255, 255, 255)  # pages are ink on light paper: what a rotation or skew uncovers is paper


@dataclass(frozen=True)
class StepKind:
    """One augmentation: its parameters with their defaults, and how albumentations builds it."""

    defaults: dict[str, float]
    build: Callable[[Any, dict[str, float]], Any]
    doc: str


def _constant_border(A: Any) -> dict[str, Any]:
    import cv2

    return {"border_mode": cv2.BORDER_CONSTANT, "fill": WHITE}


STEPS: dict[str, StepKind] = {
    # The geometric steps keep the whole page in view (`fit_output`): text pushed out of the frame
    # would no longer match its transcription. The canvas grows by what the turn uncovers.
    "rotate": StepKind(
        {"degrees": 2.0},
        lambda A, a: A.Affine(rotate=(-a["degrees"], a["degrees"]), fit_output=True, **_constant_border(A), p=a["p"]),
        "turn by up to `degrees`",
    ),
    "skew": StepKind(
        {"degrees": 2.0},
        lambda A, a: A.Affine(
            shear={"x": (-a["degrees"], a["degrees"]), "y": (0, 0)}, fit_output=True, **_constant_border(A), p=a["p"]
        ),
        "shear the lines sideways by up to `degrees`",
    ),
    "perspective": StepKind(
        {"scale": 0.03},
        lambda A, a: A.Perspective(scale=(0.0, a["scale"]), fit_output=True, keep_size=True, **_constant_border(A), p=a["p"]),
        "move the corners by up to `scale` of the page (a photographed page), the page kept whole",
    ),
    "blur": StepKind(
        {"sigma": 1.0}, lambda A, a: A.GaussianBlur(sigma_limit=(0.1, a["sigma"]), p=a["p"]), "Gaussian blur up to `sigma` pixels"
    ),
    "noise": StepKind(
        # One noise value for the three channels of a pixel, as a scanner's sensor noise (and a third of the cost).
        {"std": 0.05},
        lambda A, a: A.GaussNoise(std_range=(0.0, a["std"]), per_channel=False, p=a["p"]),
        "Gaussian noise up to `std` of full scale",
    ),
    "jpeg": StepKind(
        {"quality_min": 30, "quality_max": 90},
        lambda A, a: A.ImageCompression(quality_range=(int(a["quality_min"]), int(a["quality_max"])), p=a["p"]),
        "re-compress as JPEG at a quality in [quality_min, quality_max]",
    ),
    "brightness_contrast": StepKind(
        {"brightness": 0.2, "contrast": 0.2},
        lambda A, a: A.RandomBrightnessContrast(brightness_limit=a["brightness"], contrast_limit=a["contrast"], p=a["p"]),
        "brightness and contrast changed by up to these shares",
    ),
    # Dark ink on light paper: eroding the image (a minimum filter) spreads the ink, dilating it thins it.
    "ink_thicker": StepKind(
        {"size": 2},
        lambda A, a: A.Morphological(scale=(int(a["size"]), int(a["size"])), operation="erosion", p=a["p"]),
        "spread the ink by a `size`-pixel kernel (worn type, bleeding ink)",
    ),
    "ink_thinner": StepKind(
        {"size": 2},
        lambda A, a: A.Morphological(scale=(int(a["size"]), int(a["size"])), operation="dilation", p=a["p"]),
        "thin the ink by a `size`-pixel kernel (faded print)",
    ),
}


class AugmentConfigError(SettingError):
    """A `data.augment` entry that cannot be used, with the reason."""


def parse_steps(entries: list[dict[str, Any]]) -> list[tuple[str, dict[str, float]]]:
    """Each entry's name and its complete arguments (defaults filled in), or one clear error."""
    steps = []
    for number, entry in enumerate(entries):
        where = f"data.augment[{number}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise AugmentConfigError(f"{where}: expected {{name: ..., p: ..., ...}}, got {entry!r:.80}")
        name = entry["name"]
        kind = STEPS.get(name)
        if kind is None:
            raise AugmentConfigError(f"{where}: unknown augmentation {name!r} (known: {', '.join(STEPS)})")
        arguments = {**kind.defaults, "p": 0.5}
        for key, value in entry.items():
            if key == "name":
                continue
            if key not in arguments:
                raise AugmentConfigError(f"{where} {name}: unknown parameter {key!r} (takes {', '.join(arguments)})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise AugmentConfigError(f"{where} {name}: {key} must be a number >= 0, got {value!r}")
            arguments[key] = float(value)
        if arguments["p"] > 1:
            raise AugmentConfigError(f"{where} {name}: p is a probability, got {arguments['p']}")
        steps.append((name, arguments))
    return steps


class ScanAugmentation:
    """The configured steps as one albumentations pipeline, seeded for each (epoch, sample)."""

    def __init__(self, entries: list[dict[str, Any]], seed: int = 0) -> None:
        self.steps = parse_steps(entries)
        self.seed = seed
        A = require("albumentations", "data.augment")
        self.pipeline = A.Compose([STEPS[name].build(A, arguments) for name, arguments in self.steps], seed=seed)

    def for_sample(self, epoch: int, dataset: str, position: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """The augmentation of one sample in one epoch: applied to each of its pages in order."""
        sample_seed = np.random.SeedSequence([self.seed, epoch, zlib.crc32(dataset.encode()), position]).generate_state(1)[0]
        self.pipeline.set_random_seed(int(sample_seed))
        return self.apply

    def apply(self, page: torch.Tensor) -> torch.Tensor:
        """uint8 pixels `(3, H, W)` in, augmented uint8 pixels out (`rotate` and `skew` widen the
        canvas by what they uncover; the tiles are cut from the page as it comes out)."""
        array = np.ascontiguousarray(page.permute(1, 2, 0).numpy())
        augmented = self.pipeline(image=array)["image"]
        return torch.from_numpy(np.ascontiguousarray(augmented)).permute(2, 0, 1)
