"""Every dataset format feeds the same samples: one page written as GOT JSON, messages, sharegpt
(with dataset_info.json keys), Parquet, save_to_disk, a hub dataset id, PAGE-XML, ALTO and line
images gives identical `data show --json` token ids, labels and pixels; region and line levels
cut the page; bad input names the file and the reason."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from got_lightning.cli import main
from got_lightning.data.annotations.formats import detect_format
from got_lightning.data.annotations.formats.xml_pages import read_alto, read_page_xml
from got_lightning.data.config import DatasetSpec
from got_lightning.data.dataset import index_datasets
from tests.data.annotations.format_fixtures import ALTO, PAGE_XML, TEXT, hub_dataset_cache, page_image, write_all_formats
from tests.helpers import run_executable

pytest.importorskip("pyarrow")
pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    return root, write_all_formats(root)


def shown(capsys, model_dir, annotations, kind, *extra):
    arguments = ["data", "show", "--annotations", annotations, "--format", kind, "--model_path", str(model_dir), "--json", *extra]
    assert main(arguments) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def sample_of(summary):
    return summary["input_ids"], summary["labels"], summary["pixel_values_sha256"], summary["image_sizes"]


def test_auto_detection_names_every_format(formats):
    _, made = formats
    detected = {name: detect_format(source, name) for name, (source, _) in made.items()}
    assert detected == {
        "got": "got",
        "messages": "messages",
        "sharegpt": "sharegpt",
        "parquet": "parquet",
        "save_to_disk": "hf",
        "pagexml": "pagexml",
        "alto": "alto",
        "lines": "lines",
    }


def test_the_same_page_in_every_format_is_the_same_sample(formats, micro_model_dir, capsys, tmp_path):
    root, made = formats
    reference = sample_of(shown(capsys, micro_model_dir, *made["got"]))
    for name, (source, kind) in made.items():
        assert sample_of(shown(capsys, micro_model_dir, source, kind)) == reference, name
    assert sample_of(shown(capsys, micro_model_dir, made["save_to_disk"][0], "datasets")) == reference  # hf's other name
    # The same keys named by an explicit dataset_info in a config.
    config = tmp_path / "sharegpt.yaml"
    spec = {"name": "scribes", "annotations": made["sharegpt"][0], "dataset_info": str(root / "dataset_info.json")}
    config.write_text(json.dumps({"data": {"datasets": [spec], "model_path": str(micro_model_dir)}}))
    assert main(["data", "show", "--config", str(config), "--json"]) == 0
    assert sample_of(json.loads(capsys.readouterr().out)) == reference


@pytest.mark.slow
def test_a_dataset_id_reads_its_parquet_from_the_hub_cache_offline(formats, micro_model_dir, capsys, tmp_path):
    _, made = formats
    reference = sample_of(shown(capsys, micro_model_dir, *made["got"]))
    hub_dataset_cache(tmp_path / "hub", "someone/guji-pages", Path(made["parquet"][0]))
    environment = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    environment.update(HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    arguments = [
        "data",
        "show",
        "--annotations",
        "someone/guji-pages",
        "--format",
        "hf",
        "--model_path",
        str(micro_model_dir),
        "--json",
    ]
    result = run_executable(*arguments, env=environment)
    assert result.returncode == 0, result.stderr
    assert sample_of(json.loads(result.stdout)) == reference
    missing = run_executable(*[a if a != "someone/guji-pages" else "someone/absent" for a in arguments], env=environment)
    assert missing.returncode == 2 and "dataset someone/absent" in missing.stderr and "--repo-type dataset" in missing.stderr


def test_page_xml_keeps_the_reading_order_and_picks_the_ground_truth_text_equiv(tmp_path):
    path = tmp_path / "p.xml"
    for version in ("2013-07-15", "2019-07-15"):
        path.write_text(PAGE_XML.format(version=version))
        page = read_page_xml(path)
        assert [region.id for region in page.regions] == ["r2", "r1"]  # ReadingOrder, not document order
        assert page.text == TEXT
        assert page.regions[0].lines[1].box == (20, 60, 281, 119)
    for version in (2, 3, 4):
        path.write_text(ALTO.format(version=version))
        assert read_alto(path).text == TEXT


def test_region_and_line_levels_cut_the_page_and_keep_it_in_one_split(formats, micro_model_dir):
    _, made = formats
    for level, texts, sizes in (
        ("region", ["first line\nsecond line", "third"], [(281, 111), (191, 41)]),
        ("line", ["first line", "second line", "third"], [(281, 51), (261, 59), (191, 41)]),
    ):
        for kind in ("pagexml", "alto"):
            spec = DatasetSpec(kind, made[kind][0], level=level, val_fraction=0.5)
            (indexed,) = index_datasets([spec])
            index = indexed.train.index
            assert [index.read(p)["conversations"][1]["value"] for p in range(len(index))] == texts, (kind, level)
            if kind == "pagexml":
                assert [index.images(p)[0].region.size for p in range(len(index))] == sizes
            assert len(set(index.split_points.tolist())) == 1  # every cut of one page: the same split


def test_a_system_message_is_ignored_and_counted_unless_kept(formats):
    _, made = formats
    (ignored,) = index_datasets([DatasetSpec("m", made["messages"][0])])
    assert ignored.train.index.notes == {"system message ignored (keep_system: false)": 1}
    (kept,) = index_datasets([DatasetSpec("m", made["messages"][0], keep_system=True)])
    assert kept.train.index.read(0)["system"] == "be careful" and not kept.train.index.notes


def test_bad_input_names_the_file_the_element_and_the_reason(tmp_path):
    page_image(tmp_path / "xml" / "page.png")
    (tmp_path / "xml" / "broken.xml").write_text("<PcGts><Page")
    (tmp_path / "xml" / "noimage.xml").write_text(
        PAGE_XML.format(version="2019-07-15").replace('imageFilename="page.png"', 'imageFilename="gone.png"')
    )
    (indexed,) = index_datasets([DatasetSpec("x", str(tmp_path / "xml"), format="pagexml")])
    reasons = sorted(problem.reason for problem in indexed.problems)
    assert any("broken.xml" in reason for reason in reasons)
    assert any("noimage.xml" in reason and "gone.png" in reason for reason in reasons)
    messages = tmp_path / "m.jsonl"
    messages.write_text(json.dumps({"messages": [{"role": "tool", "content": "x"}], "images": ["a.png"]}) + "\n")
    (indexed,) = index_datasets([DatasetSpec("m", str(messages), format="messages")])
    assert "role 'tool'" in indexed.problems[0].reason and indexed.problems[0].index == 0
    lines = tmp_path / "lines"
    page_image(lines / "a.png")
    (indexed,) = index_datasets([DatasetSpec("l", str(lines), format="lines")])
    assert "no transcription beside" in indexed.problems[0].reason


def test_a_page_of_a_multi_page_tiff_is_read_by_its_number(tmp_path, micro_model_dir, capsys):
    from PIL import Image

    pages = [Image.new("RGB", (64, 32), color) for color in ("white", "black", "gray")]
    pages[0].save(tmp_path / "book.tif", save_all=True, append_images=pages[1:])
    records = [{"image": f"book.tif#{n}", "conversations": [{"from": "human", "value": "<image>\nOCR: "}, {"from": "gpt", "value": "x"}]} for n in (1, 2, 4)]  # fmt: skip
    (tmp_path / "book.json").write_text(json.dumps(records))
    digests = [
        shown(capsys, micro_model_dir, str(tmp_path / "book.json"), "got", "--index", str(n))["pixel_values_sha256"]
        for n in (0, 1)
    ]
    assert digests[0] != digests[1]
    assert (
        main(["data", "show", "--annotations", str(tmp_path / "book.json"), "--model_path", str(micro_model_dir), "--index", "2"])
        == 1
    )
    assert "has 3 page(s): page 4 does not exist" in " ".join(capsys.readouterr().out.split())


def test_convert_writes_got_jsonl_that_reads_as_the_source_and_back_to_messages(formats, micro_model_dir, capsys, tmp_path):
    _, made = formats
    for name, (source, kind) in made.items():
        expected = sample_of(shown(capsys, micro_model_dir, source, kind))
        output = tmp_path / name / "out.jsonl"
        assert main(["data", "convert", "--annotations", source, "--format", kind, "--output", str(output)]) == 0
        capsys.readouterr()
        assert sample_of(shown(capsys, micro_model_dir, str(output), "got", "--allow-outside-root")) == expected, name
        back = tmp_path / name / "messages.jsonl"
        arguments = ["data", "convert", "--annotations", str(output), "--output", str(back), "--to", "messages"]
        assert main([*arguments, "--allow-outside-root"]) == 0
        capsys.readouterr()
        assert sample_of(shown(capsys, micro_model_dir, str(back), "messages", "--allow-outside-root")) == expected, name
    embedded = json.loads((tmp_path / "parquet" / "out.jsonl").read_text())
    assert embedded["image"].startswith("images/") and (tmp_path / "parquet" / embedded["image"]).is_file()
    in_place = json.loads((tmp_path / "got" / "out.jsonl").read_text())
    assert Path(in_place["image"]) == Path(made["got"][0]).parent.joinpath("page.png").resolve()  # outside: absolute


def test_convert_writes_each_line_cut_once_and_it_reads_the_same(formats, micro_model_dir, capsys, tmp_path):
    _, made = formats
    config = tmp_path / "lines.yaml"
    spec = {"name": "transkribus", "annotations": made["pagexml"][0], "level": "line", "mask_outside_polygon": True}
    config.write_text(json.dumps({"data": {"datasets": [spec], "model_path": str(micro_model_dir)}}))
    output = tmp_path / "out" / "lines.jsonl"
    assert main(["data", "convert", "--config", str(config), "--output", str(output)]) == 0
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["conversations"][1]["value"] for r in records] == ["first line", "second line", "third"]
    assert len(list((tmp_path / "out" / "images").rglob("*.png"))) == 3
    capsys.readouterr()
    assert main(["data", "show", "--config", str(config), "--split", "train", "--index", "0", "--json"]) == 0
    cut = json.loads(capsys.readouterr().out)
    converted = shown(capsys, micro_model_dir, str(output), "got", "--index", str(cut["record"]))
    assert sample_of(converted) == sample_of(cut)


def test_data_check_reports_an_unasked_multi_page_file_and_ignored_system_messages(formats, micro_model_dir, capsys, tmp_path):
    from PIL import Image

    pages = [Image.new("RGB", (64, 32), color) for color in ("white", "black")]
    pages[0].save(tmp_path / "book.tif", save_all=True, append_images=pages[1:])
    (tmp_path / "book.json").write_text(json.dumps([{"image": "book.tif", "conversations": [{"from": "human", "value": "<image>\nOCR: "}, {"from": "gpt", "value": "x"}]}]))  # fmt: skip
    assert (
        main(["data", "check", "--annotations", str(tmp_path / "book.json"), "--model_path", str(micro_model_dir), "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["notes"] == {"multi-page image, page 1 of 2 read": 1}
    _, made = formats
    assert main(["data", "check", "--annotations", made["messages"][0], "--model_path", str(micro_model_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == {"messages: system message ignored (keep_system: false)": 1}


@pytest.mark.slow
def test_fit_runs_on_a_config_that_mixes_three_formats(formats, micro_model_dir, tmp_path):
    _, made = formats
    config = tmp_path / "mixed.yaml"
    datasets = [
        {"name": "swift", "annotations": made["messages"][0], "repeat": 4},
        {"name": "table", "annotations": made["parquet"][0], "repeat": 4},
        {"name": "transkribus", "annotations": made["pagexml"][0], "level": "line", "repeat": 2},
    ]
    body = {
        "model": {"model_path": str(micro_model_dir), "generation": {"max_new_tokens": 4}},
        "data": {"datasets": datasets, "batch_size": 2, "val_fraction": 0.0},
        "trainer": {
            "accelerator": "cpu",
            "max_steps": 4,
            "logger": False,
            "default_root_dir": str(tmp_path / "run"),
            "limit_val_batches": 0,
        },
    }
    config.write_text(json.dumps(body))
    result = run_executable("fit", "--config", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    for name, count in (("swift", 4), ("table", 4), ("transkribus", 6)):
        assert f"dataset {name!r}" in result.stderr and f"train {count}" in result.stderr
