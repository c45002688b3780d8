"""What `got-lightning data check` and `data show` do: read every record and image, or build one sample
exactly as the model gets it, and report it."""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.progress import track
from rich.table import Table
from rich.text import Text
from torch.utils.data import DataLoader

from got_lightning.commands.config_file import linked_data_section, read_sections
from got_lightning.core.errors import InputFileError, SettingError
from got_lightning.core.options import as_options
from got_lightning.data.config import DatasetSpec
from got_lightning.data.datamodule import GotDataModule
from got_lightning.data.dataset import GotDataset, index_datasets, source_entries
from got_lightning.data.errors import Problem
from got_lightning.data.images.pixels import CLIP_MEAN, CLIP_STD
from got_lightning.model.loading import ensure_model_dir
from got_lightning.tokens import IGNORE_INDEX, IMG_PAD_ID

PERCENTILES = (50, 90, 99, 100)


def _data_module(args: argparse.Namespace) -> GotDataModule:
    if args.config:
        data, model = read_sections(args.config)
        if model.get("model_path") and not args.model_path:
            ensure_model_dir(model["model_path"], model.get("init_preset"), model.get("init_seed", 0))
    elif args.annotations:
        spec = {"name": Path(args.annotations).stem, "annotations": args.annotations, "image_root": args.image_root}
        data = {"datasets": [{**spec, "format": args.format or "auto"}]}
        model = {}
    else:
        raise SettingError("give --config CFG or --annotations FILE [--image-root DIR]")
    data = linked_data_section(data, model, {"model_path": args.model_path, "revision": args.revision})
    if args.image_mode:
        data["image_mode"] = args.image_mode
    data["datasets"] = [as_options(DatasetSpec, spec) for spec in data.get("datasets", [])]
    data["strict"] = False
    if args.allow_outside_root:
        data["allow_outside_root"] = True
    module = GotDataModule(**data)
    module.prepare_data()
    return module


def _all_records(module: GotDataModule) -> tuple[GotDataset, list[Problem], int]:
    """Every record of every annotation file, split or not; index-time problems separately."""
    indexed = index_datasets(module.specs)
    sources = [source for dataset in indexed for source in dataset.sources]
    problems = [problem for dataset in indexed for problem in dataset.problems]
    entries = [source_entries(number, source.index.valid_positions) for number, source in enumerate(sources)]
    records = sum(len(source.index) for source in sources)
    return GotDataset(sources, np.concatenate(entries), module.builder), problems, records


class _SampleStats:
    """Builds each sample in a worker and returns only its summary, so memory stays bounded."""

    def __init__(self, dataset: GotDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int) -> dict:
        sample = self.dataset.build(item, pixels=False)
        if isinstance(sample, Problem):
            return {"problem": sample}
        return {
            "tokens": len(sample["input_ids"]),
            "supervised": int((sample["labels"] != IGNORE_INDEX).sum()),
            "tiles": sample["num_tiles"],
            "sizes": sample["image_sizes"],
            "truncated": sample["truncated"],
            "notes": sample["notes"],
        }


