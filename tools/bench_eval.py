"""Held-out CER run: our batched generation vs one-by-one generation (upstream's eval loop style)
on the same samples, with the predictions compared. Prints a table line and one JSON line.

    python tools/bench_eval.py                                     # tiny random model, generated pages
    python tools/bench_eval.py --model DIR --annotations FILE --image_root DIR
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from bench_common import emit, generated_pages
from jsonargparse import CLI

from got_lightning.data.collate import Collator
from got_lightning.data.config import DatasetSpec
from got_lightning.data.datamodule import GotDataModule
from got_lightning.evaluation.results import read_predictions
from got_lightning.generation.greedy import decode, generate_one_page
from got_lightning.model.loading import init_model_dir
from got_lightning.module import GotLightningModule


def _batched(module: GotLightningModule, data: GotDataModule, root: Path) -> tuple[float, list[str]]:
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
    )
    start = time.perf_counter()
    trainer.validate(module, datamodule=data, verbose=False)
    seconds = time.perf_counter() - start
    return seconds, [row["prediction_raw"] for row in read_predictions(root / "predictions.jsonl")]


def _one_by_one(module: GotLightningModule, data: GotDataModule) -> tuple[float, list[str]]:
    """Each page on its own: build the sample, `generate` at batch 1, decode."""
    model, collate = module.got.eval(), Collator()
    predictions = []
    start = time.perf_counter()
    for position in range(len(data.val_dataset)):
        answer = generate_one_page(model, collate([data.val_dataset[position]]), module.generation)
        predictions.append(decode(module.tokenizer, answer))
    return time.perf_counter() - start, predictions


def main(
    model: str | None = None,
    annotations: str | None = None,
    image_root: str | None = None,
    pages: int = 48,
    eval_batch_size: int = 8,
    max_new_tokens: int = 48,
    preset: str = "tiny",
    repeats: int = 3,
    no_repeat_ngram_size: int = 20,
) -> None:
    """Time both on the same held-out samples (alternating, median of `repeats`) and check the
    predictions are identical.

    Args:
        model: Model directory (default: a random model of `preset`, seed 0).
        annotations: Held-out annotation file (default: generated digit pages).
        image_root: Image folder of `annotations`.
        pages: Pages generated when no annotation file is given.
        eval_batch_size: Our evaluation batch size.
        max_new_tokens: Longest answer generated.
        preset: Size preset of the default model.
        repeats: Timed runs of each, alternated.
        no_repeat_ngram_size: n-gram blocking on both sides (upstream's default 20; 0 turns it off).
    """
    torch.set_float32_matmul_precision("highest")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model = model or str(init_model_dir(preset, folder / "model"))
        if annotations is None:
            annotations = generated_pages(folder, pages)
        spec = DatasetSpec("bench", annotations, image_root, val_annotations=annotations, val_image_root=image_root)
        data = GotDataModule([spec], eval_batch_size=eval_batch_size, model_path=model)
        data.setup("validate")
        module = GotLightningModule(
            model, generation={"max_new_tokens": max_new_tokens, "no_repeat_ngram_size": no_repeat_ngram_size}
        )
        one_times, batched_times = [], []
        for run in range(repeats):
            one_seconds, one_predictions = _one_by_one(module, data)
            batched_seconds, batched_predictions = _batched(module, data, folder / f"ours-{run}")
            one_times.append(one_seconds)
            batched_times.append(batched_seconds)
    one_seconds, batched_seconds = statistics.median(one_times), statistics.median(batched_times)
    count = len(one_predictions)
    same = sum(a == b for a, b in zip(batched_predictions, one_predictions))
    ours, baseline = count / batched_seconds, count / one_seconds
    print(
        f"{count} pages, max {max_new_tokens} new tokens, no_repeat_ngram_size {no_repeat_ngram_size}, median of {repeats}: batch {eval_batch_size} {ours:.2f} pages/s, "
        f"one by one {baseline:.2f} pages/s, x{ours / baseline:.2f}; identical predictions {same}/{count}"
    )
    emit(f"eval_batch{eval_batch_size}_vs_one_by_one_ngram{no_repeat_ngram_size}", ours, baseline, "pages/s")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    CLI(main, as_positional=False)
