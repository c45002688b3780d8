"""`got-lightning compare`: rankings by edits, what is still wrong, character confusions, per-dataset
totals, run details, and reports (terminal, HTML, JSON) that no text can break."""

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from PIL import Image

from got_lightning.cli import main
from got_lightning.reports.comparison import Segment, align, aligned_lines, compare, edit_pairs
from tests.helpers import run_executable


def write_predictions(path, rows):
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def row(image, reference, prediction, dataset="guji", image_path=None):
    return {"image": image, "image_path": image_path, "reference": reference, "prediction": prediction, "dataset": dataset}


@pytest.fixture
def long_and_short(tmp_path):
    """A 2000-character page whose 40 edits drop to 10, and a 10-character line whose 5 edits drop
    to 0: by CER change the line moved most, by edits (the corpus CER) the page did."""
    page = "天地玄黄宇宙洪荒日月盈昃" * 166 + "辰宿列张秋收冬藏"
    damaged = lambda count: "".join("X" if i < count else c for i, c in enumerate(page))  # noqa: E731
    line = "0123456789"
    base = write_predictions(
        tmp_path / "base.jsonl",
        [
            row("page.png", page, damaged(40)),
            row("line.png", line, "01234xxxxx", dataset="lines"),
            row("worse.png", line, line, dataset="lines"),
        ],
    )
    tuned = write_predictions(
        tmp_path / "tuned.jsonl",
        [
            row("page.png", page, damaged(10)),
            row("line.png", line, line, dataset="lines"),
            row("worse.png", line, "0123456788", dataset="lines"),
        ],
    )
    return base, tuned


def test_rankings_are_by_edits_and_every_sample_still_wrong_is_listed(long_and_short):
    comparison = compare(*long_and_short)
    assert [c.image for c in comparison.improved] == ["page.png", "line.png"]  # 30 edits fewer, then 5
    assert [c.image for c in comparison.regressed] == ["worse.png"]
    assert [(c.image, c.tuned_score.edits) for c in comparison.still_wrong] == [("page.png", 10), ("worse.png", 1)]
    assert comparison.datasets == ["guji", "lines"]
    by_dataset = {name: comparison.totals("tuned", changes)["cer"] for name, changes in comparison.by_dataset().items()}
    assert by_dataset == {"guji": pytest.approx(10 / 2000), "lines": pytest.approx(1 / 20)}


def test_confusions_count_substitutions_missing_and_extra_characters():
    assert sorted(edit_pairs("a8c", "a9c")) == [("9", "8")]
    assert sorted(edit_pairs("abcd", "abc")) == [("", "d")] and sorted(edit_pairs("ab", "abc")) == [("c", "")]


def test_confusion_table_of_a_split(tmp_path):
    base = write_predictions(tmp_path / "b.jsonl", [row(f"{i}.png", "1999", "1999") for i in range(3)])
    tuned = write_predictions(
        tmp_path / "t.jsonl", [row("0.png", "1999", "1899"), row("1.png", "1999", "1989"), row("2.png", "1999", "199")]
    )
    comparison = compare(base, tuned)
    assert comparison.confusions("tuned") == [("9", "8", 2), ("9", "", 1)]
    assert comparison.confusions("base") == []


def test_readings_align_with_the_reference_line_by_line():
    segments = align("天x玄\n黄", "天地玄\n黄宇")
    assert Segment("substituted", "地", "x") in segments and Segment("missing", "宇", "") in segments
    lines = aligned_lines(segments)
    assert len(lines) == 2
    assert "".join(s.reference for s in lines[0]) == "天地玄" and "".join(s.prediction for s in lines[1]) == "黄"


def test_compare_writes_html_and_json_with_run_details_and_prints_a_summary(long_and_short, tmp_path):
    base, tuned = long_and_short
    (tmp_path / "metrics.json").write_text(
        json.dumps(
            {"global_step": 150, "loss": 0.25, "checkpoint": "runs/x/last.ckpt", "normalization": {"strip": True, "nfkc": False}}
        )
    )
    result = run_executable("compare", str(base), str(tuned), "--top", "1")
    assert result.returncode == 0, result.stderr
    assert "2 improved, 1 regressed, 0 unchanged; 2 still wrong" in result.stdout
    assert "still wrong, most edits first: 1 of 2" in result.stdout and "per dataset" in result.stdout
    summary = json.loads((tmp_path / "comparison.json").read_text(encoding="utf-8"))
    assert [entry["image"] for entry in summary["still_wrong"]] == ["page.png", "worse.png"]
    assert summary["improved"][0]["image"] == "page.png" and summary["improved"][0]["edit_change"] == -30
    assert {"expected": "天", "read": "X", "count": 1} in summary["confusions"]["tuned"]
    assert {"expected": "9", "read": "8", "count": 1} in summary["confusions"]["tuned"]
    assert summary["datasets"]["lines"]["samples"] == 2 and summary["tuned_run"]["global_step"] == 150
    html = (tmp_path / "comparison.html").read_text(encoding="utf-8")
    assert "runs/x/last.ckpt" in html and "150" in html and 'id="confusions-tuned"' in html


