"""`got-lightning score`: a predictions.jsonl and upstream's label/answer output give the same
figures, our CER beside the paper's metrics as upstream computes them."""

import json

import pytest

from got_lightning.cli import main
from got_lightning.evaluation.scores import SampleScore, totals
from tests.evaluation import upstream_eval_ocr
from tests.helpers import run_executable

PAIRS = [
    ("the cat sat on the mat", "the cat sat on a mat"),
    ("天地玄黄宇宙洪荒", "天地玄黄宇宙荒"),
    ("GOT-OCR 2.0 读 page 1", "GOT-OCR 2.0 读 page l"),
    ("identical line", "identical line"),
    ("a label with no answer", ""),
    ("line one\nline two", "line one line two line two line two line two line two line two line two"),
]


def write_both(tmp_path):
    predictions = tmp_path / "predictions.jsonl"
    lines = [
        {"image": f"{n}.png", "reference": label, "prediction": answer, "truncated": n == 5}
        for n, (label, answer) in enumerate(PAIRS)
    ]
    lines.append({"image": "broken.png", "error": "not an image file"})
    predictions.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    upstream = tmp_path / "results_final.json"
    upstream.write_text(
        json.dumps([{"label": label, "answer": answer} for label, answer in PAIRS], ensure_ascii=False), encoding="utf-8"
    )
    return predictions, upstream


def test_both_formats_score_alike_and_the_paper_section_is_upstreams(tmp_path):
    predictions, upstream = write_both(tmp_path)
    run = run_executable("score", str(predictions), "--json", str(tmp_path / "a.json"))
    assert run.returncode == 0, run.stderr
    assert "GOT paper's metrics: bleu" in run.stdout and run.stderr == ""
    assert main(["score", str(upstream), "--json", str(tmp_path / "b.json")]) == 0
    a, b = (json.loads((tmp_path / name).read_text(encoding="utf-8")) for name in ("a.json", "b.json"))
    expected = totals([SampleScore.of(answer, label) for label, answer in PAIRS])
    for scores in (a, b):
        assert scores["cer"] == pytest.approx(expected["cer"]) and scores["num_samples"] == len(PAIRS)
        oracle = upstream_eval_ocr.doc_text_eval(
            [{"label": label, "answer": answer} for label, answer in PAIRS], with_meteor=False
        )
        assert scores["paper"]["num_scored"] == oracle["eval question num"] == len(PAIRS) - 1
        for name in ("bleu", "f_measure", "precision", "recall", "edit_dist"):
            assert scores["paper"][name] == pytest.approx(oracle[name])
        assert scores["num_repetition"] == 1  # "line two" over and over
    assert a["num_truncated"] == 1 and a["num_without_prediction"] == 1
    assert a["format"] == "predictions.jsonl" and b["format"].startswith("upstream")


def test_normalization_is_applied_only_when_asked(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"label": "Ａ B", "answer": "A B"}]), encoding="utf-8")
    assert main(["score", str(path), "--json", str(tmp_path / "raw.json")]) == 0
    assert main(["score", str(path), "--json", str(tmp_path / "nfkc.json"), "--normalization.nfkc", "true"]) == 0
    raw, nfkc = (json.loads((tmp_path / name).read_text()) for name in ("raw.json", "nfkc.json"))
    assert raw["cer"] > 0 and nfkc["cer"] == 0 and nfkc["normalization"]["nfkc"]


@pytest.mark.parametrize(
    "content, words",
    [
        ("", "no line"),
        ('[{"label": 1}]', "record 0"),
        ("{not json\n", "line 1"),
        ('{"image": "a.png", "prediction": "x"}\n', "no 'reference'"),
    ],
)
def test_a_file_score_cannot_read_is_one_line(tmp_path, capsys, content, words):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    assert main(["score", str(path)]) == 2
    error = capsys.readouterr().err
    assert words in error and str(path) in error and error.count("\n") == 1
