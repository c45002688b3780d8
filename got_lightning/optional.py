"""Optional packages: imported only where their feature is used, with one clear error otherwise."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {"peft": "lora", "bitsandbytes": "bnb", "deepspeed": "deepspeed", "pyarrow": "datasets"}


class MissingExtraError(ImportError):
    """A feature needs an optional package that is not installed."""


def require(module: str, feature: str) -> ModuleType:
    """Import an optional package, or fail naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(f"{feature} needs {module}: pip install 'got-lightning[{EXTRAS[module]}]'") from error
