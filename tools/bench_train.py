"""Training benchmarks, printed as a table and one JSON line per comparison.

`throughput`: `got-lightning fit` vs a plain transformers `Trainer` on the same model, the same
collated batches in the same order and the same optimizer settings (CPU), with both runs' losses
to show they do the same work. Measured between the end of optimizer step `skip` and the end of
the last step, so start-up and the final checkpoint are left out of both.

`cache`: two epochs with and without `cache_vision_features` (frozen tower): epoch-2 time and the
per-step losses of both runs.

    python tools/bench_train.py throughput            # tiny model, generated digit pages
    python tools/bench_train.py throughput --model DIR --annotations FILE --image_root DIR
    python tools/bench_train.py cache --pages 8
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import yaml
from bench_common import emit, generated_pages
from jsonargparse import CLI
from transformers import Trainer, TrainerCallback, TrainingArguments

from got_lightning.cli import main as got_lightning
from got_lightning.data.config import DatasetSpec
from got_lightning.data.datamodule import GotDataModule
from got_lightning.data.synthetic import PageStyle
from got_lightning.model.loading import init_model_dir, load_model
from got_lightning.model.optim import warmup_steps_for
from got_lightning.module import GotLightningModule
from got_lightning.tokens import IGNORE_INDEX


class StepLog:
    """Per optimizer step: end time, samples, supervised tokens and loss."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.samples: list[int] = []
        self.tokens: list[int] = []
        self.losses: list[float] = []

    def count(self, batch: dict, loss: torch.Tensor) -> None:
        self.samples.append(int(batch["input_ids"].shape[0]))
        self.tokens.append(int((batch["labels"][:, 1:] != IGNORE_INDEX).sum()))
        self.losses.append(float(loss.detach()))

    def summary(self, skip: int) -> dict:
        seconds = self.times[-1] - self.times[skip - 1]
        return {
            "samples_per_s": sum(self.samples[skip:]) / seconds,
            "tokens_per_s": sum(self.tokens[skip:]) / seconds,
            "first_loss": self.losses[0],
            "last_losses": sum(self.losses[-10:]) / len(self.losses[-10:]),
        }

    def save(self, path: str) -> None:
        Path(path).write_text(json.dumps(vars(self)))


class StepTimer(L.Callback):
    """Lightning side: writes its StepLog to `output` when training ends."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.steps = StepLog()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.count(batch, outputs["loss"])
        self.steps.times.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module) -> None:
        self.steps.save(self.output)


class _TimeSteps(TrainerCallback):
    def __init__(self, steps: StepLog) -> None:
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs) -> None:
        self.steps.times.append(time.perf_counter())


class SameBatchesTrainer(Trainer):
    """A stock Trainer fed our loader (same batches, same order) and the model's own loss."""

    def __init__(self, *args, loader, log: StepLog, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.loader = loader
        self.step_log = log
        self.add_callback(_TimeSteps(log))

    def get_train_dataloader(self):
        return self.loader

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        keys = ("input_ids", "attention_mask", "pixel_values", "labels")
        outputs = model(**{key: inputs[key] for key in keys})
        self.step_log.count(inputs, outputs.loss)
        return (outputs.loss, outputs) if return_outputs else outputs.loss


def run_fit(settings: dict, folder: Path, model: dict, trainer: dict) -> StepLog:
    """`got-lightning fit` on the settings' model and data (`model` and `trainer` options added),
    timed by a StepTimer, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    steps_file = folder / "steps.json"
    config = {
        "validate_before_fit": False,
        "seed_everything": 0,
        "model": {"model_path": settings["model"], "val_generate": False, **model},
        "data": {
            "datasets": [{"name": "bench", "annotations": settings["annotations"], "image_root": settings["image_root"]}],
            "batch_size": settings["batch_size"],
            "num_workers": settings["num_workers"],
            "seed": 0,
        },
        "trainer": {
            "devices": 1,
            "max_steps": settings["steps"],
            "max_epochs": -1,
            "limit_val_batches": 0,
            "gradient_clip_val": 1.0,
            "default_root_dir": str(folder / "run"),
            "callbacks": [{"class_path": f"{Path(__file__).stem}.StepTimer", "init_args": {"output": str(steps_file)}}],
            **trainer,
        },
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    if got_lightning(["fit", "--config", str(path)]) != 0:
        raise RuntimeError("got-lightning fit failed")
    log = StepLog()
    vars(log).update(json.loads(steps_file.read_text()))
    return log


def run_trainer(settings: dict, arguments: TrainingArguments) -> StepLog:
    """A stock transformers Trainer on the settings' model (tower frozen) fed our loader: the same
    batches in the same order as `fit`."""
    spec = DatasetSpec("bench", settings["annotations"], settings["image_root"])
    data = GotDataModule(
        [spec], batch_size=settings["batch_size"], num_workers=settings["num_workers"], seed=0, model_path=settings["model"]
    )
    data.setup("fit")
    L.seed_everything(0, verbose=False)
    model = load_model(settings["model"])
    model.model.vision_tower.requires_grad_(False)
    log = StepLog()
    SameBatchesTrainer(model=model, args=arguments, loader=data.train_dataloader(), log=log).train()
    return log


def _ours(folder: Path, settings: dict, run: int) -> dict:
    model = {
        "learning_rate": settings["lr"],
        "warmup_ratio": settings["warmup_ratio"],
        "weight_decay": 0.0,
        "lr_scheduler": "cosine",
    }
    trainer = {"accelerator": "cpu", "log_every_n_steps": 10}
    return run_fit(settings, folder / f"ours-{run}", model, trainer).summary(settings["skip"])


def _transformers(folder: Path, settings: dict, run: int) -> dict:
    arguments = TrainingArguments(
        output_dir=str(folder / f"transformers-{run}"),
        max_steps=settings["steps"],
        learning_rate=settings["lr"],
        lr_scheduler_type="cosine",
        warmup_steps=warmup_steps_for(settings["steps"], settings["warmup_ratio"]),
        weight_decay=0.0,
        max_grad_norm=1.0,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        disable_tqdm=False,
    )
    return run_trainer(settings, arguments).summary(settings["skip"])


class EpochTimer(L.Callback):
    """Wall time of each training epoch and the loss of every step."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.losses: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def _two_epochs(model: str, annotations: str, image_root: str | None, batch_size: int, cached: bool, root: Path) -> EpochTimer:
    L.seed_everything(0, verbose=False)
    module = GotLightningModule(model, cache_vision_features=cached, learning_rate=1e-5, warmup_ratio=0.0, val_generate=False)
    data = GotDataModule(
        [DatasetSpec("bench", annotations, image_root)], batch_size=batch_size, num_workers=0, seed=0, model_path=model
    )
    timer = EpochTimer()
    L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=str(root),
        callbacks=[timer],
    ).fit(module, data)
    del module, data
    gc.collect()  # the next run's model must not share memory with this one's
    return timer


