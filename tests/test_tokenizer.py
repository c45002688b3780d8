import json
import logging

import pytest

from got_lightning.tokenizer import (
    PROBES,
    build_got_tokenizer,
    load_tokenizer,
    reference_encode,
    tokenization_problems,
)
from got_lightning.tokens import SPECIAL_TOKEN_IDS, VOCAB_SIZE

TEXTS = [
    "臣聞求木之長者，必固其根本；欲流之遠者，必浚其泉源。",
    "天地玄黄，宇宙洪荒。日月盈昃，辰宿列张。",
    "The quick brown fox jumps over the lazy dog. It's 5 o'clock!",
    "1234567890 3.14159 2024-11-23 第12345页",
    "!?…—「」『』（）,.;:'\"[]{}<>@#$%^&*",
    "  two spaces,\ttab,\n\nnewlines\r\nand trailing   ",
    "Ünïcödé combining e\u0301 and ﬁ ligature",
]


@pytest.mark.parametrize("text", TEXTS)
def test_ordinary_text_matches_original_tiktoken(tokenizer, text):
    assert tokenizer.encode(text, add_special_tokens=False) == reference_encode(text)


@pytest.mark.parametrize("text, stored", PROBES)
def test_the_stored_probe_ids_are_the_original_tokenizers(text, stored):
    assert stored == reference_encode(text)


def test_digits_are_split_one_by_one(tokenizer):
    ids = tokenizer.encode("2024", add_special_tokens=False)
    assert [tokenizer.decode([i]) for i in ids] == ["2", "0", "2", "4"]


def test_special_token_layout(tokenizer):
    assert len(tokenizer) == VOCAB_SIZE == 151860
    assert tokenizer.convert_tokens_to_ids(["<img>", "</img>", "<imgpad>"]) == [151857, 151858, 151859]
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.pad_token_id == 151643
    for token, expected in SPECIAL_TOKEN_IDS.items():
        assert tokenizer.convert_tokens_to_ids(token) == expected
    assert tokenizer.encode("<img><imgpad></img>", add_special_tokens=False) == [151857, 151859, 151858]


def test_model_directory_tokenizer_is_loaded_and_checked(tmp_path, caplog):
    good = tmp_path / "good"
    build_got_tokenizer().save_pretrained(good)
    with caplog.at_level(logging.WARNING):
        loaded = load_tokenizer(good)
    assert not caplog.records
    assert loaded.encode("第1234页", add_special_tokens=False) == reference_encode("第1234页")


def test_grouped_digit_pattern_gives_the_same_ids_with_this_vocabulary(tmp_path, caplog):
    """The transformers GOT conversion used `\\p{N}{1,3}`; Qwen's vocabulary has no multi-digit
    token, so ids stay single digits and no warning is due."""
    grouped = tmp_path / "grouped"
    build_got_tokenizer().save_pretrained(grouped)
    _edit_tokenizer_json(grouped, lambda c: _replace_pattern(c, r"\p{N}|", r"\p{N}{1,3}|"))
    with caplog.at_level(logging.WARNING):
        loaded = load_tokenizer(grouped)
    assert loaded.encode("第1234页 56789", add_special_tokens=False) == reference_encode("第1234页 56789")
    assert not caplog.records


def test_tokenizer_without_nfc_is_warned_about(tmp_path, caplog):
    plain = tmp_path / "plain"
    build_got_tokenizer().save_pretrained(plain)
    _edit_tokenizer_json(plain, lambda c: c.update(normalizer=None))
    with caplog.at_level(logging.WARNING):
        loaded = load_tokenizer(plain)
    assert tokenization_problems(loaded)
    assert any("differs from the original GOT tokenizer" in r.message for r in caplog.records)


def _replace_pattern(content: dict, old: str, new: str) -> None:
    split = content["pre_tokenizer"]["pretokenizers"][0]["pattern"]
    assert old in split["Regex"]
    split["Regex"] = split["Regex"].replace(old, new)


def _edit_tokenizer_json(folder, edit) -> None:
    tokenizer_file = folder / "tokenizer.json"
    content = json.loads(tokenizer_file.read_text())
    edit(content)
    tokenizer_file.write_text(json.dumps(content))
