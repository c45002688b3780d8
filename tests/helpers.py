"""Small builders shared by tests: real files written with PIL and json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageDraw
from safetensors.torch import save_file

REPO_ROOT = Path(__file__).resolve().parents[1]


def text_page(path: Path, size: tuple[int, int] = (300, 200), text: str = "12345", **save) -> Path:
    page = Image.new("RGB", size, "white")
    ImageDraw.Draw(page).text((10, 10), text, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path, **save)
    return path


def record(image, answer: str = "12345", prompt: str = "<image>\nOCR: ") -> dict:
    return {"image": image, "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}]}


def write_json(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def executable() -> Path:
    """The `got-lightning` console script installed beside this Python."""
    return Path(sys.executable).parent / "got-lightning"


def run_executable(*args: str, timeout: float = 600, **options) -> subprocess.CompletedProcess:
    """`got-lightning ARGS` as a user types it."""
    return subprocess.run([str(executable()), *args], capture_output=True, text=True, timeout=timeout, **options)


def to_original_key(key: str) -> str:
    """Inverse of the documented mapping (test-side, written independently of `convert_key`)."""
    replacements = [
        ("model.vision_tower.patch_embed.projection.", "model.vision_tower_high.patch_embed.proj."),
        ("model.vision_tower.pos_embed", "model.vision_tower_high.pos_embed"),
        ("model.vision_tower.neck.conv1.", "model.vision_tower_high.neck.0."),
        ("model.vision_tower.neck.layer_norm1.", "model.vision_tower_high.neck.1."),
        ("model.vision_tower.neck.conv2.", "model.vision_tower_high.neck.2."),
        ("model.vision_tower.neck.layer_norm2.", "model.vision_tower_high.neck.3."),
        ("model.multi_modal_projector.conv_upsampler1.", "model.vision_tower_high.net_2."),
        ("model.multi_modal_projector.conv_upsampler2.", "model.vision_tower_high.net_3."),
        ("model.multi_modal_projector.multimodal_projector.", "model.mm_projector_vary."),
        ("model.language_model.", "model."),
    ]
    if key.startswith("model.vision_tower.layers."):
        key = key.replace("model.vision_tower.layers.", "model.vision_tower_high.blocks.")
        return key.replace(".layer_norm1.", ".norm1.").replace(".layer_norm2.", ".norm2.")
    for new, old in replacements:
        if key.startswith(new):
            return old + key[len(new) :]
    return key


def write_original_dir(path, model, drop=(), extra=None):
    path.mkdir(parents=True)
    state = {to_original_key(k): v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    for key in drop:
        del state[key]
    state.update(extra or {})
    save_file(state, path / "model.safetensors")
    text = model.config.text_config
    config = {
        "architectures": ["GOTQwenForCausalLM"],
        "model_type": "GOT",
        "vocab_size": text.vocab_size,
        "hidden_size": text.hidden_size,
        "intermediate_size": text.intermediate_size,
        "num_hidden_layers": text.num_hidden_layers,
        "num_attention_heads": text.num_attention_heads,
        "num_key_value_heads": text.num_key_value_heads,
        "rms_norm_eps": text.rms_norm_eps,
        "max_position_embeddings": text.max_position_embeddings,
        "tie_word_embeddings": True,
    }
    (path / "config.json").write_text(json.dumps(config))
    return path


def needs_litdata() -> None:
    """litdata goes in apart from the test extra (`--no-deps`, see .ci/run): skip without it, unless
    GOT_LIGHTNING_REQUIRE_LITDATA=1 makes a missing litdata a failure (as in CI)."""
    import importlib.util
    import os

    import pytest

    if importlib.util.find_spec("litdata") is None:
        if os.environ.get("GOT_LIGHTNING_REQUIRE_LITDATA"):
            pytest.fail("GOT_LIGHTNING_REQUIRE_LITDATA is set but litdata is not installed (pip install --no-deps litdata)")
        pytest.skip("litdata is not installed (pip install --no-deps litdata)")
