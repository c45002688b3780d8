import platform

import pytest
import torch
from torch import nn

from got_lightning.model.output_head import PackedOutputHead, generation_head
from got_lightning.tokens import VOCAB_SIZE

needs_onednn = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available() or platform.machine().lower() not in {"x86_64", "amd64"},
    reason="packing needs oneDNN on x86",
)


@pytest.fixture
def lm_head():
    torch.manual_seed(0)
    return nn.Linear(64, VOCAB_SIZE, bias=False)


@needs_onednn
@pytest.mark.parametrize("rows", [8, 5, 1], ids=["packed_rows", "fewer_rows", "one_row"])
@torch.no_grad()
def test_packed_head_gives_the_logits_of_the_layer(lm_head, rows):
    head = generation_head(lm_head, 8)
    hidden = torch.randn(rows, 64)
    assert isinstance(head, PackedOutputHead)
    logits = head(hidden)
    assert logits.shape == (rows, VOCAB_SIZE)
    torch.testing.assert_close(logits, lm_head(hidden), rtol=1e-5, atol=1e-5)
    assert torch.equal(logits.argmax(-1), lm_head(hidden).argmax(-1))


@needs_onednn
@torch.no_grad()
def test_packed_head_keeps_a_bias():
    torch.manual_seed(0)
    layer = nn.Linear(16, 300)
    layer.bias.fill_(3.0)
    hidden = torch.randn(4, 16)
    torch.testing.assert_close(generation_head(layer, 4)(hidden), layer(hidden))


@needs_onednn
def test_bfloat16_and_autocast_keep_the_layer_itself(lm_head):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert generation_head(lm_head, 8) is lm_head
    assert isinstance(generation_head(lm_head, 8), PackedOutputHead)
    assert generation_head(lm_head.to(torch.bfloat16), 8) is lm_head
