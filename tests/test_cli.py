"""The `got-lightning` executable as a process: the garbage collector around its start."""

import gc
import json
import os

import lightning as L
import pytest

from tests.helpers import REPO_ROOT, run_executable
from tests.training_helpers import fit_config


class CollectorProbe(L.Callback):
    """Writes what the collector did during training to the file named by `GC_PROBE_FILE`."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.collections_at_start = sum(generation["collections"] for generation in gc.get_stats())

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        collections = sum(generation["collections"] for generation in gc.get_stats()) - self.collections_at_start
        probe = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count(), "collections_in_training": collections}
        with open(os.environ["GC_PROBE_FILE"], "w", encoding="utf-8") as file:
            json.dump(probe, file)


def test_fit_collects_garbage_while_it_trains_with_the_libraries_frozen_out_of_the_way(micro_model_dir, digit_pages, tmp_path):
    config = fit_config(tmp_path / "run.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    probe_file = tmp_path / "probe.json"
    env = {**os.environ, "GC_PROBE_FILE": str(probe_file), "PYTHONPATH": str(REPO_ROOT)}
    result = run_executable("fit", "--config", str(config), "--trainer.callbacks+=tests.test_cli.CollectorProbe", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(probe_file.read_text(encoding="utf-8"))
    assert probe["enabled"] and probe["collections_in_training"] > 0  # a long run's garbage is collected
    assert probe["frozen"] > 100_000  # torch, transformers and Lightning: never walked again


def test_an_8bit_optimizer_on_cpu_says_nothing_about_4bit_kernels(micro_model_dir, digit_pages, tmp_path):
    # bitsandbytes, imported on a CPU with AVX512-BF16, tries to fetch a 4-bit matmul kernel from
    # the hub and warns when it cannot: our 8-bit optimizers never use it.
    pytest.importorskip("bitsandbytes")
    config = fit_config(tmp_path / "run.yaml", digit_pages, micro_model_dir, tmp_path / "run", model={"optimizer": "adamw8bit"})
    result = run_executable("fit", "--config", str(config), "--trainer.max_steps", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gemm_4bit" not in result.stderr + result.stdout
