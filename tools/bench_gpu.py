"""GPU training throughput of a real-size GOT (random weights, 580M) in bf16: tokens/s, MFU and
peak memory for `got-lightning fit` with `strategy: auto` and DeepSpeed ZeRO-2, with and without
gradient checkpointing, SDPA or flash attention, optional `torch.compile`; and for a plain
transformers `Trainer` on the same batches. Pages: one 1024-px tile (256 image tokens) and about
1000 answer tokens each. Every run is its own process (clean peak memory, no DeepSpeed state
left behind); runs that cannot happen here are listed with the reason.

    python tools/bench_gpu.py                          # on the GPU machine
    python tools/bench_gpu.py --runs ours_auto,trainer --steps 20
    python tools/bench_gpu.py --device cpu --preset micro --steps 3 --skip 1 --batch_size 2   # wiring check

MFU = FLOPs of one training step (forward and backward as run without recomputation, counted by
`torch.utils.flop_counter` on the first batch) x steps/s / the GPU's dense bf16 peak.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from bench_common import emit, generated_pages
from bench_train import StepLog, run_fit, run_trainer
from jsonargparse import CLI
from torch.utils.flop_counter import FlopCounterMode
from transformers import TrainingArguments

from got_lightning.data.config import DatasetSpec
from got_lightning.data.datamodule import GotDataModule
from got_lightning.data.synthetic import PageStyle
from got_lightning.model.loading import init_model_dir
from got_lightning.module import GotLightningModule

# 40 lines of 25 digits on a 1024-px page: about 1000 answer tokens (one token per digit).
LONG_PAGES = PageStyle(width=1024, height=1024, font_size=18, lines=40, min_chars=25, max_chars=25)
ZERO2 = {
    "class_path": "got_lightning.training.strategies.GotDeepSpeedStrategy",
    "init_args": {"config": "zero_config/zero2.json"},
}
# Dense bf16 peak, TFLOP/s, by device name.
PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}
RUNS = {
    "ours_auto": {"trainer": "ours", "strategy": "auto"},
    "ours_auto_gc": {"trainer": "ours", "strategy": "auto", "gradient_checkpointing": True},
    "ours_auto_flash": {"trainer": "ours", "strategy": "auto", "attn_implementation": "flash_attention_2"},
    "ours_auto_compile": {"trainer": "ours", "strategy": "auto", "compile": True},
    "ours_zero2": {"trainer": "ours", "strategy": "zero2"},
    "ours_zero2_gc": {"trainer": "ours", "strategy": "zero2", "gradient_checkpointing": True},
    "trainer": {"trainer": "transformers"},
    "trainer_gc": {"trainer": "transformers", "gradient_checkpointing": True},
}


def not_possible(run: dict, device: str) -> str | None:
    """Why a run cannot happen on this machine, or None."""
    if run.get("strategy") == "zero2" and device != "cuda":
        return "DeepSpeed needs a CUDA GPU"
    if run.get("strategy") == "zero2" and importlib.util.find_spec("deepspeed") is None:
        return "deepspeed is not installed"
    if run.get("attn_implementation") == "flash_attention_2" and (
        device != "cuda" or importlib.util.find_spec("flash_attn") is None
    ):
        return "flash attention needs the flash-attn package and a CUDA GPU"
    return None


def peak_tflops(device: str, override: float | None) -> float | None:
    if override is not None or device != "cuda":
        return override
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_TFLOPS.items() if key in name), None)


def step_flops(model: str, annotations: str, image_root: str | None, batch_size: int, device: str) -> int:
    """FLOPs of one forward and backward on the first batch (frozen tower: forward only)."""
    module = GotLightningModule(model).to(device).train()
    data = GotDataModule(
        [DatasetSpec("bench", annotations, image_root)], batch_size=batch_size, num_workers=0, seed=0, model_path=model
    )
    data.setup("fit")
    batch = {
        key: value.to(device) if torch.is_tensor(value) else value for key, value in next(iter(data.train_dataloader())).items()
    }
    with FlopCounterMode(display=False) as counter, torch.autocast(device, dtype=torch.bfloat16):
        loss_sum, count = module.loss_sum(batch)
        (loss_sum / count).backward()
    del module, batch
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()  # the runs are other processes: give them this one's memory back
    return counter.get_total_flops()


def _ours(settings: dict, run: dict, folder: Path) -> StepLog:
    model = {
        "learning_rate": 1e-5,
        "warmup_ratio": 0.0,
        "gradient_checkpointing": run.get("gradient_checkpointing", False),
        "attn_implementation": run.get("attn_implementation", "sdpa"),
        "compile": run.get("compile", False),
    }
    trainer = {
        "accelerator": "gpu" if settings["device"] == "cuda" else "cpu",
        "precision": "bf16-mixed",
        "strategy": ZERO2 if run.get("strategy") == "zero2" else "auto",
        "logger": False,
    }
    return run_fit(settings, folder, model, trainer)


def _trainer(settings: dict, run: dict, folder: Path) -> StepLog:
    arguments = TrainingArguments(
        output_dir=str(folder / "run"),
        max_steps=settings["steps"],
        learning_rate=1e-5,
        weight_decay=0.0,
        max_grad_norm=1.0,
        bf16=True,
        gradient_checkpointing=run.get("gradient_checkpointing", False),
        save_strategy="no",
        report_to="none",
        use_cpu=settings["device"] != "cuda",
        seed=0,
        logging_steps=10,
    )
    return run_trainer(settings, arguments)


def one(spec: str, output: str) -> None:
    """Run one configuration (`spec`: JSON of settings and run) and write its figures to `output`."""
    settings, run = json.loads(spec)
    with tempfile.TemporaryDirectory() as folder:
        log = (_ours if run["trainer"] == "ours" else _trainer)(settings, run, Path(folder))
    summary = log.summary(settings["skip"])
    steps = len(log.times) - settings["skip"]
    summary["steps_per_s"] = steps / (log.times[-1] - log.times[settings["skip"] - 1])
    summary["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if settings["device"] == "cuda" else None
    Path(output).write_text(json.dumps(summary))


def compare(
    model: str | None = None,
    annotations: str | None = None,
    image_root: str | None = None,
    preset: str = "got",
    device: str = "cuda",
    pages: int = 64,
    batch_size: int = 8,
    steps: int = 30,
    skip: int = 5,
    num_workers: int = 4,
    runs: str = ",".join(RUNS),
    peak_tflops_override: float | None = None,
) -> None:
    """Every run in `runs`, one after another, then the table and the JSON lines.

    Args:
        model: Model directory (default: a random model of `preset`, seed 0).
        annotations: Training annotation file (default: generated 1024-px pages of ~1000 tokens).
        image_root: Image folder of `annotations`.
        preset: Size preset of the default model (`got`: the real 580M layout).
        device: `cuda`, or `cpu` to check the wiring (no MFU, no DeepSpeed).
        pages: Pages generated when no annotation file is given.
        batch_size: Samples per step on the one device (no accumulation).
        steps: Optimizer steps per run.
        skip: Steps left out of the timing at the start (compilation, allocator warm-up).
        num_workers: Data loader workers, the same for every run.
        runs: Comma-separated names among: ours_auto, ours_auto_gc, ours_auto_flash,
            ours_auto_compile, ours_zero2, ours_zero2_gc, trainer, trainer_gc.
        peak_tflops_override: The device's dense bf16 peak in TFLOP/s (default: known GPUs by name).
    """
    chosen = [name.strip() for name in runs.split(",")]
    unknown = [name for name in chosen if name not in RUNS]
    if unknown:
        raise ValueError(f"unknown runs {unknown}; choose among {', '.join(RUNS)}")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model = model or str(init_model_dir(preset, folder / "model"))
        annotations = annotations or generated_pages(folder, pages, LONG_PAGES)
        settings = {
            "model": model,
            "annotations": annotations,
            "image_root": image_root,
            "device": device,
            "batch_size": batch_size,
            "steps": steps,
            "skip": skip,
            "num_workers": num_workers,
        }
        flops = step_flops(model, annotations, image_root, batch_size, device)
        peak = peak_tflops(device, peak_tflops_override)
        results: dict[str, dict | str] = {}
        for name in chosen:
            reason = not_possible(RUNS[name], device)
            if reason:
                results[name] = reason
                continue
            output = folder / f"{name}.json"
            command = [sys.executable, __file__, "one", "--spec", json.dumps([settings, RUNS[name]]), "--output", str(output)]
            finished = subprocess.run(command, cwd=Path(__file__).resolve().parent.parent)
            results[name] = json.loads(output.read_text()) if finished.returncode == 0 else f"failed (exit {finished.returncode})"
    report(results, flops, peak, batch_size)


def report(results: dict[str, dict | str], flops: int, peak: float | None, batch_size: int) -> None:
    finished = {name: figures for name, figures in results.items() if isinstance(figures, dict)}
    mfu = {name: flops * figures["steps_per_s"] / (peak * 1e12) if peak else None for name, figures in finished.items()}
    print(f"{flops / batch_size / 1e12:.2f} TFLOP per sample per training step; peak {peak or 'unknown'} TFLOP/s")
    print(f"{'run':20s} {'tokens/s':>10s} {'samples/s':>10s} {'MFU':>6s} {'peak GiB':>9s} {'last loss':>10s}")
    for name, figures in results.items():
        if name not in finished:
            print(f"{name:20s} not run: {figures}")
            continue
        shown_mfu = f"{mfu[name]:.1%}" if mfu[name] is not None else "-"
        memory = f"{figures['peak_gib']:.1f}" if figures["peak_gib"] is not None else "-"
        print(
            f"{name:20s} {figures['tokens_per_s']:10.0f} {figures['samples_per_s']:10.2f} {shown_mfu:>6s} {memory:>9s} {figures['last_losses']:10.4f}"
        )
    for name, figures in finished.items():
        if not name.startswith("ours"):
            continue
        baseline = "trainer_gc" if name.endswith("_gc") else "trainer"
        emit(
            f"gpu_{name}_vs_{baseline}",
            figures["tokens_per_s"],
            finished[baseline]["tokens_per_s"] if baseline in finished else None,
            "supervised tokens/s",
            mfu=mfu[name],
            peak_gib=figures["peak_gib"],
            baseline_mfu=mfu.get(baseline),
        )


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    CLI([compare, one], as_positional=False)
