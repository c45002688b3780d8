"""Experiment loggers through `got-lightning fit`: TensorBoard (the default when installed), Weights &
Biases offline and MLflow on a local database, each read back with its own library: the same metric
names in each, and the worst held-out pages as images with their reference and reading."""

from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import run_executable
from tests.training_helpers import fit_config

pytestmark = pytest.mark.slow  # end-to-end runs

# What got-lightning itself logs during a fit with validation; every logger must hold all of them.
OUR_METRICS = {"train/loss", "train/grad_norm", "train/tokens_per_s", "lr", "val/loss", "val/cer", "val/f1", "val/exact_match"}
PAGES = 2


def fit_with_logger(tmp_path: Path, micro_model_dir, digit_pages, logger, env=None):
    root = tmp_path / "run"
    trainer = {"logger": logger, "limit_val_batches": 1.0, "val_check_interval": 2, "log_every_n_steps": 1}
    config = fit_config(tmp_path / "fit.yaml", digit_pages, micro_model_dir, root, trainer=trainer, logged_pages={"count": PAGES})
    result = run_executable("fit", "--config", str(config), "--trainer.max_steps", "4", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result


def test_tensorboard_is_the_default_and_holds_the_metrics_and_the_worst_pages(micro_model_dir, digit_pages, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, result = fit_with_logger(tmp_path, micro_model_dir, digit_pages, True)
    assert "tensorboardX" not in result.stderr  # Lightning's notice is not the user's business
    (events,) = (root / "lightning_logs" / "version_0").glob("events.out.tfevents.*")
    log = EventAccumulator(str(events), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
    log.Reload()
    assert set(log.Tags()["scalars"]) >= OUR_METRICS
    assert len(log.Scalars("val/cer")) == 2  # two validations (Lightning steps them before the step's count moves)
    for rank in range(PAGES):
        (first, second) = log.Images(f"val/worst_pages/{rank}")
        assert (first.step, second.step) == (2, 4)  # the optimizer step, as in validation/step-NNNNNN
        assert (first.width, first.height) == (64, 32)  # the digit strip itself
        text = log.Tensors(f"val/worst_pages/{rank}/text_summary")[0].tensor_proto.string_val[0].decode()
        assert "reference:" in text and "reading:" in text and "edit(s)" in text


def wandb_history(run_file: Path) -> list[dict[str, str]]:
    """The history rows of a W&B offline run file (a LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    rows, position, block, pending = [], 7, 32768, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record.FromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
    return rows


def test_weights_and_biases_offline_holds_the_same_metrics_and_the_worst_pages(micro_model_dir, digit_pages, tmp_path):
    logger = {"class_path": "WandbLogger", "init_args": {"offline": True, "project": "guji", "save_dir": str(tmp_path / "wandb")}}
    root, _ = fit_with_logger(tmp_path, micro_model_dir, digit_pages, logger, env=_quiet_wandb())
    (run,) = (tmp_path / "wandb" / "wandb").glob("offline-run-*")
    history = wandb_history(next(run.glob("run-*.wandb")))
    logged = {key for row in history for key in row}
    assert logged >= OUR_METRICS
    pages = [row for row in history if "val/worst_pages/filenames" in row]
    assert [row["trainer/global_step"] for row in pages] == ["2", "4"]
    images = sorted((run / "files" / "media" / "images" / "val").glob("worst_pages_*.png"))
    assert len(images) == 2 * PAGES and Image.open(images[0]).size == (64, 32)
    assert "reference:" in pages[0]["val/worst_pages/captions"]
    assert any(key.startswith("val/worst_pages_text") for key in logged)


def _quiet_wandb():
    import os

    return {**os.environ, "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true"}


def test_mlflow_on_a_local_database_holds_the_same_metrics_and_the_worst_pages(micro_model_dir, digit_pages, tmp_path):
    from mlflow.tracking import MlflowClient

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = {
        "class_path": "MLFlowLogger",
        "init_args": {"experiment_name": "guji", "tracking_uri": tracking, "artifact_location": str(tmp_path / "artifacts")},
    }
    fit_with_logger(tmp_path, micro_model_dir, digit_pages, logger)
    client = MlflowClient(tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("guji").experiment_id])
    assert set(run.data.metrics) >= OUR_METRICS
    assert len(client.get_metric_history(run.info.run_id, "val/cer")) == 2
    for step in (2, 4):
        listed = {Path(item.path).name for item in client.list_artifacts(run.info.run_id, f"val/worst_pages/step-{step:06d}")}
        assert listed == {f"{rank}.{ext}" for rank in range(PAGES) for ext in ("png", "txt")}
    text = Path(client.download_artifacts(run.info.run_id, "val/worst_pages/step-000004/0.txt", str(tmp_path))).read_text()
    assert "reference:" in text and "reading:" in text


@pytest.mark.parametrize("count", [-1])
def test_a_negative_page_count_is_one_line(micro_model_dir, digit_pages, tmp_path, count):
    config = fit_config(tmp_path / "fit.yaml", digit_pages, micro_model_dir, tmp_path / "run", logged_pages={"count": count})
    result = run_executable("fit", "--config", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "logged_pages: count must be >= 0" in result.stderr.strip().splitlines()[-1]
