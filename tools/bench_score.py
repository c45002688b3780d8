"""The GOT paper's metrics at scale: `got-lightning score` on 10,000 pages of 1,000 Latin
characters, and on Chinese pages (jieba's segmentation sets that pace), reference and reading
differing by OCR-like character errors. Prints a table line and one JSON line per script.

    python tools/bench_score.py                      # 10,000 Latin and 2,000 Chinese pages
    python tools/bench_score.py --pages 1000 --chinese_pages 200
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import emit
from jsonargparse import CLI

LATIN_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "they",
    "you",
    "were",
    "her",
    "she",
    "there",
    "been",
    "one",
    "all",
    "we",
    "their",
    "has",
    "would",
    "when",
    "if",
    "so",
    "no",
    "will",
    "more",
    "can",
    "about",
    "out",
    "up",
    "them",
    "some",
    "could",
    "into",
    "other",
    "than",
    "then",
    "now",
    "only",
    "its",
    "over",
    "also",
    "after",
    "first",
    "new",
    "two",
    "time",
    "these",
    "may",
    "like",
    "people",
    "years",
    "way",
    "many",
    "state",
    "page",
    "library",
    "letter",
    "chapter",
    "written",
    "reading",
    "ancient",
    "manuscript",
    "volume",
    "printed",
    "edition",
    "column",
    "margin",
    "scholar",
]
CHINESE = "天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏闰余成岁律吕调阳云腾致雨露结为霜金生丽水玉出昆冈剑号巨阙珠称夜光果珍李柰菜重芥姜"


def _pages(count: int, script: str, length: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    lines = []
    for number in range(count):
        if script == "latin":
            reference = " ".join(rng.choices(LATIN_WORDS, k=length // 4))[:length]
            alphabet = "abcdefghijklmnopqrstuvwxyz "
        else:
            reference = "".join(rng.choices(CHINESE, k=length))
            alphabet = CHINESE
        reading = "".join(rng.choice(alphabet) if rng.random() < 0.03 else char for char in reference)
        lines.append({"image": f"{number}.png", "reference": reference, "prediction": reading})
    return lines


def _time_score(lines: list[dict[str, str]], folder: Path, name: str) -> tuple[float, dict]:
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    executable = Path(sys.executable).parent / "got-lightning"
    start = time.perf_counter()
    subprocess.run([str(executable), "score", str(path), "--json", str(folder / f"{name}.json")], check=True, capture_output=True)
    return time.perf_counter() - start, json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))


def main(pages: int = 10_000, chinese_pages: int = 2_000, length: int = 1_000, seed: int = 0) -> None:
    """Time `got-lightning score` end to end (start, read, score on every core, write).

    Args:
        pages: Latin pages.
        chinese_pages: Chinese pages.
        length: Characters per page.
        seed: Text seed.
    """
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name, count in (("latin", pages), ("chinese", chinese_pages)):
            seconds, scores = _time_score(_pages(count, name, length, seed), folder, name)
            paper = scores["paper"]
            meteor = "n/a" if paper["meteor"] is None else f"{paper['meteor']:.4f}"
            print(
                f"{name}: {count} pages of {length} characters in {seconds:.1f} s on {os.cpu_count()} cores "
                f"({count / seconds:.0f} pages/s); CER {scores['cer']:.4f}, bleu {paper['bleu']:.4f}, meteor {meteor}, "
                f"edit_dist {paper['edit_dist']:.4f}"
            )
            emit(
                f"score_{name}_{count}x{length}",
                seconds,
                None,
                "s",
                pages_per_s=round(count / seconds, 1),
                meteor=paper["meteor"] is not None,
            )


if __name__ == "__main__":
    CLI(main, as_positional=False)
