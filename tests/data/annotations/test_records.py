import json

import pytest

from got_lightning.data.annotations.index import build_index
from got_lightning.data.annotations.records import parse_record
from got_lightning.data.errors import AnnotationFileError, BadSampleError
from tests.helpers import record, write_json, write_jsonl

BAD_RECORDS = [
    ({"conversations": []}, "no 'image'"),
    ({"image": "a.png"}, "no 'conversations'"),
    (
        {"image": "a.png", "conversations": [{"from": "system", "value": "<image>"}, {"from": "gpt", "value": "x"}]},
        "role 'system'",
    ),
    ({"image": "a.png", "conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "<image>"}]}, "alternate"),
    (
        {"image": "a.png", "conversations": [{"from": "human", "value": "OCR: "}, {"from": "gpt", "value": "x"}]},
        "no <image> placeholder",
    ),
    (
        {"image": "a.png", "conversations": [{"from": "human", "value": "<image><image>"}, {"from": "gpt", "value": "x"}]},
        "2 <image> placeholders for 1 image",
    ),
    (record("a.png", answer="  \n "), "empty answer"),
    (record("a.png", answer="a<|im_end|>b"), "reserved token"),
    ({"image": "a.png", "conversations": [{"from": "human", "value": "<image>"}]}, "ends with a human turn"),
]


@pytest.mark.parametrize("raw, reason", BAD_RECORDS)
def test_bad_record_is_named(raw, reason):
    with pytest.raises(BadSampleError, match=reason):
        parse_record(raw)


@pytest.mark.parametrize("writer", [write_json, write_jsonl])
def test_index_reads_records_lazily_and_names_bad_ones(tmp_path, writer):
    records = [record(f"img/{i}.png", answer=f"答案{i}") for i in range(50)]
    records[7] = {"image": "img/7.png"}
    index = build_index(writer(tmp_path / "ann.json", records), "guji")
    assert len(index) == 50
    assert index.read(49) == records[49] and index.read(0) == records[0]
    assert [(p.dataset, p.index, p.image) for p in index.problems] == [("guji", 7, "img/7.png")]
    assert 7 not in index.valid_positions


def test_invalid_jsonl_line_is_a_bad_record_with_its_line(tmp_path):
    path = tmp_path / "ann.jsonl"
    path.write_text(json.dumps(record("a.png")) + "\n{not json\n" + json.dumps(record("b.png")) + "\n")
    index = build_index(path, "d")
    assert len(index) == 3 and index.problems[0].index == 1
    assert "line 2" in index.problems[0].reason


def test_broken_json_list_reports_line_and_column(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text('[\n  {"image": "a.png", "conversations": []},\n  {"image": "b.png" "oops": 1}\n]')
    with pytest.raises(AnnotationFileError, match=r"line 3 column 21"):
        build_index(path, "d")


def test_missing_annotation_file_is_named(tmp_path):
    with pytest.raises(AnnotationFileError, match="does not exist"):
        build_index(tmp_path / "nope.json", "d")


def test_json_list_scan_across_small_chunks_keeps_utf8_offsets(tmp_path, monkeypatch):
    import got_lightning.data.annotations.index as index_module

    monkeypatch.setattr(index_module, "CHUNK_BYTES", 7)
    records = [record(f"圖/{i}.png", answer="臣聞求木之長者" * (i + 1)) for i in range(30)]
    path = tmp_path / "ann.json"
    path.write_text("\ufeff" + json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    index = build_index(path, "d")
    assert [index.read(i) for i in range(30)] == records
