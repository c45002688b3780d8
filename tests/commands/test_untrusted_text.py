"""No text breaks the tools: markup-like, CJK, RTL, control and very long strings from annotation
files and predictions go through `compare`, `data check` and `data show` as plain text, in the
terminal and in the HTML report (property-based, in-process through `main`)."""

import json
from html.parser import HTMLParser

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from got_lightning.cli import main
from tests.helpers import text_page

UNTRUSTED = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PIECES = st.sampled_from(
    [
        "[",
        "]",
        "[/",
        "[b]",
        "[/i]",
        "[bold red]",
        "[link=file:///x]",
        "\\[",
        "<",
        ">",
        "&amp;",
        "</script>",
        "<!--",
        "\n",
        "\r\n",
        "\t",
        "\x1b[31m",
        "\x07",
        "\u202e",
        "\u200f",
        "天地玄黄",
        "שלום",
        "مرحبا",
        "e\u0301",
        " ",
    ]
)
TEXT = st.lists(st.one_of(PIECES, st.text(st.characters(exclude_categories=("Cs",)), max_size=20)), min_size=1, max_size=10).map(
    "".join
)
LONG = st.builds(lambda text, times: text * times, TEXT, st.integers(1, 300))


class JsonBlocks(HTMLParser):
    def __init__(self):
        super().__init__()
        self.blocks, self.tags, self._id = {}, [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._id = dict(attrs).get("id") if tag == "script" else None

    def handle_data(self, data):
        if self._id:
            self.blocks[self._id] = self.blocks.get(self._id, "") + data


@UNTRUSTED
@given(reference=LONG, prediction=TEXT, name=TEXT)
def test_compare_prints_and_writes_any_text(reference, prediction, name, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("compare")
    record = {"image": name, "image_path": None, "dataset": name, "reference": reference}
    for side, text in (("base", reference), ("tuned", prediction)):
        (folder / f"{side}.jsonl").write_text(json.dumps({**record, "prediction": text}) + "\n", encoding="utf-8")
    assert main(["compare", str(folder / "base.jsonl"), str(folder / "tuned.jsonl")]) == 0
    capsys.readouterr()
    page = JsonBlocks()
    page.feed((folder / "comparison.html").read_text(encoding="utf-8"))
    assert page.tags.count("script") == 3 and "b" not in page.tags and "a" not in page.tags
    shown = json.loads(page.blocks["rows"])[0]
    assert (shown["reference"], shown["image"], shown["dataset"]) == (reference, name, name or "(unnamed)")
    assert json.loads((folder / "comparison.json").read_text(encoding="utf-8"))["shared_samples"] == 1


@UNTRUSTED
@given(answer=LONG, dataset=TEXT, image=TEXT)
def test_data_check_and_show_print_any_text(answer, dataset, image, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("data")
    text_page(folder / "page.png", size=(64, 32))
    records = [
        {"image": "page.png", "conversations": [{"from": "human", "value": "<image>\nOCR: "}, {"from": "gpt", "value": answer}]},
        {"image": image, "conversations": [{"from": "human", "value": "<image>\nOCR: "}, {"from": "gpt", "value": answer}]},
    ]
    (folder / "data.json").write_text(json.dumps(records), encoding="utf-8")
    config = folder / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {"data": {"datasets": [{"name": dataset, "annotations": str(folder / "data.json")}], "model_max_length": 100000}}
        ),
        encoding="utf-8",
    )
    assert main(["data", "check", "--config", str(config)]) in (0, 1)  # 1: the second image is missing
    capsys.readouterr()
    assert main(["data", "check", "--config", str(config), "--json"]) in (0, 1)
    report = json.loads(capsys.readouterr().out)
    assert report["records"] == 2 and all(bad["dataset"] == dataset for bad in report["bad"])
    # 0, 1 for a bad sample, 2 with one error line when the split is empty (an over-long answer)
    assert main(["data", "show", "--config", str(config), "--index", "0"]) in (0, 1, 2)
    assert main(["data", "show", "--config", str(config), "--index", "0", "--json"]) in (0, 1, 2)
    assert "Traceback" not in capsys.readouterr().err
