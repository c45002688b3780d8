"""Errors that mean a user's input is wrong: printed as one line, exit status 2, no traceback."""

from __future__ import annotations

from got_lightning.commands.config_file import ConfigError
from got_lightning.data.errors import AnnotationFileError
from got_lightning.model.model_dir import ConversionError, ModelDirError
from got_lightning.optional import MissingExtraError

USER_ERRORS = (ConfigError, AnnotationFileError, ModelDirError, ConversionError, MissingExtraError, ValueError, FileNotFoundError)
