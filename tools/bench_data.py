"""Data-pipeline benchmarks, printed as a table and as one JSON line per comparison.

python tools/bench_data.py index --records 1000000
python tools/bench_data.py pipeline --pages 4
python tools/bench_data.py pipeline --images DIR   # your own pages
python tools/bench_data.py padding --records 4000 --batch_size 8
python tools/bench_data.py check --records 100000 --images 10000
python tools/bench_data.py memory --pages 3
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from bench_common import emit
from jsonargparse import CLI
from PIL import Image, ImageDraw

from got_lightning.data.collate import Collator
from got_lightning.data.index import build_index
from got_lightning.data.pixels import PageProcessor
from got_lightning.data.prompt import PromptBuilder
from got_lightning.data.records import parse_record
from got_lightning.data.sample import SampleBuilder
from got_lightning.data.sampler import TrainBatchSampler
from got_lightning.tokenizer import build_got_tokenizer

PAGE_SIZES = ((2480, 3508, "JPEG"), (1345, 2895, "JPEG"), (4000, 6000, "JPEG"), (2480, 3508, "PNG"))
ANSWER = "臣聞求木之長者必固其根本欲流之遠者必浚其泉源" * 20


def index(records: int = 1_000_000, annotations: str | None = None) -> None:
    """Index a JSONL annotation file: seconds and extra peak memory (target < 30 s, < 500 MB).

    Args:
        records: Records to generate when no file is given.
        annotations: Your own annotation file instead.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(annotations) if annotations else Path(folder) / "big.jsonl"
        if not annotations:
            with open(path, "w", encoding="utf-8") as handle:
                for i in range(records):
                    handle.write(
                        json.dumps(
                            {
                                "image": f"images/{i:07d}.jpg",
                                "conversations": [
                                    {"from": "human", "value": "<image>\nOCR: "},
                                    {"from": "gpt", "value": ANSWER[: 20 + i % 200]},
                                ],
                            },
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
        rss_before = psutil.Process().memory_info().rss
        start = time.perf_counter()
        built = build_index(path, "bench")
        seconds = time.perf_counter() - start
        peak_extra_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before) / 2**20
        print(
            f"{len(built)} records ({path.stat().st_size / 2**20:.0f} MiB) indexed in {seconds:.2f} s, extra peak memory {peak_extra_mb:.0f} MiB"
        )
        emit("index_jsonl_seconds", seconds, 30.0, "s (baseline = target)")
        emit("index_jsonl_extra_peak_mb", peak_extra_mb, 500.0, "MiB (baseline = target)")


def _make_pages(folder: Path, count: int, sizes=PAGE_SIZES) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for width, height, fmt in sizes:
        for n in range(count):
            page = Image.new("RGB", (width, height), (246, 242, 232))
            draw = ImageDraw.Draw(page)
            for y in range(40, height - 60, max(30, height // 80)):
                draw.text((40, y), "".join(map(str, rng.integers(0, 10, width // 14))), fill=(20, 20, 20))
            path = folder / f"page_{width}x{height}_{n}.{fmt.lower()}"
            page.save(path, format=fmt, quality=90)
            paths.append(path)
    return paths


def _ours(paths: list[Path], mode: str, jpeg_draft: float) -> tuple[float, torch.Tensor]:
    tokenizer = build_got_tokenizer()
    builder = SampleBuilder(
        PageProcessor(mode=mode, draft_oversample=jpeg_draft), PromptBuilder(tokenizer, 256, 8192), allow_outside_root=True
    )
    collate = Collator()
    first = None
    start = time.perf_counter()
    for path in paths:
        record = parse_record(
            {
                "image": str(path),
                "conversations": [{"from": "human", "value": "<image>\nOCR: "}, {"from": "gpt", "value": ANSWER}],
            }
        )
        sample = builder.build(record, path.parent)
        batch = collate([{**sample, "key": ("bench", 0)}])
        first = batch["pixel_values"] if first is None else first
    return len(paths) / (time.perf_counter() - start), first


def _transformers(paths: list[Path], mode: str) -> tuple[float, torch.Tensor]:
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil
    from transformers.models.got_ocr2.processing_got_ocr2 import GotOcr2Processor

    processor = GotOcr2Processor(
        image_processor=GotOcr2ImageProcessorPil(size={"height": 1024, "width": 1024}, max_patches=6),
        tokenizer=build_got_tokenizer(),
    )
    first = None
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            inputs = processor(image, return_tensors="pt", crop_to_patches=mode == "tiles")
            processor.tokenizer(ANSWER, return_tensors="pt")
            first = inputs["pixel_values"] if first is None else first
    return len(paths) / (time.perf_counter() - start), first


def pipeline(pages: int = 2, images: str | None = None, jpeg_draft: float = 0.0, rounds: int = 3) -> None:
    """Samples/s from record to collated tensors, one process on one thread (as a data-loader worker
    runs), vs transformers' GotOcr2Processor; and the largest pixel difference between the two.

    Args:
        pages: Pages generated per size when no folder is given.
        images: Your own folder of page images.
        jpeg_draft: Our `data.jpeg_draft` setting (0: full-resolution decode).
        rounds: Alternating timed rounds per comparison; the median is reported.
    """
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        paths = sorted(Path(images).iterdir()) if images else _make_pages(Path(folder), pages)
        groups: dict[str, list[Path]] = {}
        for path in paths:
            group = f"{path.name.rsplit('_', 1)[0]}{path.suffix}" if not images else "your pages"
            groups.setdefault(group, []).append(path)
        for group, members in groups.items():
            for mode in ("resize", "tiles"):
                timings = [(_transformers(members, mode), _ours(members, mode, jpeg_draft)) for _ in range(rounds)]
                baseline = statistics.median(theirs[0] for theirs, _ in timings)
                ours = statistics.median(mine[0] for _, mine in timings)
                (_, their_pixels), (_, our_pixels) = timings[0]
                difference = (our_pixels - their_pixels).abs().max().item()
                print(
                    f"{group:28s} {mode:7s} ours {ours:6.2f}/s  transformers {baseline:6.2f}/s  x{ours / baseline:.2f}  max pixel difference {difference:.4f}"
                )
                emit(f"pipeline_{mode}_{group}_draft{jpeg_draft}", ours, baseline, "samples/s")
                emit(
                    f"pixel_parity_{mode}_{group}_draft{jpeg_draft}",
                    difference,
                    0.05,
                    "max abs difference after normalization (baseline = limit)",
                )


def _measure_worker(paths: list[Path], mode: str, jpeg_draft: float, results) -> None:
    torch.set_num_threads(1)
    baseline = psutil.Process().memory_info().rss
    _ours(paths, mode, jpeg_draft)
    results.put((baseline, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))


def memory(pages: int = 3, images: str | None = None, jpeg_draft: float = 0.0) -> None:
    """Peak memory of one data-loader worker building samples from 4000x6000 JPEG pages (or
    yours), per image mode, in a fresh process.

    Args:
        pages: Pages generated when no folder is given.
        images: Your own folder of page images.
        jpeg_draft: Our `data.jpeg_draft` setting (0: full-resolution decode).
    """
    import multiprocessing

    with tempfile.TemporaryDirectory() as folder:
        paths = sorted(Path(images).iterdir()) if images else _make_pages(Path(folder), pages, [(4000, 6000, "JPEG")])
        for mode in ("resize", "tiles"):
            context = multiprocessing.get_context("spawn")
            results = context.Queue()
            worker = context.Process(target=_measure_worker, args=(paths, mode, jpeg_draft, results))
            worker.start()
            baseline, peak = results.get()
            worker.join()
            print(
                f"{mode:7s} one worker: peak {peak / 2**20:.0f} MiB, {(peak - baseline) / 2**20:.0f} MiB above its start-up size"
            )
            emit(f"worker_peak_mb_{mode}_draft{jpeg_draft}", (peak - baseline) / 2**20, None, "MiB above start-up")


def _token_lengths(records: list, prompts: PromptBuilder) -> np.ndarray:
    return np.array([len(prompts.build(parse_record(record), [1]).input_ids) for record in records])


def _padding_share(lengths: np.ndarray, sampler: TrainBatchSampler) -> float:
    padded = real = 0
    for batch in sampler:
        batch_lengths = lengths[batch]
        padded += int(batch_lengths.max()) * len(batch)
        real += int(batch_lengths.sum())
    return 1 - real / padded


def padding(records: int = 4000, batch_size: int = 8, epochs: int = 3, annotations: str | None = None) -> None:
    """Share of padded tokens per epoch with length-grouped batches vs plainly shuffled ones (target
    <= 10% grouped), on answers of 10 to 4000 characters, one 256-token tile per page.

    Args:
        records: Records to generate when no file is given.
        batch_size: Per-device batch size.
        epochs: Epochs averaged (each reshuffles).
        annotations: Your own annotation file instead (JSON list or JSONL).
    """
    prompts = PromptBuilder(build_got_tokenizer(), 256, 1_000_000)
    if annotations:
        index = build_index(annotations, "bench")
        rows = [index.read(position) for position in index.valid_positions]
    else:
        rng = np.random.default_rng(0)
        rows = [
            {
                "image": "page.jpg",
                "conversations": [
                    {"from": "human", "value": "<image>\nOCR: "},
                    {"from": "gpt", "value": (ANSWER * 10)[: int(size)]},
                ],
            }
            for size in rng.integers(10, 4001, records)
        ]
    lengths = _token_lengths(rows, prompts)
    answer_chars = np.array([parse_record(row).answer_chars for row in rows])
    shares = {}
    for grouped in (True, False):
        sampler = TrainBatchSampler(answer_chars, batch_size, seed=0, group_by_length=grouped)
        per_epoch = []
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            per_epoch.append(_padding_share(lengths, sampler))
        shares[grouped] = float(np.mean(per_epoch))
    print(
        f"{len(rows)} records, tokens per sample {lengths.min()}..{lengths.max()}, batch {batch_size}: padded share "
        f"{shares[True]:.2%} grouped vs {shares[False]:.2%} shuffled"
    )
    emit(f"padding_share_batch{batch_size}", shares[True], shares[False], "padded/total tokens")


def _small_pages(folder: Path, count: int) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for number in range(count):
        page = Image.new("RGB", (96, 64), "white")
        ImageDraw.Draw(page).text((8, 20), f"{number:07d}", fill="black")
        page.save(folder / "images" / f"{number:06d}.png")


def check(records: int = 100_000, images: int = 10_000, annotations: str | None = None, image_root: str | None = None) -> None:
    """`got-lightning data check` in its own process: seconds and peak memory (it must stay bounded:
    records are streamed from the index and images read one at a time).

    Args:
        records: Records to generate (cycling over the images) when no file is given.
        images: Small page images to generate.
        annotations: Your own annotation file instead.
        image_root: Image folder of `annotations`.
    """
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if annotations is None:
            _small_pages(folder, images)
            annotations, image_root = str(folder / "data.jsonl"), str(folder)
            with open(annotations, "w", encoding="utf-8") as handle:
                for i in range(records):
                    handle.write(
                        json.dumps(
                            {
                                "image": f"images/{i % images:06d}.png",
                                "conversations": [
                                    {"from": "human", "value": "<image>\nOCR: "},
                                    {"from": "gpt", "value": f"{i % images:07d}"},
                                ],
                            }
                        )
                        + "\n"
                    )
        command = [sys.executable, "-m", "got_lightning.cli", "data", "check", "--annotations", annotations, "--json"]
        if image_root:
            command += ["--image-root", image_root]
        start = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report = json.loads(finished.stdout)
    print(f"data check: {report['records']} records, {len(report['bad'])} bad, {seconds:.1f} s, peak memory {peak_mb:.0f} MiB")
    emit("data_check_peak_mb", peak_mb, None, "MiB (one process)")
    emit("data_check_seconds", seconds, None, "s")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    CLI([index, pipeline, padding, check, memory], as_positional=False)
