"""The GOT paper's metrics equal upstream's function (a copy restated in upstream_eval_ocr.py) on
hundreds of pairs, in upstream's argument order; METEOR without WordNet data is null, with the reason."""

import functools
import json
import os
import random
import subprocess
import sys

import pytest

from got_lightning.evaluation.paper_metrics import PAPER_NAMES, meteor_scorer, paper_scores, paper_totals
from tests.evaluation import upstream_eval_ocr

ENGLISH = [
    "the",
    "a",
    "big",
    "large",
    "car",
    "automobile",
    "cats",
    "cat",
    "sat",
    "sitting",
    "on",
    "mat",
    "mats",
    "reading",
    "page",
    "pages",
    "old",
    "book",
    "books",
    "line",
    "lines",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "river",
    "bank",
    "money",
    "house",
    "home",
    "letter",
    "letters",
    "written",
    "wrote",
    "king",
    "kings",
]
CHINESE = "天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏闰余成岁律吕调阳云腾致雨露结为霜金生丽水玉出昆冈剑号巨阙珠称夜光"
REQUIRE_WORDNET = os.environ.get("GOT_LIGHTNING_REQUIRE_WORDNET") == "1"


def noisy(text: str, rng: random.Random, alphabet: str, rate: float) -> str:
    out = []
    for char in text:
        roll = rng.random()
        if roll < rate / 3:
            continue
        out.append(rng.choice(alphabet) if roll < rate * 2 / 3 else char)
        if roll > 1 - rate / 3:
            out.append(rng.choice(alphabet))
    return "".join(out)


def pairs() -> list[tuple[str, str]]:
    """(label, answer) as upstream's results hold them: English, Chinese, mixed, identical, one
    side empty, and long pages."""
    rng = random.Random(0)
    made = []
    for _ in range(80):
        label = " ".join(rng.choices(ENGLISH, k=rng.randint(3, 40)))
        made.append((label, " ".join(word if rng.random() > 0.2 else rng.choice(ENGLISH) for word in label.split())))
    for _ in range(60):
        label = "".join(rng.choices(CHINESE, k=rng.randint(4, 120)))
        made.append((label, noisy(label, rng, CHINESE, 0.1)))
    for _ in range(30):
        label = f"{''.join(rng.choices(CHINESE, k=8))} GOT-OCR {rng.randint(1, 2024)} 年 {' '.join(rng.choices(ENGLISH, k=5))}"
        made.append((label, noisy(label, rng, CHINESE + "abc 123", 0.08)))
    for _ in range(20):
        text = rng.choice([" ".join(rng.choices(ENGLISH, k=12)), "".join(rng.choices(CHINESE, k=30))])
        made.append((text, text))
    made += [("", "some answer"), ("a label", ""), ("", ""), ("天地", ""), ("", "玄黄")]
    for _ in range(3):  # long pages, past the 2,000 characters where NLTK's edit distance stops by default
        label = "\n".join(" ".join(rng.choices(ENGLISH, k=15)) for _ in range(25))
        made.append((label, noisy(label, rng, "abcdefghij ", 0.03)))
    for _ in range(2):
        label = "".join(rng.choices(CHINESE, k=2100))
        made.append((label, noisy(label, rng, CHINESE, 0.05)))
    return made


def upstream(label: str, answer: str, with_meteor: bool = False):
    return _upstream(label, answer, with_meteor)


@functools.cache
def _upstream(label: str, answer: str, with_meteor: bool):
    return upstream_eval_ocr.nougat_per_metrics(label, answer, with_meteor=with_meteor)


def ours(label: str, answer: str):
    # Our reference is upstream's label, our prediction its answer.
    return paper_scores(label, answer)


def test_every_pair_scores_as_upstream_scores_it_bleu_f_precision_recall_edit_distance():
    cases = pairs()
    assert len(cases) >= 200
    for label, answer in cases:
        expected = upstream(label, answer)
        got = ours(label, answer)
        if not expected:
            assert got is None, (label, answer)
            continue
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-300), (name, label[:40], answer[:40])


def test_the_averages_are_doc_text_evals_and_skipped_pairs_are_counted():
    cases = pairs()
    predicts = [{"label": label, "answer": answer} for label, answer in cases]
    expected = upstream_eval_ocr.doc_text_eval(predicts, with_meteor=False, per_pair=upstream)
    totals = paper_totals([ours(label, answer) for label, answer in cases])
    assert totals["num_scored"] == expected["eval question num"] == len(cases) - 5
    assert totals["num_skipped"] == 5
    for name in ("bleu", "f_measure", "precision", "recall", "edit_dist"):
        assert totals[name] == pytest.approx(expected[name], rel=1e-12)


def test_upstreams_argument_order_is_kept_precision_is_shared_words_over_the_references_words():
    scores = paper_scores("a b c d", "a b")  # reference has 4 words, the answer 2 of them
    assert scores["precision"] == 0.5 and scores["recall"] == 1.0


def test_meteor_equals_upstreams_where_wordnet_is_installed():
    scorer, missing = meteor_scorer()
    if scorer is None:
        if REQUIRE_WORDNET:
            pytest.fail(missing)
        pytest.skip(missing)
    cases = [case for case in pairs() if case[0] and case[1] and len(case[0]) < 500][::2]
    for label, answer in cases:
        expected = upstream_eval_ocr.nougat_per_metrics(label, answer)["meteor"]
        assert ours(label, answer)["meteor"] == pytest.approx(expected, rel=1e-12), (label[:40], answer[:40])


def test_without_wordnet_meteor_is_null_with_the_reason_and_the_install_command(tmp_path):
    script = (
        "import json; from got_lightning.evaluation.paper_metrics import paper_scores, paper_totals;"
        "print(json.dumps(paper_totals([paper_scores('the cat sat', 'the cat sits')])))"
    )
    environment = {key: value for key, value in os.environ.items() if key != "NLTK_DATA"}
    environment.update(HOME=str(tmp_path), NLTK_DATA=str(tmp_path / "empty"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=True)
    totals = json.loads(run.stdout)
    assert totals["meteor"] is None and "python -m nltk.downloader wordnet" in totals["meteor_missing"]
    assert totals["bleu"] is not None and totals["num_scored"] == 1
    assert set(PAPER_NAMES) <= set(totals)
    assert run.stderr == ""  # no NLTK warning, no jieba chatter
