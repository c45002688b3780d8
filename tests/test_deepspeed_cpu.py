"""The recipe's strategy for real, on 2 CPU ranks: DeepSpeed ZeRO-2/3 through `got-lightning fit`
(DeepSpeed's CPU accelerator, gloo), against DDP on the same config and batches."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("deepspeed")

from got_lightning.checkpoint_io import COMPLETE_MARK, read_checkpoint  # noqa: E402
from tests.helpers import run_executable  # noqa: E402
from tests.training_helpers import fit_config  # noqa: E402

pytestmark = pytest.mark.slow
ZERO = Path(__file__).resolve().parents[1] / "zero_config"
STEPS = 6  # 21 training pages, batch 2, 2 ranks, accumulation 2: 3 steps per epoch (the last on a partial window)


def strategy(name: str) -> list[str]:
    if name == "ddp":
        return ["--trainer.strategy", "ddp"]
    return ["--trainer.strategy", "got_lightning.strategies.GotDeepSpeedStrategy",
            "--trainer.strategy.config", str(ZERO / f"{name}.json")]


def config(tmp_path, pages, model_dir, name, clip=1.0, **sections):
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path / name / "logs")}}
    trainer = {"accumulate_grad_batches": 2, "gradient_clip_val": clip, "devices": 2, "logger": logger, "log_every_n_steps": 1}
    sections.setdefault("model", {}).setdefault("lr_schedule_steps", STEPS)
    return fit_config(tmp_path / f"{name}.yaml", pages, model_dir, tmp_path / name,
                      trainer={**trainer, **sections.pop("trainer", {})}, **sections)


def fit(config_path: Path, kind: str, *arguments: str, expect: int = 0) -> str:
    result = run_executable("fit", "--config", str(config_path), *strategy(kind), *arguments, timeout=900)
    assert result.returncode == expect, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stderr


def logged(root: Path, column: str) -> list[float]:
    rows = []
    for path in sorted((root / "logs").rglob("metrics.csv")):
        rows += [row for row in csv.DictReader(path.open(encoding="utf-8")) if row.get(column)]
    return [float(row[column]) for row in sorted(rows, key=lambda row: int(row["step"]))]


def weights(root: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(root / "checkpoints" / "last.ckpt")["state_dict"]


def assert_same_weights(a: dict, b: dict, **tolerance) -> None:
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        if name.endswith("k_proj.bias"):
            # Softmax ignores a shift shared by all keys, so this bias's true gradient is zero: Adam
            # divides the float noise left there by its own size and moves the bias by about the
            # learning rate in a direction set by rounding, differently in any two runs.
            continue
        torch.testing.assert_close(b[name].float(), tensor.float(), msg=name, **tolerance)


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory, digit_pages, micro_model_dir):
    """DDP, 2 ranks, fp32, accumulation 2: clipping that binds (1.0) and that does not (1e6)."""
    folder = tmp_path_factory.mktemp("ddp")
    runs = {}
    for clip in (1.0, 1e6):
        path = config(folder, digit_pages, micro_model_dir, f"ddp-{clip:g}", clip=clip)
        fit(path, "ddp", "--trainer.max_steps", str(STEPS))
        runs[clip] = folder / f"ddp-{clip:g}"
    return runs


@pytest.mark.parametrize("clip", [1.0, 1e6], ids=["clip_binds", "clip_free"])
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_zero_gradients_and_weights_equal_ddp(stage, clip, ddp_runs, digit_pages, micro_model_dir, tmp_path):
    path = config(tmp_path, digit_pages, micro_model_dir, stage, clip=clip)
    fit(path, stage, "--trainer.max_steps", str(STEPS))
    ddp, zero = ddp_runs[clip], tmp_path / stage
    norms_ddp, norms_zero = logged(ddp, "train/grad_norm"), logged(zero, "train/grad_norm")
    assert len(norms_zero) == len(norms_ddp) == STEPS
    if clip == 1.0:
        assert max(norms_ddp) > 1.0  # the clipping binds
    else:
        assert max(norms_ddp) < clip
    for step, (expected, measured) in enumerate(zip(norms_ddp, norms_zero)):
        assert measured == pytest.approx(expected, rel=1e-3), f"grad norm at step {step}"
    assert logged(zero, "train/loss") == pytest.approx(logged(ddp, "train/loss"), rel=1e-5)
    assert_same_weights(weights(ddp), weights(zero), rtol=1e-4, atol=1e-6)
    last = zero / "checkpoints" / "last.ckpt"
    assert last.is_dir() and (last / COMPLETE_MARK).is_file()
    assert json.loads((last / COMPLETE_MARK).read_text())["world_size"] == 2
