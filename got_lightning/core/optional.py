"""Optional packages: imported only where their feature is used, with one clear error otherwise."""

from __future__ import annotations

import importlib
from types import ModuleType

from got_lightning.core.errors import UserError

EXTRAS = {
    "peft": "lora",
    "bitsandbytes": "bnb",
    "deepspeed": "deepspeed",
    "pyarrow": "datasets",
    "albumentations": "augment",
    "litdata": "streaming",
    "boto3": "streaming",
}


class MissingExtraError(UserError, ImportError):
    """A feature needs an optional package that is not installed."""


def require(module: str, feature: str) -> ModuleType:
    """Import an optional package, or fail naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = module.split(".")[0]
        raise MissingExtraError(f"{feature} needs {package}: pip install 'got-lightning[{EXTRAS[package]}]'") from error
