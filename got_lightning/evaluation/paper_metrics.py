"""The GOT paper's figures, computed as upstream's `GOT/eval/pyevaltools/eval_ocr.py` computes them
(`nougat_per_metrics` per pair, averaged as `doc_text_eval` averages them), and as fast as the
pages allow: the same NLTK calls, with the stemmer and WordNet lookups cached and rapidfuzz's edit
distance (equal to `nltk.edit_distance`, many times faster).

Upstream calls `nougat_per_metrics(label, answer)` where the parameters are `(pred, gt)`: the
reference text is scored as the hypothesis and the model's answer as the reference. The published
tables were made that way, so the same swap is made here: `precision` is upstream's precision
(shared words / the reference's words), which is the recall of the usual definition, and the other
way round."""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import re
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import Levenshtein

PAPER_NAMES = ("bleu", "meteor", "f_measure", "precision", "recall", "edit_dist")
CHINESE = re.compile(r"[\u4e00-\u9fa5]")
WORDNET_INSTALL = "python -m nltk.downloader wordnet"


def words(text: str, chinese: bool) -> list[str]:
    """Upstream's tokens: jieba's words for a pair with Chinese in either text, else whitespace words."""
    return _jieba().lcut(text) if chinese else text.split()


@functools.cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)  # its dictionary-loading notes are not the user's business
    return jieba


class _CachedStemmer:
    """NLTK's Porter stemmer, each word stemmed once (the meteor score stems every word of every pair)."""

    def __init__(self) -> None:
        from nltk.stem.porter import PorterStemmer

        self.stem = functools.lru_cache(maxsize=200_000)(PorterStemmer().stem)


class _CachedWordNet:
    """The part of NLTK's WordNet reader that meteor uses (`synsets`), each word looked up once."""

    def __init__(self, wordnet: Any) -> None:
        self.synsets = functools.lru_cache(maxsize=200_000)(lambda word: tuple(_Synset(s) for s in wordnet.synsets(word)))


class _Synset:
    """A synset reduced to what meteor reads: its lemmas' names."""

    def __init__(self, synset: Any) -> None:
        self._lemmas = tuple(_Lemma(lemma.name()) for lemma in synset.lemmas())

    def lemmas(self) -> tuple[_Lemma, ...]:
        return self._lemmas


@dataclass(frozen=True)
class _Lemma:
    _name: str

    def name(self) -> str:
        return self._name


@functools.cache
def meteor_scorer() -> tuple[Any, str | None]:
    """NLTK's meteor with cached lookups, or None and the reason (WordNet data not installed)."""
    from nltk.corpus import wordnet
    from nltk.translate import meteor_score

    try:
        wordnet.ensure_loaded()
    except LookupError:
        return None, f"NLTK's WordNet data is not installed ({WORDNET_INSTALL})"
    stemmer, lookups = _CachedStemmer(), _CachedWordNet(wordnet)
    return functools.partial(meteor_score.meteor_score, stemmer=stemmer, wordnet=lookups), None


def paper_scores(reference: str, prediction: str) -> dict[str, float | None] | None:
    """One pair's `nougat_per_metrics`, or None where upstream skips the pair (an empty text, or
    one without a word to count)."""
    pred, gt = reference, prediction  # upstream's argument order, kept (see the module docstring)
    if not pred or not gt:
        return None
    chinese = bool(CHINESE.search(gt) or CHINESE.search(pred))
    gt_words, pred_words = words(gt, chinese), words(pred, chinese)
    if not gt_words or not pred_words:
        return None  # upstream's set measures return None here, and its average then fails
    from nltk.metrics import f_measure, precision, recall
    from nltk.translate import bleu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NLTK warns about every pair without 4-gram overlaps
        scores: dict[str, float | None] = {"bleu": bleu([gt_words], pred_words)}
    meteor, _ = meteor_scorer()
    scores["meteor"] = None if meteor is None else meteor([gt_words], pred_words)
    gt_set, pred_set = set(gt_words), set(pred_words)
    scores["f_measure"] = f_measure(gt_set, pred_set)
    scores["precision"] = precision(gt_set, pred_set)
    scores["recall"] = recall(gt_set, pred_set)
    scores["edit_dist"] = Levenshtein.distance(pred, gt) / max(len(pred), len(gt))
    return scores


def paper_totals(per_sample: list[dict[str, float | None] | None]) -> dict[str, Any]:
    """`doc_text_eval`'s averages over the scored pairs, their count, and why meteor is null when it is."""
    scored = [scores for scores in per_sample if scores is not None]
    totals: dict[str, Any] = {}
    for name in PAPER_NAMES:
        values = [scores[name] for scores in scored if scores[name] is not None]
        totals[name] = sum(values) / len(values) if values and len(values) == len(scored) else None
    totals["num_scored"] = len(scored)
    totals["num_skipped"] = len(per_sample) - len(scored)
    if scored and totals["meteor"] is None:
        totals["meteor_missing"] = meteor_scorer()[1]
    return totals


PARALLEL_FROM = 2000  # pairs; below this, starting worker processes costs more than it saves


def score_pairs(pairs: list[tuple[str, str]], workers: int | None = None) -> list[dict[str, float | None] | None]:
    """`paper_scores` of every (reference, prediction) pair, on `workers` processes (default: one
    per core) when there are enough pairs to pay for starting them."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(pairs) < PARALLEL_FROM:
        return [paper_scores(reference, prediction) for reference, prediction in pairs]
    chunk = max(1, len(pairs) // (workers * 8))
    context = multiprocessing.get_context("spawn")  # never fork a process that holds threads (torch, tokenizers)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(_score_pair, pairs, chunksize=chunk))


def _score_pair(pair: tuple[str, str]) -> dict[str, float | None] | None:
    return paper_scores(*pair)


def annotate_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Add each record's `paper` scores (null where upstream skips the pair) and return the totals."""
    per_sample = score_pairs([(record["reference"], record["prediction"]) for record in records])
    for record, scores in zip(records, per_sample):
        record["paper"] = scores
    return paper_totals(per_sample)


def paper_summary(totals: dict[str, Any]) -> str:
    """One line of the paper's figures, with upstream's names."""
    shown = ", ".join(f"{name} {'n/a' if totals[name] is None else format(totals[name], '.4f')}" for name in PAPER_NAMES)
    missing = f" (meteor: {totals['meteor_missing']})" if totals.get("meteor_missing") else ""
    return f"{shown} on {totals['num_scored']} pair(s){missing}"