class PageReader(HTMLParser):
    """The page's JSON data and every tag, as a browser's parser sees them."""

    def __init__(self):
        super().__init__()
        self.scripts, self.tags, self._in = {}, [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attributes = dict(attrs)
        self._in = attributes.get("id") if tag == "script" and attributes.get("type") == "application/json" else None

    def handle_data(self, data):
        if self._in:
            self.scripts[self._in] = self.scripts.get(self._in, "") + data

    def handle_endtag(self, tag):
        self._in = None


NASTY = [
    "[/i]",
    "see [note] here",
    "[bold red]x[/]",
    "<script>alert(1)</script>",
    "</script><b>",
    "a\u202eb\u202cc",
    "שלום عالم",
    "天地玄黄\u3000宇宙",
    "\x00\x07\x1b[31mred",
    "&amp; &lt;",
    "x" * 5000,
    "\u0000</ScRiPt>",
    "\ud7ff\ue000",
]


@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
def test_no_text_breaks_the_terminal_the_html_or_the_json(text, tmp_path, capsys):
    page = tmp_path / "p.png"
    Image.new("RGB", (40, 20), "white").save(page)
    name = f"{text[:40]}.png"
    base = write_predictions(tmp_path / "b.jsonl", [row(name, text, text + "!", dataset=text[:20], image_path=str(page))])
    tuned = write_predictions(
        tmp_path / "t.jsonl", [row(name, text, text[: len(text) // 2], dataset=text[:20], image_path=str(page))]
    )
    assert main(["compare", str(base), str(tuned), "--html", str(tmp_path / "r.html")]) == 0
    printed = capsys.readouterr().out
    assert "still wrong" in printed and "HTML report" in printed
    if text.startswith("[") or "[note]" in text:  # rich markup would eat these
        assert text.split()[0].split("x")[0] in printed and ("[note]" in printed or "[note]" not in text)
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    reader = PageReader()
    reader.feed(html)
    assert reader.tags.count("script") == 3  # the two JSON blocks and the page's own script
    assert "b" not in reader.tags  # nothing from the data became markup
    rows = json.loads(reader.scripts["rows"])
    assert rows[0]["reference"] == text and rows[0]["image"] == name
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["still_wrong"][0]["image"] == name


def test_help_and_the_light_commands_never_import_torch_or_lightning(tmp_path):
    base = write_predictions(tmp_path / "b.jsonl", [row("a.png", "ab", "a")])
    probe = (
        "import sys\n"
        "from got_lightning.cli import main\n"
        f"for argv in (['--help'], ['data', '--help'], ['compare', '--help'], ['report', '--help'], ['compare', {str(base)!r}, {str(base)!r}]):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(name for name in ('torch', 'lightning', 'transformers') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_different_references_are_refused(tmp_path, capsys):
    base = write_predictions(tmp_path / "b.jsonl", [row("a.png", "天地玄黄", "天地")])
    tuned = write_predictions(tmp_path / "t.jsonl", [row("a.png", "天地", "天地")])
    assert main(["compare", str(base), str(tuned)]) == 2
    assert "different references" in capsys.readouterr().err


def test_terminal_output_stays_a_summary_at_thousands_of_samples(tmp_path):
    rows_base = [row(f"{i:05d}.png", f"line {i} of text", f"line {i} of txt") for i in range(3000)]
    rows_tuned = [
        row(f"{i:05d}.png", f"line {i} of text", f"line {i} of text" if i % 3 else f"lime {i} of text") for i in range(3000)
    ]
    result = run_executable(
        "compare",
        str(write_predictions(tmp_path / "b.jsonl", rows_base)),
        str(write_predictions(tmp_path / "t.jsonl", rows_tuned)),
        "--top",
        "5000",
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) < 80_000 and "still wrong, most edits first: 50 of 1000" in result.stdout
    html = (tmp_path / "comparison.html").read_text(encoding="utf-8")
    assert len(re.findall(r"<tr", html)) < 100  # sample rows are drawn by the page script, a page at a time
