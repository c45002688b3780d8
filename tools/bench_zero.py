"""What each rank holds, and what the real-size recipe costs, on CPU ranks.

`memory`: optimizer-state bytes and peak RSS per rank for DDP, ZeRO-2 and ZeRO-3 at 1 and 2 ranks
(DeepSpeed's CPU accelerator, gloo), one optimizer step of `got-lightning fit` on a preset's random
model and generated pages. ZeRO should hold about 1/ranks of DDP's optimizer state per rank.

`dry-run`: the README's rehearsal of the guji recipe (`configs/guji.yaml` + `configs/dry-run.yaml`):
fit 2 optimizer steps, resume one more with `--ckpt_path last`, export; wall time of each command
and peak RSS per rank.

    python tools/bench_zero.py memory --presets tiny,got
    python tools/bench_zero.py dry-run --workdir /tmp/dry-run

Each `got-lightning` command runs in its own process tree with `MemoryProbe` (this file, found
through PYTHONPATH) added to the trainer's callbacks; every rank writes what it measured.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import yaml
from bench_common import emit, generated_pages
from jsonargparse import CLI

REPO = Path(__file__).resolve().parents[1]
TOOLS = Path(__file__).resolve().parent
STRATEGIES = {
    "ddp": {"class_path": "lightning.pytorch.strategies.DDPStrategy", "init_args": {"gradient_as_bucket_view": True}},
    "zero2": {
        "class_path": "got_lightning.training.strategies.GotDeepSpeedStrategy",
        "init_args": {"config": str(REPO / "zero_config/zero2.json")},
    },
    "zero3": {
        "class_path": "got_lightning.training.strategies.GotDeepSpeedStrategy",
        "init_args": {"config": str(REPO / "zero_config/zero3.json")},
    },
}


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))


def optimizer_bytes(optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Adam moments of this rank, and the fp32 master weights DeepSpeed keeps beside the model's
    own (ZeRO-2: `single_partition_of_fp32_groups`, ZeRO-3: `fp32_partitioned_groups_flat`)."""
    inner = getattr(optimizer, "optimizer", optimizer)
    moments = tensor_bytes(value for state in inner.state.values() for key, value in state.items() if key != "step")
    masters = (
        getattr(optimizer, "single_partition_of_fp32_groups", None)
        or getattr(optimizer, "fp32_partitioned_groups_flat", None)
        or []
    )
    return {"optimizer_state_bytes": moments, "master_weight_bytes": tensor_bytes(masters)}


