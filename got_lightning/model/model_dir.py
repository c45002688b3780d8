"""Model folders on disk, without importing torch or transformers: what a folder holds, and folders
built once under a temporary name and renamed into place."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from got_lightning.core.errors import UserError

TRANSFORMERS_MODEL_TYPE = "got_ocr2"


class ModelDirError(UserError, FileNotFoundError):
    """A model directory that is missing or holds no usable GOT model."""


class ConversionError(UserError, ValueError):
    """An original checkpoint whose keys do not map onto the transformers model."""

    def __init__(self, missing: list[str], unexpected: list[str]) -> None:
        self.missing, self.unexpected = missing, unexpected
        lines = ["the original GOT checkpoint does not match the transformers layout:"]
        if missing:
            lines.append(f"  missing ({len(missing)}): " + ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else ""))
        if unexpected:
            lines.append(
                f"  unexpected ({len(unexpected)}): " + ", ".join(unexpected[:20]) + (" ..." if len(unexpected) > 20 else "")
            )
        super().__init__("\n".join(lines))


def read_config(model_dir: Path) -> dict[str, Any]:
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise ModelDirError(f"{model_dir} has no config.json: not a model directory")
    return json.loads(config_file.read_text(encoding="utf-8"))


def is_transformers_dir(model_dir: str | Path) -> bool:
    """Whether a directory holds a transformers-format `got_ocr2` model."""
    return read_config(Path(model_dir)).get("model_type") == TRANSFORMERS_MODEL_TYPE


def has_weights(model_dir: Path) -> bool:
    """Whether a directory holds safetensors or PyTorch weight files."""
    return any(model_dir.glob("*.safetensors")) or any(model_dir.glob("pytorch_model*.bin"))


def publish_once(target: Path, build: Callable[[Path], Any]) -> Path:
    """`target`, built by `build(staging folder)` and renamed into place unless it exists already
    (atomically: several processes may race, one wins, the others use its folder)."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(staging)
        os.rename(staging, target)
    except OSError:
        if not target.exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
