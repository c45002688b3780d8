"""Reading the `data` and `model` sections of a got-lightning YAML config outside LightningCLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from got_lightning.core.errors import SettingError

# The model section's settings the data section receives (`parser.link_arguments` in `got-lightning
# fit`): the data pipeline reads the tokenizer and image size from the same model.
MODEL_TO_DATA = {"model_path": "model_path", "revision": "model_revision"}


class ConfigError(SettingError):
    """A config file that cannot be used, with the reason."""


def _init_args(section: Any) -> dict:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"expected a mapping, got {section!r:.80}")
    return dict(section.get("init_args", section)) if "class_path" in section else dict(section)


def read_sections(paths: str | Path | list[str | Path]) -> tuple[dict, dict]:
    """The `data` and `model` init arguments of one config file or of several stacked as `fit`
    stacks them: a later file's keys replace an earlier one's (lists whole)."""
    data: dict = {}
    model: dict = {}
    found_data = False
    for path in paths if isinstance(paths, list) else [paths]:
        config = _read(Path(path))
        found_data = found_data or "data" in config
        data.update(_init_args(config.get("data")))
        model.update(_init_args(config.get("model")))
    if not found_data:
        raise ConfigError(f"{', '.join(map(str, paths if isinstance(paths, list) else [paths]))}: no 'data' section")
    return data, model


def _read(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(config, dict):
        raise ConfigError(f"{path} is not a mapping of sections")
    return config


def linked_data_section(data: dict, model: dict, overrides: dict[str, Any] | None = None) -> dict:
    """The data section with the linked model settings filled in as `fit` would: a command-line
    override (keyed by the model's name) first, then the model section, then the data section."""
    data = dict(data)
    for model_key, data_key in MODEL_TO_DATA.items():
        value = (overrides or {}).get(model_key) or model.get(model_key) or data.get(data_key)
        if value is not None:
            data[data_key] = value
    return data
