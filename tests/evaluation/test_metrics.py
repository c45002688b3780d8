import random

import pytest
import torch
from torchmetrics.text import CharErrorRate

from got_lightning.evaluation.metrics import OcrMetrics
from got_lightning.evaluation.scores import SampleScore, TextNormalization


@pytest.mark.parametrize(
    ("prediction", "reference", "edits", "cer", "ned", "f1"),
    [
        ("kitten", "sitting", 3, 3 / 7, 3 / 7, 2 * 4 / 13),  # common characters i, t, t, n
        ("天地玄黄", "天地玄黄", 0, 0.0, 0.0, 1.0),
        ("天地玄", "天地玄黄", 1, 1 / 4, 1 / 4, 6 / 7),
        ("宇宙洪荒日", "天地玄黄", 5, 5 / 4, 1.0, 0.0),
        ("", "天地", 2, 1.0, 1.0, 0.0),
        ("天地", "", 2, 2.0, 1.0, 0.0),
        ("", "", 0, 0.0, 0.0, 1.0),
    ],
)
def test_sample_scores_match_hand_computed_values(prediction, reference, edits, cer, ned, f1):
    score = SampleScore.of(prediction, reference)
    assert score.edits == edits
    assert score.cer == pytest.approx(cer)
    assert score.normalized_edit_distance == pytest.approx(ned)
    assert score.f1 == pytest.approx(f1)
    assert score.exact == (edits == 0)


def test_split_scores_sum_edits_over_reference_characters_not_mean_of_rates():
    metric = OcrMetrics()
    metric.update([SampleScore.of("ab", "abcd"), SampleScore.of("", "x")])
    values = metric.compute()
    # edits 2 + 1 over 4 + 1 reference characters; a mean of per-sample rates would be 0.75
    assert float(values["cer"]) == pytest.approx(3 / 5)
    assert float(values["edit_distance"]) == pytest.approx((2 / 4 + 1) / 2)
    assert float(values["f1"]) == pytest.approx((2 * 2 / 6 + 0) / 2)
    assert float(values["exact_match"]) == 0.0
    assert int(values["num_samples"]) == 2


def test_cer_equals_torchmetrics_char_error_rate_on_random_text():
    rng = random.Random(0)
    alphabet = "天地玄黄宇宙洪荒abc 12，。\n"
    pairs = [
        (
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))),
            "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))),
        )
        for _ in range(50)
    ]
    ours = OcrMetrics()
    ours.update([SampleScore.of(p, r) for p, r in pairs])
    reference = CharErrorRate()
    reference.update([p for p, _ in pairs], [r for _, r in pairs])
    assert float(ours.compute()["cer"]) == pytest.approx(float(reference.compute()), rel=1e-6)


def test_normalization_options():
    text = "  Ｈｅｌｌｏ，\n world!\t天地  "
    assert TextNormalization()(text) == "Ｈｅｌｌｏ，\n world!\t天地"
    assert TextNormalization(nfkc=True)(text) == "Hello,\n world!\t天地"
    assert TextNormalization(nfkc=True, remove_punctuation=True)(text) == "Hello\n world\t天地"
    assert TextNormalization(remove_newlines=True)(text) == "Ｈｅｌｌｏ， world!\t天地"
    assert TextNormalization(collapse_whitespace=True)(text) == "Ｈｅｌｌｏ， world! 天地"
    assert TextNormalization(remove_whitespace=True)(text) == "Ｈｅｌｌｏ，world!天地"
    assert TextNormalization(remove_punctuation=True)("《天地》、玄黄。") == "天地玄黄"


def test_metric_states_are_exact_sums():
    metric = OcrMetrics()
    metric.update([SampleScore.of("a" * 1000, "b" * 1000)] * 3)
    assert metric.edits.dtype == torch.float64
    assert float(metric.compute()["edits"]) == 3000