def cache(
    model: str | None = None,
    annotations: str | None = None,
    image_root: str | None = None,
    preset: str = "encoder1024",
    pages: int = 8,
    batch_size: int = 2,
) -> None:
    """Epoch-2 speedup of the frozen-encoder feature cache, and the losses with and without it.

    Args:
        model: Model directory (default: a random model of `preset`, seed 0: the real 1024-px encoder
            with the tiny decoder; `got` is the whole real-size model, 16+ GiB to train on CPU).
        annotations: Training annotation file (default: generated digit pages).
        image_root: Image folder of `annotations`.
        preset: Size preset of the default model.
        pages: Pages generated when no annotation file is given.
        batch_size: Batch size.
    """
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model = model or str(init_model_dir(preset, folder / "model"))
        if annotations is None:
            annotations = generated_pages(
                folder, pages, PageStyle(width=1024, height=1400, font_size=40, lines=20, min_chars=20, max_chars=24)
            )
        plain = _two_epochs(model, annotations, image_root, batch_size, False, folder / "plain")
        cached = _two_epochs(model, annotations, image_root, batch_size, True, folder / "cached")
    difference = max(abs(a - b) for a, b in zip(plain.losses, cached.losses))
    print(
        f"epoch seconds without cache {plain.seconds[0]:.1f}, {plain.seconds[1]:.1f}; with cache "
        f"{cached.seconds[0]:.1f}, {cached.seconds[1]:.1f}; largest per-step loss difference {difference:.3g} "
        f"over {len(plain.losses)} steps"
    )
    emit(
        "feature_cache_epoch2",
        cached.seconds[1],
        plain.seconds[1],
        "s per epoch (ratio = speedup)",
        ratio=plain.seconds[1] / cached.seconds[1],
        max_loss_difference=difference,
    )


def throughput(
    model: str | None = None,
    annotations: str | None = None,
    image_root: str | None = None,
    pages: int = 400,
    steps: int = 60,
    skip: int = 5,
    batch_size: int = 8,
    num_workers: int = 1,
    lr: float = 1e-3,
    warmup_ratio: float = 0.1,
    repeats: int = 2,
) -> None:
    """Alternate the two trainers `repeats` times and report the median of each.

    Args:
        model: Model directory (default: the `tiny` preset, seed 0).
        annotations: Training annotation file (default: generated digit pages).
        image_root: Image folder of `annotations`.
        pages: Pages generated when no annotation file is given.
        steps: Optimizer steps per run.
        skip: Steps left out of the timing at the start.
        batch_size: Batch size (no accumulation).
        num_workers: Data loader workers, the same for both.
        lr: Peak learning rate (cosine schedule, linear warmup).
        warmup_ratio: Share of the steps spent warming up.
        repeats: Runs of each trainer, alternated.
    """
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if annotations is None:
            annotations = generated_pages(folder, pages)
        settings = {
            "model": model or str(init_model_dir("tiny", folder / "model")),
            "annotations": annotations,
            "image_root": image_root,
            "steps": steps,
            "skip": skip,
            "batch_size": batch_size,
            "num_workers": num_workers,
            "lr": lr,
            "warmup_ratio": warmup_ratio,
        }
        runs: dict[str, list[dict]] = {"ours": [], "transformers": []}
        for run in range(repeats):
            runs["ours"].append(_ours(folder, settings, run))
            runs["transformers"].append(_transformers(folder, settings, run))
    median = {name: {key: statistics.median(r[key] for r in results) for key in results[0]} for name, results in runs.items()}
    ours, theirs = median["ours"], median["transformers"]
    print(f"{steps} steps of batch {batch_size}, timed after step {skip}, median of {repeats} alternating runs")
    print(f"{'':14s} {'samples/s':>10s} {'tokens/s':>10s} {'first loss':>11s} {'last-10 loss':>13s}")
    for name, figures in median.items():
        print(
            f"{name:14s} {figures['samples_per_s']:10.2f} {figures['tokens_per_s']:10.1f} "
            f"{figures['first_loss']:11.4f} {figures['last_losses']:13.4f}"
        )
    for key, unit in (("samples_per_s", "samples/s"), ("tokens_per_s", "supervised tokens/s")):
        emit(
            f"train_{key}",
            ours[key],
            theirs[key],
            unit,
            loss_ours=round(ours["last_losses"], 4),
            loss_baseline=round(theirs["last_losses"], 4),
        )


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    CLI([throughput, cache], as_positional=False)
