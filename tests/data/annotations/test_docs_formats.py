"""The table of dataset formats in docs/data.md holds what it says: each minimal example, written into
its format beside a page image, is read by `got-lightning data show` as a sample answering "the
text"; the mixed-format config beside it is a valid `data.datasets` list."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from got_lightning.cli import main
from got_lightning.data.config import DatasetSpec
from got_lightning.tokenizer import build_got_tokenizer
from tests.helpers import REPO_ROOT, text_page

pytest.importorskip("pyarrow")

SECTION = (
    (REPO_ROOT / "docs" / "data.md").read_text(encoding="utf-8").split("## The formats you already have")[1].split("\n## ")[0]
)
ROWS = {match[1]: match[2] for match in re.finditer(r"^\| `(\w+)`[^|]*\|[^|]*\| (.*) \|$", SECTION, re.MULTILINE)}
ROWS.pop("format")  # the header
EXAMPLES = {name: re.findall(r"`([^`]+)`", cell) for name, cell in ROWS.items()}
PAGE = '<?xml version="1.0"?><PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"><Page imageFilename="p1.png" imageWidth="300" imageHeight="200"><TextRegion id="r1"><Coords points="0,0 300,0 300,200 0,200"/>{}</TextRegion></Page></PcGts>'
ALTO = '<?xml version="1.0"?><alto xmlns="http://www.loc.gov/standards/alto/ns-v4#"><Description><sourceImageInformation><fileName>p1.png</fileName></sourceImageInformation></Description><Layout><Page ID="p" WIDTH="300" HEIGHT="200"><PrintSpace><TextBlock ID="b" HPOS="0" VPOS="0" WIDTH="300" HEIGHT="200">{}</TextBlock></PrintSpace></Page></Layout></alto>'


def test_the_table_lists_every_format():
    assert set(ROWS) == {"got", "messages", "sharegpt", "parquet", "hf", "pagexml", "alto", "lines"}


def write_example(name, folder):
    text_page(folder / "p1.png", text="the text")
    example = EXAMPLES[name]
    if name in ("got", "messages", "sharegpt"):
        (folder / "data.jsonl").write_text(example[0] + "\n", encoding="utf-8")
        return folder / "data.jsonl"
    if name == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        assert example[0] == "image" and example[-1] == "text"
        pq.write_table(pa.table({"image": [(folder / "p1.png").read_bytes()], "text": ["the text"]}), folder / "pages.parquet")
        return folder / "pages.parquet"
    if name in ("pagexml", "alto"):
        (folder / "page.xml").write_text((PAGE if name == "pagexml" else ALTO).format(example[0]), encoding="utf-8")
        return folder
    image, transcription, content = example[0], example[1], example[-1]
    assert image == "l001.png" and transcription == "l001.gt.txt"
    (folder / "p1.png").rename(folder / image)
    (folder / transcription).write_text(content + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("name", ["got", "messages", "sharegpt", "parquet", "pagexml", "alto", "lines"])
def test_each_minimal_example_reads_as_a_sample(name, micro_model_dir, tmp_path, capsys):
    annotations = write_example(name, tmp_path)
    assert main(["data", "show", "--annotations", str(annotations), "--model_path", str(micro_model_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    answer = [token for token, label in zip(summary["input_ids"], summary["labels"]) if label != -100]
    assert build_got_tokenizer().decode(answer) == "the text<|im_end|>"


def test_the_mixed_config_is_a_valid_dataset_list():
    block = re.search(r"```yaml\n(.*?)```", SECTION, re.DOTALL)[1]
    datasets = yaml.safe_load(block)["data"]["datasets"]
    specs = [DatasetSpec(**entry) for entry in datasets]
    assert {spec.format for spec in specs} == {"auto", "pagexml", "lines"}
    assert len({spec.name for spec in specs}) == len(specs) == 5