def check(args: argparse.Namespace, console: Console) -> int:
    module = _data_module(args)
    dataset, problems, records = _all_records(module)
    loader = DataLoader(_SampleStats(dataset), batch_size=None, num_workers=args.workers)
    tokens, tiles, widths, heights, truncated = [], [], [], [], 0
    notes = Counter()
    for source in dataset.sources:
        notes.update({f"{source.name}: {note}": count for note, count in source.index.notes.items()})
    for summary in track(loader, description="checking records", console=console, disable=args.json):
        if "problem" in summary:
            problems.append(summary["problem"])
            continue
        tokens.append(summary["tokens"])
        tiles.append(summary["tiles"])
        widths += [w for w, _ in summary["sizes"]]
        heights += [h for _, h in summary["sizes"]]
        truncated += summary["truncated"]
        notes.update(_reason_kind(note) for note in summary["notes"])
    problems.sort(key=lambda p: (p.dataset, p.index))
    report = {
        "records": records,
        "good": len(tokens),
        "images": len(widths),
        "truncated": truncated,
        "tokens": _percentiles(tokens),
        "tiles": _percentiles(tiles),
        "width": _percentiles(widths),
        "height": _percentiles(heights),
        "reasons": Counter(_reason_kind(p.reason) for p in problems),
        "notes": dict(notes),
        "bad": [p.to_dict() for p in problems],
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        _print_check(report, problems, console)
    return 1 if problems or not tokens else 0


def _percentiles(values: list[int]) -> dict[str, int]:
    if not values:
        return {}
    return {f"p{q}": int(np.percentile(values, q, method="higher")) for q in PERCENTILES}


def _reason_kind(reason: str) -> str:
    return reason.split(":")[0].split(" (")[0][:60]


def _print_check(report: dict, problems: list[Problem], console: Console) -> None:
    table = Table(title="data check", show_header=True)
    table.add_column("what")
    for q in PERCENTILES:
        table.add_column(f"p{q}", justify="right")
    for key in ("tokens", "tiles", "width", "height"):
        if report[key]:
            table.add_row(key, *(str(report[key][f"p{q}"]) for q in PERCENTILES))
    console.print(table)
    console.print(
        f"records: {report['records']}  good: {report['good']}  bad: {len(problems)}  images: {report['images']}"
        f"  truncated answers: {report['truncated']}"
    )
    for note, count in report["notes"].items():
        console.print(Text(f"note: {count} x {note}"))
    for problem in problems:
        console.print(Text(f"BAD {problem}", style="red"))
    if not report["good"]:
        console.print(Text("no good record: nothing to train on", style="red"))


def show(args: argparse.Namespace, console: Console) -> int:
    module = _data_module(args)
    dataset, item = (
        _record_in_file(module, args.index)
        if args.annotations and not args.config
        else _record_in_split(module, args.split, args.index)
    )
    sample = dataset.build(item, epoch=args.epoch)
    if isinstance(sample, Problem):
        console.print(Text(f"BAD {sample}", style="red"))
        return 1
    summary = _sample_summary(sample)
    if args.save:
        tiles_image(sample["pixel_values"]).save(args.save)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
        return 0
    console.print(_render_prompt(module, summary["input_ids"], summary["labels"]))
    for key in _SHOWN_FIELDS:
        console.print(Text.assemble((key, "bold"), f": {summary[key]}"))
    return 0


_SHOWN_FIELDS = (
    "dataset",
    "record",
    "tokens",
    "image_tokens",
    "supervised_tokens",
    "num_tiles",
    "tile_grids",
    "image_sizes",
    "pixel_values_shape",
)


def _record_in_file(module: GotDataModule, record: int) -> tuple[GotDataset, int]:
    """`--annotations FILE --index N`: the N-th record of the file, whatever its split."""
    dataset, _, _ = _all_records(module)
    matches = np.flatnonzero(dataset.entries[:, 1] == record)
    if not len(matches):
        index = dataset.sources[0].index
        reason = next((problem.reason for problem in index.problems if problem.index == record), None)
        raise InputFileError(f"record {record}: {reason}" if reason else f"no record {record} (file has {len(index)})")
    return dataset, int(matches[0])


def _record_in_split(module: GotDataModule, split: str, item: int) -> tuple[GotDataset, int]:
    """`--config FILE --split S --index N`: the N-th sample of a split, as training sees it."""
    module.setup("fit")
    dataset = module.train_dataset if split == "train" else module.val_dataset
    if not 0 <= item < len(dataset):
        raise SettingError(f"--index {item} is outside the {split} split (size {len(dataset)})")
    return dataset, item


def _sample_summary(sample: dict) -> dict:
    """What `data show` prints: the model's inputs and the counts a user checks them by."""
    input_ids, labels = sample["input_ids"].tolist(), sample["labels"].tolist()
    return {
        "dataset": sample["key"][0],
        "record": sample["key"][1],
        "input_ids": input_ids,
        "labels": labels,
        "attention_mask": [1] * len(input_ids),
        "pixel_values_shape": list(sample["pixel_values"].shape),
        "pixel_sha256": pixel_sha256(sample["pixel_values"]),
        "pixel_values_sha256": pixel_sha256(sample["pixel_values"]),  # the earlier name
        "num_tiles": sample["num_tiles"],
        "tile_grids": sample["grids"],
        "image_sizes": sample["image_sizes"],
        "tokens": len(input_ids),
        "image_tokens": input_ids.count(IMG_PAD_ID),
        "supervised_tokens": sum(label != IGNORE_INDEX for label in labels),
        "truncated": sample["truncated"],
    }


def pixel_sha256(pixel_values: torch.Tensor) -> str:
    """The hash of the float pixel tensor the model is fed."""
    return hashlib.sha256(pixel_values.contiguous().numpy().tobytes()).hexdigest()


def tiles_image(pixel_values: torch.Tensor) -> Image.Image:
    """Normalized tiles `(tiles, 3, S, S)` back to 8-bit RGB, side by side in one image."""
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    pixels = (pixel_values * std + mean).mul(255).round().clamp(0, 255).to(torch.uint8)
    return Image.fromarray(torch.cat(list(pixels), dim=2).permute(1, 2, 0).numpy())


def _render_prompt(module: GotDataModule, input_ids: list[int], labels: list[int]) -> Text:
    """The prompt with special tokens; image pads collapsed; supervised tokens in green."""
    text = Text()
    position = 0
    while position < len(input_ids):
        token = input_ids[position]
        if token == IMG_PAD_ID:
            run = position
            while run < len(input_ids) and input_ids[run] == IMG_PAD_ID:
                run += 1
            text.append(f"<imgpad>x{run - position}", style="cyan")
            position = run
            continue
        supervised = labels[position] != IGNORE_INDEX
        text.append(module.tokenizer.decode([token]), style="bold green" if supervised else "dim")
        position += 1
    return text
