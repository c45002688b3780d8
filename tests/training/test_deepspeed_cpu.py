"""The recipe's strategy for real, on 2 CPU ranks: DeepSpeed ZeRO-2/3 through `got-lightning fit`
(DeepSpeed's CPU accelerator, gloo), against DDP on the same config and batches; resume, export,
a rank killed mid-save, 8-bit optimizers, LoRA and two simulated nodes."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytest.importorskip("deepspeed")

from got_lightning.export import module_from_checkpoint
from got_lightning.model.loading import load_model
from got_lightning.training.checkpoints import COMPLETE_MARK, read_checkpoint
from tests.helpers import REPO_ROOT, executable, run_executable
from tests.training_helpers import datamodule, fit_config

pytestmark = pytest.mark.slow
# The tests that read the module's shared runs stay on one worker (which builds them once); the
# others spread over every worker.
SHARED_RUNS = pytest.mark.xdist_group("deepspeed_cpu")
ZERO = REPO_ROOT / "zero_config"
# 21 training pages, batch 2, 2 ranks, accumulation 2: 5 micro-batches per rank and epoch, so 3
# optimizer steps per epoch (the last on a partial window). HALF = 4 is inside the second epoch.
STEPS, HALF = 8, 4


def strategy(name: str) -> list[str]:
    if name == "ddp":
        return ["--trainer.strategy", "ddp"]
    return [
        "--trainer.strategy",
        "got_lightning.training.strategies.GotDeepSpeedStrategy",
        "--trainer.strategy.config",
        str(ZERO / f"{name}.json"),
    ]


def config(folder: Path, pages: Path, model_dir: Path, name: str, clip: float = 1.0, **sections) -> Path:
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(folder / name / "logs")}}
    trainer = {"accumulate_grad_batches": 2, "gradient_clip_val": clip, "devices": 2, "logger": logger, "log_every_n_steps": 1}
    sections.setdefault("model", {}).setdefault("lr_schedule_steps", STEPS)
    return fit_config(
        folder / f"{name}.yaml", pages, model_dir, folder / name, trainer={**trainer, **sections.pop("trainer", {})}, **sections
    )


def fit(config_path: Path, kind: str, *arguments: str) -> str:
    result = run_executable("fit", "--config", str(config_path), *strategy(kind), *arguments, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stderr


def logged(root: Path, column: str) -> list[float]:
    rows = []
    for path in sorted((root / "logs").rglob("metrics.csv")):
        rows += [row for row in csv.DictReader(path.open(encoding="utf-8")) if row.get(column)]
    return [float(row[column]) for row in sorted(rows, key=lambda row: int(row["step"]))]


def last(root: Path) -> Path:
    return root / "checkpoints" / "last.ckpt"


def weights(root: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(last(root))["state_dict"]


def assert_same_weights(a: dict, b: dict, across_strategies: bool = False, **tolerance) -> None:
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        if across_strategies and name.endswith("k_proj.bias"):
            # Softmax ignores a shift shared by all keys, so this bias's true gradient is zero: Adam
            # divides the float noise left there by its own size and moves the bias by about the
            # learning rate in a direction set by rounding, which differs between two reduction orders.
            continue
        torch.testing.assert_close(
            b[name].float(),
            tensor.float(),
            msg=lambda detail, name=name: f"{name}: {detail}",
            **(tolerance or {"rtol": 1e-5, "atol": 1e-7}),
        )


class Runs:
    """Straight runs of STEPS optimizer steps, made once per (strategy, clip) and shared by tests."""

    def __init__(self, folder: Path, pages: Path, model_dir: Path) -> None:
        self.folder, self.pages, self.model_dir = folder, pages, model_dir
        self.done: dict[tuple[str, float], Path] = {}

    def straight(self, kind: str, clip: float = 1.0) -> Path:
        if (kind, clip) not in self.done:
            name = f"{kind}-{clip:g}"
            fit(config(self.folder, self.pages, self.model_dir, name, clip=clip), kind, "--trainer.max_steps", str(STEPS))
            self.done[kind, clip] = self.folder / name
        return self.done[kind, clip]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digit_pages, micro_model_dir) -> Runs:
    return Runs(tmp_path_factory.mktemp("straight"), digit_pages, micro_model_dir)


@SHARED_RUNS
@pytest.mark.parametrize("clip", [1.0, 1e6], ids=["clip_binds", "clip_free"])
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_zero_gradients_and_weights_equal_ddp(stage, clip, runs):
    ddp, zero = runs.straight("ddp", clip), runs.straight(stage, clip)
    norms_ddp, norms_zero = logged(ddp, "train/grad_norm"), logged(zero, "train/grad_norm")
    assert len(norms_zero) == len(norms_ddp) == STEPS
    if clip == 1.0:
        assert max(norms_ddp) > 1.0  # the clipping binds
    else:
        assert max(norms_ddp) < clip
    for step, (expected, measured) in enumerate(zip(norms_ddp, norms_zero)):
        assert measured == pytest.approx(expected, rel=1e-3), f"grad norm at step {step}"
    assert logged(zero, "train/loss") == pytest.approx(logged(ddp, "train/loss"), rel=1e-5)
    assert_same_weights(weights(ddp), weights(zero), across_strategies=True, rtol=1e-4, atol=1e-6)
    assert last(zero).is_dir() and (last(zero) / COMPLETE_MARK).is_file()
    assert json.loads((last(zero) / COMPLETE_MARK).read_text())["world_size"] == 2


@SHARED_RUNS
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_zero_resumed_mid_epoch_equals_the_straight_run(stage, runs, digit_pages, micro_model_dir, tmp_path):
    path = config(tmp_path, digit_pages, micro_model_dir, "halves")
    fit(path, stage, "--trainer.max_steps", str(HALF))
    assert read_checkpoint(last(tmp_path / "halves"))["global_step"] == HALF
    stderr = fit(path, stage, "--trainer.max_steps", str(STEPS), "--ckpt_path", "last")
    assert f"--ckpt_path last: resuming from {last(tmp_path / 'halves')}" in stderr
    straight = runs.straight(stage)
    # Losses after the resume equal the straight run's: same weights, optimizer state and batches.
    assert logged(tmp_path / "halves", "train/loss") == pytest.approx(logged(straight, "train/loss"), rel=1e-6)
    assert_same_weights(weights(straight), weights(tmp_path / "halves"))


@SHARED_RUNS
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_export_of_a_zero_checkpoint_loads_in_stock_transformers(stage, runs, digit_pages, micro_model_dir, tmp_path):
    from transformers import GotOcr2ForConditionalGeneration

    checkpoint = last(runs.straight(stage))
    for states_file in (checkpoint / "checkpoint").glob("*model_states.pt"):
        states = torch.load(states_file, map_location="cpu", weights_only=False)
        saved = [name for group in states["param_shapes"] for name in group]
        assert saved and states["frozen_param_shapes"] is None
        assert not [name for name in saved if "vision_tower" in name]  # frozen: left out of the checkpoint
    result = run_executable("export", "--ckpt", str(checkpoint), "--output", str(tmp_path / "export"))
    assert result.returncode == 0, result.stderr[-3000:]

    exported = GotOcr2ForConditionalGeneration.from_pretrained(tmp_path / "export").eval()
    module = module_from_checkpoint(checkpoint)
    base_tower = load_model(micro_model_dir).model.vision_tower.state_dict()
    for name, tensor in exported.model.vision_tower.state_dict().items():
        torch.testing.assert_close(tensor, base_tower[name], rtol=0, atol=0, msg=name)  # frozen: from the model dir
    data = datamodule(digit_pages, micro_model_dir, batch_size=4)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    with torch.no_grad():
        stock = exported(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"]
        ).logits
        torch.testing.assert_close(stock, module.logits(batch), rtol=1e-4, atol=1e-4)


KILL_RANK_1_MID_SAVE = textwrap.dedent("""
    import os, signal, sys
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

    real_save = TorchCheckpointEngine.save
    saves = 0

    def save_then_die_halfway(self, state_dict, path):
        global saves
        saves += 1
        real_save(self, state_dict, path)
        if os.environ.get("LOCAL_RANK") == "1" and saves == int(os.environ["KILL_AT_SAVE"]):
            with open(path, "r+b") as handle:  # a shard cut short, as by a kill mid-write
                handle.truncate(os.path.getsize(path) // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    TorchCheckpointEngine.save = save_then_die_halfway
    from got_lightning.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@SHARED_RUNS
def test_a_rank_killed_while_a_zero_checkpoint_is_written_resumes_from_the_last_complete_one(
    runs, digit_pages, micro_model_dir, tmp_path
):
    path = config(tmp_path, digit_pages, micro_model_dir, "killed")
    driver = tmp_path / "driver.py"
    driver.write_text(KILL_RANK_1_MID_SAVE, encoding="utf-8")
    # Rank 1 writes one optimizer shard per checkpoint directory: step=2 and last at step 2, then
    # the step-4 directory, during which it dies.
    environment = dict(os.environ, KILL_AT_SAVE="3", PYTHONPATH=str(REPO_ROOT))
    killed = subprocess.run(
        [sys.executable, str(driver), "fit", "--config", str(path), *strategy("zero2"), "--trainer.max_steps", str(STEPS)],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )
    assert killed.returncode != 0
    folder = tmp_path / "killed" / "checkpoints"
    staged = [entry for entry in folder.iterdir() if entry.name.startswith(".")]
    assert staged and not any((entry / COMPLETE_MARK).exists() for entry in staged)  # died mid-save
    assert json.loads((last(tmp_path / "killed") / COMPLETE_MARK).read_text())["global_step"] == 2

    stderr = fit(path, "zero2", "--trainer.max_steps", str(STEPS), "--ckpt_path", "last")
    assert "removed a half-written checkpoint" in stderr
    assert not [entry for entry in folder.iterdir() if entry.name.startswith(".")]
    assert_same_weights(weights(runs.straight("zero2")), weights(tmp_path / "killed"))


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_bf16_mixed_with_accumulation_trains_and_checkpoints(stage, digit_pages, micro_model_dir, tmp_path):
    path = config(tmp_path, digit_pages, micro_model_dir, "bf16", trainer={"precision": "bf16-mixed"})
    fit(path, stage, "--trainer.max_steps", "3")
    losses, norms = logged(tmp_path / "bf16", "train/loss"), logged(tmp_path / "bf16", "train/grad_norm")
    assert len(losses) == len(norms) == 3 and all(map(torch.isfinite, torch.tensor(losses + norms)))
    states = torch.load(
        next((last(tmp_path / "bf16") / "checkpoint").glob("*model_states.pt")), map_location="cpu", weights_only=False
    )
    assert states["ds_config"]["bf16"]["enabled"] is True
    checkpoint = read_checkpoint(last(tmp_path / "bf16"))
    assert checkpoint["global_step"] == 3
    base = load_model(micro_model_dir).state_dict()
    for tensor in checkpoint["state_dict"].values():  # fp32 master weights, moved by training
        assert tensor.dtype == torch.float32 and torch.isfinite(tensor).all()
    moved = [
        name for name, tensor in checkpoint["state_dict"].items() if not torch.equal(tensor, base[name.removeprefix("got.")])
    ]
    assert len(moved) > len(checkpoint["state_dict"]) // 2


def fit_halves_and_export(
    folder: Path, pages: Path, model_dir: Path, kind: str, steps: int, **sections
) -> dict[str, torch.Tensor]:
    """Straight `steps` vs `steps/2` resumed to `steps` on one config; both must end equal. Exports
    the straight run and returns its weights."""
    for name in ("straight", "halves"):
        config(folder, pages, model_dir, name, **sections)
    fit(folder / "straight.yaml", kind, "--trainer.max_steps", str(steps))
    fit(folder / "halves.yaml", kind, "--trainer.max_steps", str(steps // 2))
    fit(folder / "halves.yaml", kind, "--trainer.max_steps", str(steps), "--ckpt_path", "last")
    straight = weights(folder / "straight")
    assert_same_weights(straight, weights(folder / "halves"))
    result = run_executable("export", "--ckpt", str(last(folder / "straight")), "--output", str(folder / "export"))
    assert result.returncode == 0, result.stderr[-3000:]
    return straight


# ZeRO-2 with the paged variant covers DeepSpeed with bitsandbytes; DDP the plain 8-bit AdamW.
@pytest.mark.parametrize("kind, optimizer", [("ddp", "adamw8bit"), ("zero2", "paged_adamw8bit")])
def test_8bit_adamw_trains_resumes_exactly_and_exports(kind, optimizer, digit_pages, micro_model_dir, tmp_path):
    pytest.importorskip("bitsandbytes")
    from transformers import GotOcr2ForConditionalGeneration

    trained = fit_halves_and_export(
        tmp_path, digit_pages, micro_model_dir, kind, HALF, model={"optimizer": optimizer, "lr_schedule_steps": HALF}
    )
    losses = logged(tmp_path / "straight", "train/loss")
    assert len(losses) == HALF and losses[-1] < losses[0]
    exported = GotOcr2ForConditionalGeneration.from_pretrained(tmp_path / "export").state_dict()
    for name, tensor in trained.items():
        torch.testing.assert_close(exported[name.removeprefix("got.")], tensor, msg=name)


def test_lora_under_zero2_trains_resumes_and_exports_merged(digit_pages, micro_model_dir, tmp_path):
    pytest.importorskip("peft")
    from transformers import GotOcr2ForConditionalGeneration

    lora = {"lora": {"rank": 4, "alpha": 8, "dropout": 0.0}, "learning_rate": 1e-2, "lr_schedule_steps": HALF}
    trained = fit_halves_and_export(tmp_path, digit_pages, micro_model_dir, "zero2", HALF, model=lora)
    # The language model's base weights are frozen under LoRA and stay out of the checkpoint.
    assert any("lora_" in name for name in trained)
    assert all("lora_" in name or "multi_modal_projector" in name for name in trained)
    exported = GotOcr2ForConditionalGeneration.from_pretrained(tmp_path / "export").eval()
    assert not [name for name in exported.state_dict() if "lora" in name]
    base = load_model(micro_model_dir)
    q_proj = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(exported.state_dict()[q_proj], base.state_dict()[q_proj])  # merged in
    module = module_from_checkpoint(last(tmp_path / "straight"))
    data = datamodule(digit_pages, micro_model_dir, batch_size=4)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    with torch.no_grad():
        stock = exported(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"]
        ).logits
        torch.testing.assert_close(stock, module.logits(batch), rtol=1e-4, atol=1e-4)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fit_on_two_nodes(config_path: Path, *arguments: str) -> None:
    """Two processes on localhost as two single-device nodes, the way torchrun or SLURM set them up."""
    port = str(free_port())
    nodes = []
    for node_rank in (0, 1):
        environment = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NODE_RANK=str(node_rank))
        nodes.append(
            subprocess.Popen(
                [
                    str(executable()),
                    "fit",
                    "--config",
                    str(config_path),
                    *strategy("zero2"),
                    "--trainer.num_nodes",
                    "2",
                    "--trainer.devices",
                    "1",
                    *arguments,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=environment,
            )
        )
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    for node, output in zip(nodes, outputs):
        assert node.returncode == 0, output[-4000:]


@SHARED_RUNS
def test_two_nodes_of_one_device_fit_and_resume_like_two_devices_on_one_node(runs, digit_pages, micro_model_dir, tmp_path):
    path = config(tmp_path, digit_pages, micro_model_dir, "nodes", trainer={"devices": 1, "num_nodes": 2})
    fit_on_two_nodes(path, "--trainer.max_steps", str(HALF))
    assert json.loads((last(tmp_path / "nodes") / COMPLETE_MARK).read_text())["world_size"] == 2
    fit_on_two_nodes(path, "--trainer.max_steps", str(STEPS), "--ckpt_path", "last")
    # Same ranks, batches and reductions; gloo over TCP between "nodes" may sum in another order, and
    # Adam turns that rounding into weight differences of a few 1e-7 (seen: 4.9e-7 on 1 of 2048).
    assert_same_weights(
        weights(runs.straight("zero2")), weights(tmp_path / "nodes"), across_strategies=True, rtol=1e-5, atol=1e-6
    )
    assert logged(tmp_path / "nodes", "train/loss") == pytest.approx(logged(runs.straight("zero2"), "train/loss"), rel=1e-5)


def test_fp16_on_cpu_ranks_is_one_clear_line(digit_pages, micro_model_dir, tmp_path):
    path = config(tmp_path, digit_pages, micro_model_dir, "fp16", trainer={"precision": "16-mixed"})
    result = run_executable("fit", "--config", str(path), *strategy("zero2"), "--trainer.max_steps", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "DeepSpeed's CPU accelerator has no fp16; use bf16-mixed" in result.stderr.strip().splitlines()[-1]


@SHARED_RUNS
def test_validate_last_of_a_zero_run_scores_its_trained_weights_on_one_process_or_its_ranks(runs, tmp_path):
    zero, ddp = runs.straight("zero2"), runs.straight("ddp")
    validate = ["--trainer.limit_val_batches", "1.0", "--trainer.logger", "false"]

    def loss(root: Path, out: Path, *arguments: str) -> float:
        result = run_executable(
            "validate",
            "--config",
            str(root.with_suffix(".yaml")),
            "--ckpt_path",
            "last",
            "--trainer.default_root_dir",
            str(root),
            *validate,
            *arguments,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"--ckpt_path last: using {last(root)}" in result.stderr
        metrics = json.loads((root / "metrics.json").read_text())
        (root / "metrics.json").rename(out)
        return metrics["loss"]

    trained = loss(ddp, tmp_path / "ddp.json", "--trainer.devices", "1")
    one_process = loss(zero, tmp_path / "one.json", "--trainer.devices", "1")  # the ZeRO directory, consolidated
    on_ranks = loss(zero, tmp_path / "ranks.json", *strategy("zero2"))
    assert one_process == pytest.approx(trained, rel=1e-4) and on_ranks == pytest.approx(trained, rel=1e-4)
    base = run_executable(
        "validate",
        "--config",
        str(zero.with_suffix(".yaml")),
        "--trainer.default_root_dir",
        str(tmp_path / "base"),
        *validate,
        "--trainer.devices",
        "1",
    )
    assert base.returncode == 0 and json.loads((tmp_path / "base" / "metrics.json").read_text())["loss"] != pytest.approx(
        trained, rel=1e-3
    )
