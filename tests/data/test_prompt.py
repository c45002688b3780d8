import pytest

from got_lightning.data.annotations.records import parse_record
from got_lightning.data.errors import BadSampleError
from got_lightning.data.prompt import PromptBuilder
from got_lightning.tokenizer import reference_encode

IM_START, IM_END, IMG, IMG_END, PAD = 151644, 151645, 151857, 151858, 151859
SYSTEM = [
    IM_START,
    *reference_encode("system\nYou should follow the instructions carefully and explain your answers in detail."),
    IM_END,
]


def conversation(*turns):
    roles = ["human", "gpt"]
    return {"image": "a.png", "conversations": [{"from": roles[i % 2], "value": t} for i, t in enumerate(turns)]}


def test_single_turn_is_token_exact(tokenizer):
    sample = PromptBuilder(tokenizer, tokens_per_tile=4, model_max_length=8192).build(
        parse_record(conversation("<image>\nOCR: ", "天地玄黄 123")), [1]
    )
    user = [IM_START, *reference_encode("user\n"), IMG, PAD, PAD, PAD, PAD, IMG_END, *reference_encode("\nOCR: "), IM_END]
    header = [IM_START, *reference_encode("assistant\n")]
    answer = [*reference_encode("天地玄黄 123"), IM_END]
    assert sample.input_ids == SYSTEM + user + header + answer
    assert sample.labels == [-100] * len(SYSTEM + user + header) + answer


def test_tokens_follow_tiles_and_multi_turn_supervises_every_answer(tokenizer):
    builder = PromptBuilder(tokenizer, tokens_per_tile=16, model_max_length=8192)
    sample = builder.build(parse_record(conversation("<image>\nOCR: ", "first", "again?", "second")), [3])
    assert sample.input_ids.count(PAD) == 48
    supervised = [token for token, label in zip(sample.input_ids, sample.labels) if label != -100]
    assert supervised == [*reference_encode("first"), IM_END, *reference_encode("second"), IM_END]
    assert tokenizer.decode(sample.input_ids).endswith("<|im_start|>assistant\nsecond<|im_end|>")
    assert "<|im_end|><|im_start|>user\nagain?<|im_end|>" in tokenizer.decode(sample.input_ids)


def test_one_block_per_placeholder(tokenizer):
    record = parse_record(
        {
            "image": ["a.png", "b.png"],
            "conversations": [{"from": "human", "value": "<image> and <image>"}, {"from": "gpt", "value": "x"}],
        }
    )
    ids = PromptBuilder(tokenizer, 4, 8192).build(record, [1, 2]).input_ids
    first, second = ids.index(IMG), len(ids) - ids[::-1].index(IMG) - 1
    assert ids[first : first + 6] == [IMG, PAD, PAD, PAD, PAD, IMG_END]
    assert ids[second : second + 10] == [IMG] + [PAD] * 8 + [IMG_END]


def test_overlength_is_skipped_by_default(tokenizer):
    builder = PromptBuilder(tokenizer, tokens_per_tile=256, model_max_length=300)
    with pytest.raises(BadSampleError, match="over-length"):
        builder.build(parse_record(conversation("<image>\nOCR: ", "word " * 200)), [1])


def test_truncation_cuts_only_answer_text_and_drops_im_end(tokenizer):
    builder = PromptBuilder(tokenizer, tokens_per_tile=256, model_max_length=320, overlength="truncate")
    sample = builder.build(parse_record(conversation("<image>\nOCR: ", "word " * 200)), [1])
    assert len(sample.input_ids) == 320 and sample.truncated
    assert sample.input_ids.count(PAD) == 256
    assert sample.input_ids[-1] != IM_END and sample.labels[-1] == sample.input_ids[-1]


def test_image_tokens_are_never_truncated(tokenizer):
    builder = PromptBuilder(tokenizer, tokens_per_tile=256, model_max_length=200, overlength="truncate")
    with pytest.raises(BadSampleError, match="image tokens are never truncated"):
        builder.build(parse_record(conversation("<image>\nOCR: ", "x")), [1])
