"""`got-lightning serve` on a GPU: answers equal `predict` on the same GPU, in float32 and under
bf16 autocast, 16 parallel requests batched (skipped without CUDA)."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from got_lightning.cli import main
from got_lightning.evaluation.results import read_predictions
from tests.serving.server_process import ServerProcess, data_url, image_message

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_serve_on_a_gpu_reads_what_predict_reads_there(image_sensitive_model_dir, digit_pages, tmp_path, precision):
    common = ["--model.model_path", str(image_sensitive_model_dir), "--model.generation.max_new_tokens", "16"]
    common += ["--trainer.precision", precision]
    arguments = ["predict", *common, "--data.predict_input", str(digit_pages / "images"), "--trainer.accelerator", "gpu"]
    assert main([*arguments, "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false"]) == 0
    expected = {line["image"]: line["prediction"] for line in read_predictions(tmp_path / "predict" / "predictions.jsonl")}
    server = ServerProcess(*common, "--accelerator", "cuda", "--max_batch_size", "16", cwd=tmp_path)
    try:
        files = sorted((digit_pages / "images").iterdir())[:16]
        bodies = [{"messages": image_message(data_url(path))} for path in files]
        with ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(lambda body: server.client.post("/v1/chat/completions", json=body).json(), bodies))
        assert [reply["choices"][0]["message"]["content"] for reply in replies] == [expected[str(path)] for path in files]
        assert server.health()["largest_batch"] > 1
        assert server.terminate() == 0
    finally:
        server.stop()
