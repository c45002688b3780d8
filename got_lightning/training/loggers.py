"""The run's experiment loggers: TensorBoard by default when installed (as Lightning's default), CSV
otherwise, without Lightning's notice; a logger whose package is missing is one line naming the extra."""

from __future__ import annotations

import importlib.util
from typing import Any

from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from got_lightning.core.optional import MissingExtraError

# Lightning's logger classes and the module each needs.
LOGGER_MODULES = {
    "TensorBoardLogger": "tensorboard",
    "WandbLogger": "wandb",
    "MLFlowLogger": "mlflow",
    "CometLogger": "comet_ml",
    "NeptuneLogger": "neptune",
}


def default_logger(root_dir: str) -> Logger:
    """TensorBoard in `root_dir/lightning_logs` when `tensorboard` is installed, else CSV files there."""
    if importlib.util.find_spec("tensorboard") is not None:
        return TensorBoardLogger(save_dir=root_dir, version=SLURMEnvironment.job_id())
    return CSVLogger(save_dir=root_dir)


def check_logger_packages(logger_config: Any) -> None:
    """Fail before anything runs when a configured logger's package is not installed."""
    for entry in logger_config if isinstance(logger_config, list) else [logger_config]:
        class_path = entry.get("class_path", "") if isinstance(entry, dict) else getattr(entry, "class_path", "")
        name = str(class_path).rsplit(".", 1)[-1]
        module = LOGGER_MODULES.get(name)
        if module and importlib.util.find_spec(module) is None:
            extra = "got-lightning[loggers]" if module in ("tensorboard", "wandb", "mlflow") else module
            raise MissingExtraError(f"trainer.logger {name} needs {module}: pip install '{extra}'")
