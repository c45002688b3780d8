"""The README's CPU rehearsal of the guji recipe at real size (580M GOT, 1024-px tiles, ZeRO-2, bf16,
2 CPU ranks): fit 2 steps, resume to 3, export. About 15 minutes and 16 GB on 2 cores, so it runs
only when asked: GOT_LIGHTNING_REAL_SIZE=1 python -m pytest tests/test_dry_run.py
(figures in docs/benchmarks.md, made by tools/bench_zero.py dry_run)."""

import json
import os
from pathlib import Path

import pytest
from safetensors import safe_open

from got_lightning.training.checkpoints import COMPLETE_MARK
from tests.helpers import REPO_ROOT, run_executable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("GOT_LIGHTNING_REAL_SIZE"), reason="real-size dry run: set GOT_LIGHTNING_REAL_SIZE=1 (15 min, 16 GB)"
    ),
]
CONFIGS = REPO_ROOT / "configs"
RECIPE = ["--config", str(CONFIGS / "guji.yaml"), "--config", str(CONFIGS / "dry-run.yaml")]


def got_lightning(*args: str, cwd: Path) -> None:
    result = run_executable(*args, cwd=cwd, timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]


def test_the_guji_recipe_rehearses_on_two_cpu_ranks_at_real_size(tmp_path):
    got_lightning("fit", *RECIPE, cwd=tmp_path)
    run = tmp_path / "runs" / "dry-run" / "run"
    last = run / "checkpoints" / "last.ckpt"
    mark = json.loads((last / COMPLETE_MARK).read_text())
    assert mark == {"global_step": 2, "world_size": 2}
    metrics = json.loads((run / "validation" / "step-000002" / "metrics.json").read_text())
    assert metrics["num_samples"] > 0 and metrics["loss"] > 0

    got_lightning("fit", *RECIPE, "--trainer.max_steps", "3", "--ckpt_path", "last", cwd=tmp_path)
    assert json.loads((last / COMPLETE_MARK).read_text())["global_step"] == 3

    got_lightning("export", "--ckpt", str(last), "--output", str(tmp_path / "export"), cwd=tmp_path)
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["model_type"] == "got_ocr2" and config["vision_config"]["image_size"] == 1024
    assert config["text_config"]["num_hidden_layers"] == 24 and config["text_config"]["hidden_size"] == 1024
    with (
        safe_open(tmp_path / "export" / "model.safetensors", "pt") as exported,
        safe_open(tmp_path / "runs" / "dry-run" / "model" / "model.safetensors", "pt") as base,
    ):
        assert set(exported.keys()) == set(base.keys())
