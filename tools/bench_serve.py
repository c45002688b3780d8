"""`got-lightning serve` under load: pages/s and p50/p95 latency at several concurrencies, for the
server as it ships (continuous batching), the same server with static batches, with batching off
(one page at a time), and transformers' `generate` at batch 1 behind the same HTTP server (how
upstream's demos serve). Every variant reads the same pages; their answers are compared.

    python tools/bench_serve.py                                      # tiny random model, generated pages
    python tools/bench_serve.py --model DIR --images DIR [--accelerator cuda]

Prints a table and one JSON line per variant and concurrency.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_common import emit, generated_pages
from jsonargparse import CLI

VARIANTS = {
    "continuous": ["--max_batch_size", "{batch}", "--continuous_batching", "true"],
    "static": ["--max_batch_size", "{batch}", "--continuous_batching", "false"],
    "batching_off": ["--max_batch_size", "1"],
    "generate_batch1": None,  # transformers' generate, one page at a time, behind the same app
}


def _start(variant: str, model: str, max_new_tokens: int, batch: int, accelerator: str) -> tuple[subprocess.Popen, str]:
    common = ["--model.model_path", model, "--model.generation.max_new_tokens", str(max_new_tokens), "--accelerator", accelerator]
    if VARIANTS[variant] is None:
        command = [sys.executable, __file__, "generate-server", *common]
    else:
        flags = [flag.format(batch=batch) for flag in VARIANTS[variant]]
        command = [str(Path(sys.executable).parent / "got-lightning"), "serve", *common, *flags]
    process = subprocess.Popen([*command, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        match = re.search(r" at (http://[\d.]+:\d+)", line)
        if match:
            return process, match.group(1)
    raise RuntimeError(f"{variant} server did not start (exit {process.wait()})")


async def _load(
    url: str, images: list[str], concurrency: int, requests: int, max_new_tokens: int
) -> tuple[float, list[float], list[str]]:
    """`requests` chat completions, `concurrency` at a time; wall seconds, latencies, answers."""
    latencies, answers = [0.0] * requests, [""] * requests
    queue: asyncio.Queue[int] = asyncio.Queue()
    for item in range(requests):
        queue.put_nowait(item)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            item = queue.get_nowait()
            body = {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": images[item % len(images)]}}]}
                ],
                "max_tokens": max_new_tokens,
            }
            start = time.perf_counter()
            response = await client.post(f"{url}/v1/chat/completions", json=body)
            response.raise_for_status()
            latencies[item] = time.perf_counter() - start
            answers[item] = response.json()["choices"][0]["message"]["content"]

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - start, latencies, answers


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(
    model: str | None = None,
    images: str | None = None,
    pages: int = 32,
    concurrency: list[int] = [1, 4, 16],  # noqa: B006 - jsonargparse needs a literal default
    requests_per_client: int = 4,
    max_new_tokens: int = 48,
    max_batch_size: int = 16,
    preset: str = "tiny",
    accelerator: str = "cpu",
    variants: list[str] = list(VARIANTS),  # noqa: B006
) -> None:
    """Run every variant at every concurrency on the same pages, one server at a time.

    Args:
        model: Model directory or hub id (default: a random model of `preset`, seed 0).
        images: Folder of page images (default: generated digit pages).
        pages: Pages generated when no folder is given.
        concurrency: Clients sending at once.
        requests_per_client: Requests each client sends (at least 8 per level).
        max_new_tokens: Answer tokens per page (the random model never stops early).
        max_batch_size: The batched variants' largest batch.
        preset: Size preset of the default model.
        accelerator: cpu or cuda.
        variants: Which of continuous, static, batching_off, generate_batch1 to run.
    """
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if model is None:
            from got_lightning.model.loading import init_model_dir

            model = str(init_model_dir(preset, folder / "model"))
        if images is None:
            images = str(Path(generated_pages(folder, pages)).parent / "images")
        files = sorted(path for path in Path(images).rglob("*") if path.suffix.lower() in (".png", ".jpg", ".jpeg"))
        urls = [
            f"data:image/{path.suffix[1:].replace('jpg', 'jpeg')};base64,{base64.b64encode(path.read_bytes()).decode()}"
            for path in files
        ]
        results, answers = {}, {}
        for variant in variants:
            process, url = _start(variant, model, max_new_tokens, max_batch_size, accelerator)
            try:
                asyncio.run(_load(url, urls, 2, 2, max_new_tokens))  # warm-up
                for clients in concurrency:
                    count = max(8, clients * requests_per_client)
                    seconds, latencies, read = asyncio.run(_load(url, urls, clients, count, max_new_tokens))
                    results[variant, clients] = (count / seconds, _percentile(latencies, 0.5), _percentile(latencies, 0.95))
                    answers.setdefault(variant, {}).update({item % len(urls): text for item, text in enumerate(read)})
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    print(f"{len(urls)} pages, {max_new_tokens} new tokens each, batches of up to {max_batch_size}, {accelerator}")
    print(f"{'variant':<16} {'clients':>7} {'pages/s':>8} {'p50 s':>7} {'p95 s':>7}")
    for (variant, clients), (rate, p50, p95) in results.items():
        print(f"{variant:<16} {clients:>7} {rate:>8.2f} {p50:>7.3f} {p95:>7.3f}")
    reference = answers.get("continuous") or next(iter(answers.values()))
    for variant, read in answers.items():
        same = sum(read[item] == reference[item] for item in read)
        print(f"{variant}: {same}/{len(read)} answers identical to the continuous server's")
    for (variant, clients), (rate, p50, p95) in results.items():
        off = results.get(("batching_off", clients))
        emit(f"serve_{variant}_c{clients}", rate, off and off[0], "pages/s", p50_s=round(p50, 4), p95_s=round(p95, 4))


def generate_server(argv: list[str]) -> None:
    """The same app and engine loop, each page read by transformers' `generate` at batch 1."""
    from got_lightning.commands.serve_command import run_serve
    from got_lightning.generation.batch import Answer
    from got_lightning.generation.greedy import GenerationArgs, generate_one_page
    from got_lightning.serving.engine import Engine

    class GenerateEngine(Engine):
        def _prefill(self, jobs):
            for job in jobs:
                batch = self._collate([job.sample])
                batch["pixel_values"] = batch["pixel_values"].to(self.device)
                args = GenerationArgs(job.max_new_tokens, self.module.generation.no_repeat_ngram_size)
                ids = generate_one_page(self.module.got, batch, args)
                job.publish(
                    Answer(ids=ids, stopped=len(ids) < job.max_new_tokens, finished=True, finished_at=time.perf_counter())
                )

    sys.exit(run_serve([*argv, "--max_batch_size", "1"], engine=GenerateEngine))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if sys.argv[1:2] == ["generate-server"]:
        generate_server(sys.argv[2:])
    else:
        CLI(main, as_positional=False)
