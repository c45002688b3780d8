"""Data-pipeline benchmarks, printed as a table and as one JSON line per comparison.

python tools/bench_data.py index --records 1000000   # GOT JSONL, messages JSONL, Parquet
python tools/bench_data.py pipeline --pages 4   # JPEG, PNG, LZW and deflate TIFF pages
python tools/bench_data.py pipeline --images DIR   # your own pages
python tools/bench_data.py padding --records 4000 --batch_size 8
python tools/bench_data.py check --records 100000 --images 10000
python tools/bench_data.py memory --pages 3
python tools/bench_data.py augment --repeats 5   # ms per A4 page per augmentation, against the plain decode
python tools/bench_data.py shards --pages 200    # packed shards (folder, local S3 server) vs JSON + image files, 2 workers
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

from got_lightning.data.annotations.formats import index_records
from got_lightning.data.annotations.index import build_index
from got_lightning.data.annotations.records import parse_record
from got_lightning.data.collate import Collator
from got_lightning.data.config import DatasetSpec
from got_lightning.data.images.pixels import PageProcessor
from got_lightning.data.prompt import PromptBuilder
from got_lightning.data.sample import SampleBuilder
from got_lightning.data.sampler import TrainBatchSampler
from got_lightning.tokenizer import build_got_tokenizer

# (width, height, format, compression): A4 at 300 dpi, a tall newspaper column, a 24 MP photo of a
# page; PNG and TIFF as archives keep them.
PAGE_SIZES = (
    (2480, 3508, "JPEG", None),
    (1345, 2895, "JPEG", None),
    (4000, 6000, "JPEG", None),
    (2480, 3508, "PNG", None),
    (2480, 3508, "TIFF", "tiff_lzw"),
    (2480, 3508, "TIFF", "tiff_adobe_deflate"),
)
ANSWER = "臣聞求木之長者必固其根本欲流之遠者必浚其泉源" * 20


INDEX_FORMATS = ("got", "messages", "parquet")


def index(records: int = 1_000_000, annotations: str | None = None, formats: str = ",".join(INDEX_FORMATS)) -> None:
    """Index the same records as GOT JSONL, `messages` JSONL and Parquet (or your own file), each
    in a fresh process: seconds and extra peak memory (GOT target < 30 s, < 500 MB; the other
    formats within 1.5x of GOT's time).

    Args:
        records: Records to generate when no file is given.
        annotations: Your own annotation file (any format) instead.
        formats: The generated formats to measure, comma-separated.
    """
    import multiprocessing

    with tempfile.TemporaryDirectory() as folder:
        if annotations:
            files = {"yours": (Path(annotations), Path(annotations))}
        else:
            answers = [ANSWER[: 20 + i % 200] for i in range(records)]
            (Path(folder) / "warm-up").mkdir()
            files = {
                kind: (
                    _write_index_input(Path(folder), kind, answers),
                    _write_index_input(Path(folder) / "warm-up", kind, answers[:10]),
                )
                for kind in formats.split(",")
            }
        seconds = {}
        for kind, (path, warm_up) in files.items():
            context = multiprocessing.get_context("spawn")
            results = context.Queue()
            worker = context.Process(target=_index_worker, args=(str(path), str(warm_up), results))
            worker.start()
            count, took, baseline, peak = results.get()
            worker.join()
            seconds[kind] = took
            extra_mb = (peak - baseline) / 2**20
            print(
                f"{kind:9s} {count} records ({_size_mib(path):.0f} MiB) indexed in {took:.2f} s, extra peak memory {extra_mb:.0f} MiB"
            )
            emit(f"index_{kind}_extra_peak_mb", extra_mb, 500.0, "MiB (baseline = target)")
        for kind, took in seconds.items():
            if kind in ("got", "yours"):
                emit(f"index_{kind}_seconds", took, 30.0, "s (baseline = target)")
            else:
                emit(f"index_{kind}_seconds", took, seconds.get("got"), "s (baseline = GOT JSONL, limit x1.5)")


def _size_mib(path: Path) -> float:
    files = path.rglob("*") if path.is_dir() else [path]
    return sum(file.stat().st_size for file in files if file.is_file()) / 2**20


def _write_index_input(folder: Path, kind: str, answers: list[str]) -> Path:
    """The same records (image path, prompt, answer) in one format."""
    images = [f"images/{i:07d}.jpg" for i in range(len(answers))]
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = folder / "big.parquet"
        pq.write_table(pa.table({"image": images, "text": answers}), path, row_group_size=10_000)
        return path
    path = folder / f"big-{kind}.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for image, answer in zip(images, answers):
            if kind == "got":
                record = {
                    "image": image,
                    "conversations": [{"from": "human", "value": "<image>\nOCR: "}, {"from": "gpt", "value": answer}],
                }
            else:
                record = {
                    "messages": [{"role": "user", "content": "<image>OCR: "}, {"role": "assistant", "content": answer}],
                    "images": [image],
                }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def _index_worker(path: str, warm_up: str, results) -> None:
    """Index `path` after `warm_up` (libraries a format imports on first use are not counted)."""
    index_records(DatasetSpec(name="bench", annotations=warm_up), warm_up, "bench", Path(warm_up).parent)
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak resident size starts again from here
    baseline = psutil.Process().memory_info().rss
    start = time.perf_counter()
    built = index_records(DatasetSpec(name="bench", annotations=path), path, "bench", Path(path).parent)
    took = time.perf_counter() - start
    results.put((len(built), took, baseline, _peak_rss()))


def _peak_rss() -> int:
    """The process's peak resident size in bytes (VmHWM)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) * 1024


def _make_pages(folder: Path, count: int, sizes=PAGE_SIZES) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for width, height, fmt, compression in sizes:
        for n in range(count):
            page = Image.new("RGB", (width, height), (246, 242, 232))
            draw = ImageDraw.Draw(page)
            for y in range(40, height - 60, max(30, height // 80)):
                draw.text((40, y), "".join(map(str, rng.integers(0, 10, width // 14))), fill=(20, 20, 20))
            suffix = "tif" if fmt == "TIFF" else fmt.lower()
            path = folder / f"page_{width}x{height}{'_' + compression if compression else ''}_{n}.{suffix}"
            page.save(path, format=fmt, **({"compression": compression} if compression else {"quality": 90}))
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


def pipeline(
    pages: int = 2, images: str | None = None, jpeg_draft: float = 0.0, rounds: int = 3, formats: str = "JPEG,PNG,TIFF"
) -> None:
    """Samples/s from record to collated tensors, one process on one thread (as a data-loader worker
    runs), vs transformers' GotOcr2Processor; and the largest pixel difference between the two.

    Args:
        pages: Pages generated per size when no folder is given.
        images: Your own folder of page images.
        jpeg_draft: Our `data.jpeg_draft` setting (0: full-resolution decode).
        rounds: Alternating timed rounds per comparison; the median is reported.
        formats: The generated page formats to measure, comma-separated.
    """
    torch.set_num_threads(1)
    sizes = [size for size in PAGE_SIZES if size[2] in formats.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        paths = sorted(Path(images).iterdir()) if images else _make_pages(Path(folder), pages, sizes)
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
        paths = sorted(Path(images).iterdir()) if images else _make_pages(Path(folder), pages, [(4000, 6000, "JPEG", None)])
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


def augment(repeats: int = 5) -> None:
    """Milliseconds each `data.augment` step adds to one A4 page at 300 dpi (2480x3508 JPEG), applied
    to the decoded page as training applies it, beside the page's decode + resize alone."""
    from got_lightning.data.images.augment import STEPS, ScanAugmentation

    with tempfile.TemporaryDirectory() as folder:
        (path,) = _make_pages(Path(folder), 1, sizes=(PAGE_SIZES[0],))
        pages = PageProcessor(image_size=1024)
        plain = _median_ms(lambda: pages.page_tiles(path), repeats)
        emit("augment/decode+resize A4 (no augmentation)", plain, None, "ms")
        for name in STEPS:
            augmentation = ScanAugmentation([{"name": name, "p": 1.0}], seed=0)
            seconds = _median_ms(
                lambda step=augmentation: pages.page_tiles(path, augment=step.for_sample(0, "bench", 0)), repeats
            )
            emit(f"augment/{name} on A4", seconds - plain, plain, "ms added", ratio=round(seconds / plain, 3))


def shards(pages: int = 200, workers: int = 2, epochs: int = 2, s3: bool = True) -> None:
    """Training-loader pages/s of the same pages as JSON + image files, as packed shards in a folder
    and (with `--s3`) in a local S3-compatible server's bucket, `workers` loader processes each, one
    epoch to warm up (the bucket's chunks land in the cache) then `epochs` timed; sizes beside."""
    import yaml

    from got_lightning.data.datamodule import GotDataModule

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "pages").mkdir()
        paths = _make_pages(root / "pages", max(1, pages // 2), sizes=((1240, 1754, "JPEG", None), (1240, 1754, "PNG", None)))
        records = [
            {
                "image": path.name,
                "conversations": [{"from": "human", "value": "<image>\nOCR: "}, {"from": "gpt", "value": ANSWER[:200]}],
            }
            for path in paths
        ]
        annotations = root / "pages" / "data.json"
        annotations.write_text(json.dumps(records), encoding="utf-8")
        config = root / "pack.yaml"
        config.write_text(yaml.safe_dump({"data": {"datasets": [{"name": "pages", "annotations": str(annotations)}]}}))
        locations = {"files": str(annotations), "shards in a folder": str(root / "packed")}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "got_lightning.cli",
                "data",
                "pack",
                "--config",
                str(config),
                "--output",
                locations["shards in a folder"],
            ],
            check=True,
            capture_output=True,
        )
        source_mb = sum(path.stat().st_size for path in paths) / 2**20
        packed_mb = sum(path.stat().st_size for path in (root / "packed").iterdir()) / 2**20
        emit("shards/packed size", packed_mb, source_mb, "MiB (source: image files)")
        server = _local_s3(root, config, locations) if s3 else None
        try:
            rates = {}
            for name, location in locations.items():
                module = GotDataModule(datasets=[{"name": "pages", "annotations": location}], batch_size=4, num_workers=workers)
                module.setup("fit")
                loader = module.train_dataloader()
                _count_pages(loader, 0)  # warm-up: worker start, the bucket's chunks into the cache
                start = time.perf_counter()
                seen = sum(_count_pages(loader, epoch) for epoch in range(1, epochs + 1))
                rates[name] = seen / (time.perf_counter() - start)
                module.teardown("fit")
            for name, rate in rates.items():
                emit(f"shards/{name} pages per s ({workers} workers)", rate, rates["files"], "pages/s")
        finally:
            if server is not None:
                server.kill()


def _count_pages(loader, epoch: int) -> int:
    loader.sampler.set_epoch(epoch)
    return sum(len(batch["keys"]) for batch in loader)


def _local_s3(root: Path, config: Path, locations: dict[str, str]) -> subprocess.Popen:
    """moto's S3 server on a free port, the pages packed into its bucket; sets the `AWS_*` variables."""
    import socket

    import boto3

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    os.environ["GOT_LIGHTNING_CACHE"] = str(root / "cache")
    for _ in range(100):
        try:
            boto3.client("s3").create_bucket(Bucket="bench")
            break
        except Exception:
            time.sleep(0.1)
    subprocess.run(
        [sys.executable, "-m", "got_lightning.cli", "data", "pack", "--config", str(config), "--output", "s3://bench/pages"],
        check=True,
        capture_output=True,
    )
    locations["shards in a local S3 server"] = "s3://bench/pages"
    return server


def _median_ms(work, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    CLI([index, pipeline, padding, check, memory, augment, shards], as_positional=False)
