"""Property-based tests: arbitrary JSON, Unicode and bytes give either a valid sample or a named
error (BadSampleError / AnnotationFileError), never a crash or a hang."""

import io
import json
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from got_lightning.data.annotations.index import build_index
from got_lightning.data.annotations.records import parse_record
from got_lightning.data.errors import AnnotationFileError, BadSampleError
from got_lightning.data.images.decode import decode_pixels, open_image
from got_lightning.data.prompt import PromptBuilder

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Surrogates, RTL, combining marks, NUL and our reserved words are all reachable.
TEXT = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
    st.sampled_from(
        ["<image>", "<image>\nOCR: ", "\u202e\u05d0\u05d1", "e\u0301\u0302", "\x00", "\ud800", "<|im_end|>", "<img>", "  "]
    ),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
TURN = st.fixed_dictionaries({"from": st.sampled_from(["human", "gpt", "system", 1]), "value": TEXT | JSON})
RECORD = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"image": TEXT | JSON | st.lists(TEXT, max_size=3), "conversations": st.lists(TURN, max_size=4) | JSON}
    ),
)


@FUZZ
@given(RECORD)
def test_parser_accepts_or_names_the_problem(obj):
    try:
        record = parse_record(obj)
    except BadSampleError as error:
        assert str(error)
        return
    assert record.images and record.turns


@FUZZ
@given(prompt=TEXT, answer=TEXT)
def test_prompt_builder_tokenizes_any_accepted_text(tokenizer, prompt, answer):
    obj = {
        "image": "page.png",
        "conversations": [{"from": "human", "value": "<image>" + prompt}, {"from": "gpt", "value": answer}],
    }
    try:
        record = parse_record(obj)
    except BadSampleError:
        return
    sample = PromptBuilder(tokenizer, 4, 4096).build(record, [1])
    assert len(sample.input_ids) == len(sample.labels) > 4


@FUZZ
@given(st.binary(max_size=2000) | st.text(max_size=400).map(str.encode))
def test_annotation_files_of_random_bytes(tmp_path, content):
    for name in ("a.json", "a.jsonl"):
        path = tmp_path / name
        path.write_bytes(content)
        try:
            index = build_index(path, "fuzz")
        except AnnotationFileError as error:
            assert str(path) in str(error)
            continue
        for position in index.valid_positions:
            parse_record(index.read(int(position)))


def _image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (17, 9), "white").save(buffer, format=fmt)
    return buffer.getvalue()


def _damaged(fmt: str):
    whole = _image_bytes(fmt)
    return st.tuples(st.integers(0, len(whole)), st.binary(max_size=200)).map(lambda cut: whole[: cut[0]] + cut[1])


@FUZZ
@given(st.binary(min_size=1, max_size=3000) | _damaged("PNG") | _damaged("JPEG"))
def test_random_bytes_as_an_image(tmp_path, content):
    path = tmp_path / "page.img"
    path.write_bytes(content)
    try:
        pixels = decode_pixels(open_image(path, 10_000_000), path)
    except BadSampleError as error:
        assert str(error)
        return
    assert pixels.dtype == torch.uint8 and pixels.shape[0] == 3 and min(pixels.shape[1:]) > 0


def test_fuzzing_reaches_valid_samples_too(tokenizer):
    """The generators above are not all rejections: a plain record passes."""
    record = parse_record(
        json.loads(
            json.dumps(
                {
                    "image": "p.png",
                    "conversations": [{"from": "human", "value": "<image>\nOCR: "}, {"from": "gpt", "value": "\u05d0\u0301 x"}],
                }
            )
        )
    )
    assert PromptBuilder(tokenizer, 4, 4096).build(record, [1]).input_ids
    assert Path(record.images[0]).name == "p.png"
