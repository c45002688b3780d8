"""Option groups given as a dataclass or, from YAML and the command line, as a plain mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

Options = TypeVar("Options")


def as_options(cls: type[Options], value: Options | Mapping[str, Any] | None, default: Options | None = None) -> Options | None:
    """`value` as a `cls` instance: a mapping becomes `cls(**value)`, None becomes `default`."""
    if value is None:
        return default
    return cls(**value) if isinstance(value, Mapping) else value