class MemoryProbe(L.Callback):
    """Writes `<output>.rank<N>.json` when training ends: optimizer bytes, peak RSS, training time."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.started = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "strategy": type(trainer.strategy).__name__,
            "trainable_parameters": sum(getattr(p, "ds_numel", p.numel()) for p in pl_module.parameters() if p.requires_grad),
            "train_seconds": time.perf_counter() - self.started,
            "global_step": trainer.global_step,
            **optimizer_bytes(trainer.optimizers[0]),
            # Linux reports kilobytes; this process only (ranks are separate processes).
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }
        Path(f"{self.output}.rank{trainer.global_rank}.json").write_text(json.dumps(record), encoding="utf-8")


def probed(output: Path) -> list[str]:
    probe = {"class_path": "bench_zero.MemoryProbe", "init_args": {"output": str(output)}}
    return ["--trainer.callbacks+=" + json.dumps(probe)]


def run_command(arguments: list[str], cwd: Path) -> float:
    """Run `got-lightning ARGUMENTS` (tools/ on PYTHONPATH for the probe); its wall time."""
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TOOLS), os.environ.get("PYTHONPATH")])))
    executable = Path(sys.executable).parent / "got-lightning"
    started = time.perf_counter()
    result = subprocess.run([str(executable), *arguments], cwd=cwd, env=environment, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"got-lightning {' '.join(arguments)} failed:\n{result.stderr[-4000:]}")
    return seconds


def read_ranks(output: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(output.parent.glob(f"{output.name}.rank*.json"))]


def gib(value: float) -> str:
    return f"{value / 2**30:.2f}"


def memory_config(folder: Path, preset: str, pages: str) -> Path:
    config = {
        "validate_before_fit": False,
        "seed_everything": 0,
        "model": {
            "model_path": str(folder / f"model-{preset}"),
            "init_preset": preset,
            "gradient_checkpointing": True,
            "vision_batch_size": 1,
            "learning_rate": 1e-5,
        },
        "data": {"datasets": [{"name": "bench", "annotations": pages}], "batch_size": 1, "num_workers": 0},
        "trainer": {
            "accelerator": "cpu",
            "max_steps": 1,
            "max_epochs": -1,
            "logger": False,
            "enable_progress_bar": False,
            "limit_val_batches": 0,
            "num_sanity_val_steps": 0,
            "precision": "bf16-mixed",
            "default_root_dir": str(folder / "run"),
        },
        "checkpoint": {"save_last": False, "every_n_train_steps": 1000},
    }
    path = folder / f"{preset}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def memory(presets: str = "tiny,got", strategies: str = "ddp,zero2,zero3", ranks: str = "1,2", pages: int = 4) -> None:
    """Optimizer state and peak RSS per rank, one bf16-mixed optimizer step per run."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        annotations = generated_pages(folder, pages)
        print(
            f"{'preset':8s} {'strategy':8s} {'ranks':>5s} {'trainable':>11s} {'optimizer GiB/rank':>18s} "
            f"{'+ fp32 master':>13s} {'peak RSS GiB/rank':>17s}"
        )
        for preset in presets.split(","):
            config = memory_config(folder, preset, annotations)
            baseline = None
            for strategy in strategies.split(","):
                for count in map(int, ranks.split(",")):
                    output = folder / f"probe-{preset}-{strategy}-{count}"
                    run_command(
                        [
                            "fit",
                            "--config",
                            str(config),
                            "--trainer.devices",
                            str(count),
                            "--trainer.strategy",
                            json.dumps(STRATEGIES[strategy]),
                            *probed(output),
                        ],
                        folder,
                    )
                    measured = read_ranks(output)
                    state = max(rank["optimizer_state_bytes"] for rank in measured)
                    master = max(rank["master_weight_bytes"] for rank in measured)
                    peak = max(rank["peak_rss_bytes"] for rank in measured)
                    print(
                        f"{preset:8s} {strategy:8s} {count:5d} {measured[0]['trainable_parameters']:11,d} {gib(state):>18s} "
                        f"{gib(master):>13s} {gib(peak):>17s}",
                        flush=True,
                    )
                    if strategy == "ddp" and count == 1:
                        baseline = state
                    if baseline:
                        emit(
                            f"zero_memory_{preset}_{strategy}_{count}",
                            state,
                            baseline,
                            "optimizer-state bytes per rank",
                            peak_rss_bytes=peak,
                            master_weight_bytes=master,
                        )


def dry_run(workdir: str, steps: int = 2) -> None:
    """The README's dry run of the guji recipe, timed, with peak RSS per rank."""
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    recipe = ["--config", str(REPO / "configs/guji.yaml"), "--config", str(REPO / "configs/dry-run.yaml")]
    commands = {
        "fit": ["fit", *recipe],
        "resume": ["fit", *recipe, "--trainer.max_steps", str(steps + 1), "--ckpt_path", "last"],
    }
    for name, arguments in commands.items():
        output = folder / f"probe-{name}"
        seconds = run_command([*arguments, *probed(output)], folder)
        for rank in read_ranks(output):
            print(
                f"{name:7s} rank {rank['rank']}: {seconds:7.1f} s command, {rank['train_seconds']:7.1f} s training to step "
                f"{rank['global_step']}, peak RSS {gib(rank['peak_rss_bytes'])} GiB, optimizer state "
                f"{gib(rank['optimizer_state_bytes'])} GiB + fp32 master {gib(rank['master_weight_bytes'])} GiB",
                flush=True,
            )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    seconds = run_command(
        ["export", "--ckpt", "runs/dry-run/run/checkpoints/last.ckpt", "--output", "runs/dry-run/export"], folder
    )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"export: {seconds:7.1f} s, peak RSS {gib(peak * 1024) if peak > before else 'at most the fit ranks'} GiB")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    CLI([memory, dry_run], as_positional=False)
