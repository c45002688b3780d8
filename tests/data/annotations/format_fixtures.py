"""One page written in every dataset format the project reads (files made here, none shipped)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.helpers import text_page

TEXT = "first line\nsecond line\nthird"
PROMPT = "<image>\nOCR: "

PAGE_XML = """<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/{version}">
  <Page imageFilename="page.png" imageWidth="300" imageHeight="200">
    <ReadingOrder><OrderedGroup id="ro">
      <RegionRefIndexed index="1" regionRef="r1"/>
      <RegionRefIndexed index="0" regionRef="r2"/>
    </OrderedGroup></ReadingOrder>
    <TextRegion id="r1"><Coords points="10,150 200,150 200,190 10,190"/>
      <TextLine id="r1l1"><Coords points="10,150 200,150 200,190 10,190"/>
        <TextEquiv index="1"><Unicode>an OCR guess</Unicode></TextEquiv>
        <TextEquiv index="0"><Unicode>third</Unicode></TextEquiv>
      </TextLine>
    </TextRegion>
    <TextRegion id="r2" orientation="0"><Coords points="10,10 290,10 290,120 10,120"/>
      <TextLine id="r2l1"><Coords points="10,10 290,10 290,60 10,60"/><TextEquiv><Unicode>first line</Unicode></TextEquiv></TextLine>
      <TextLine id="r2l2"><Coords points="20,60 280,60 280,118 20,118"/><TextEquiv><Unicode>second line</Unicode></TextEquiv></TextLine>
      <TextEquiv><Unicode>region-level text, not used when there are lines</Unicode></TextEquiv>
    </TextRegion>
  </Page>
</PcGts>
"""

ALTO = """<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="http://www.loc.gov/standards/alto/ns-v{version}#">
  <Description><MeasurementUnit>pixel</MeasurementUnit>
    <sourceImageInformation><fileName>page.png</fileName></sourceImageInformation></Description>
  <Layout><Page ID="p1" WIDTH="300" HEIGHT="200"><PrintSpace>
    <TextBlock ID="b1" HPOS="10" VPOS="10" WIDTH="280" HEIGHT="110">
      <TextLine ID="l1" HPOS="10" VPOS="10" WIDTH="280" HEIGHT="50">
        <String CONTENT="first"/><SP/><String CONTENT="line"/></TextLine>
      <TextLine ID="l2" HPOS="20" VPOS="60" WIDTH="260" HEIGHT="58">
        <String CONTENT="sec"/><HYP CONTENT="ond"/><SP/><String CONTENT="line"/></TextLine>
    </TextBlock>
    <TextBlock ID="b2" HPOS="10" VPOS="150" WIDTH="190" HEIGHT="40">
      <TextLine ID="l3" HPOS="10" VPOS="150" WIDTH="190" HEIGHT="40"><String CONTENT="third"/></TextLine>
    </TextBlock>
  </PrintSpace></Page></Layout>
</alto>
"""


def page_image(path: Path) -> Path:
    return text_page(path, size=(300, 200), text="first line / second line / third")


def write_all_formats(root: Path) -> dict[str, tuple[str, str]]:
    """{name: (annotations, format)} for the same page and text in every format but the hub id."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = page_image(root / "page.png")
    made: dict[str, tuple[str, str]] = {}
    got = root / "got.json"
    got.write_text(
        json.dumps([{"image": "page.png", "conversations": [{"from": "human", "value": PROMPT}, {"from": "gpt", "value": TEXT}]}])
    )
    made["got"] = (str(got), "got")
    messages = root / "messages.jsonl"
    message = {"messages": [{"role": "system", "content": "be careful"}, {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "\nOCR: "}]}, {"role": "assistant", "content": TEXT}], "images": ["page.png"]}  # fmt: skip
    messages.write_text(json.dumps(message) + "\n")
    made["messages"] = (str(messages), "messages")
    sharegpt = root / "scribes.json"
    sharegpt.write_text(
        json.dumps(
            [{"dialog": [{"speaker": "reader", "text": PROMPT}, {"speaker": "scribe", "text": TEXT}], "pics": ["page.png"]}]
        )
    )
    info = {"scribes": {"file_name": "scribes.json", "formatting": "sharegpt", "columns": {"messages": "dialog", "images": "pics"}, "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "reader", "assistant_tag": "scribe"}}}  # fmt: skip
    (root / "dataset_info.json").write_text(json.dumps(info))
    made["sharegpt"] = (str(sharegpt), "sharegpt")
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"image": pa.array([{"bytes": image.read_bytes(), "path": "page.png"}], type=image_type), "text": [TEXT]})
    (root / "parquet").mkdir()
    pq.write_table(table, root / "parquet" / "pages.parquet")
    made["parquet"] = (str(root / "parquet" / "pages.parquet"), "auto")
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    datasets.Dataset.from_dict(
        {"image": [{"bytes": image.read_bytes(), "path": "page.png"}], "text": [TEXT]}, features=features
    ).save_to_disk(str(root / "disk"))
    made["save_to_disk"] = (str(root / "disk"), "auto")
    transkribus = root / "transkribus"
    (transkribus / "page").mkdir(parents=True)
    shutil.copy(image, transkribus / "page.png")
    (transkribus / "page" / "page.xml").write_text(PAGE_XML.format(version="2019-07-15"))
    made["pagexml"] = (str(transkribus), "auto")
    alto = root / "alto"
    alto.mkdir()
    shutil.copy(image, alto / "page.png")
    (alto / "page.xml").write_text(ALTO.format(version=4))
    made["alto"] = (str(alto), "auto")
    lines = root / "lines"
    lines.mkdir()
    shutil.copy(image, lines / "page.png")
    (lines / "page.gt.txt").write_text(TEXT + "\n")
    made["lines"] = (str(lines), "auto")
    return made


def hub_dataset_cache(cache: Path, repo_id: str, parquet: Path, commit: str = "1" * 40) -> None:
    """A Parquet file as `data/train-00000-of-00001.parquet` of dataset `repo_id` in the hub cache layout."""
    repo = cache / f"datasets--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    target = repo / "snapshots" / commit / "data"
    target.mkdir(parents=True)
    shutil.copy(parquet, target / "train-00000-of-00001.parquet")
