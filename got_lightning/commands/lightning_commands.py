"""`got-lightning fit|validate|test|predict`: LightningCLI with the checkpoint, preemption and prediction
sections, the model-path link, crash-safe checkpoints and `--ckpt_path last|best`."""

from __future__ import annotations

import logging
import math
import os
import shlex
import sys
from typing import Any

import lightning as L
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ModelSummary, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from rich.console import Console

from got_lightning.commands.config_errors import OneLineErrorsParser
from got_lightning.commands.config_file import MODEL_TO_DATA, ConfigError
from got_lightning.core.errors import UserError, run_reporting_errors
from got_lightning.core.run_dir import RunDir
from got_lightning.data.datamodule import GotDataModule
from got_lightning.evaluation.logged_pages import LoggedPages
from got_lightning.evaluation.prediction_writer import PredictionWriter
from got_lightning.module import GotLightningModule
from got_lightning.training.checkpoint_check import checkpoint_step
from got_lightning.training.checkpoints import (
    NAMED_CHECKPOINTS,
    AtomicCheckpointIO,
    BestCheckpoint,
    RunCheckpoint,
    remove_stale_staging,
    resolve_checkpoint,
)
from got_lightning.training.epoch_resume import ExactEpochResume
from got_lightning.training.loggers import check_logger_packages, default_logger
from got_lightning.training.preemption import PreemptionCheckpoint
from got_lightning.training.preflight import check_annotations, check_free_space, check_writable, checkpoint_bytes
from got_lightning.training.run_lock import RunLock
from got_lightning.training.run_start import start_in_place
from got_lightning.training.strategies import is_deepspeed

LIGHTNING_USER_ERRORS = (UserError, MisconfigurationException)
"""Lightning raises `MisconfigurationException` for a trainer setting that cannot work (devices,
strategy, precision): the user's to fix, like our own `UserError`."""


class _NoAdvertisement(logging.Filter):
    """Lightning advertises its cloud logger on every run; nothing in it is for the user to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


for _name in (
    "lightning_utilities.core.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.utilities.rank_zero",
):
    logging.getLogger(_name).addFilter(_NoAdvertisement())


class SaveRunConfig(SaveConfigCallback):
    """LightningCLI's `config.yaml`, in the run directory when the logger keeps no local folder
    (MLflow on a database or a server), where Lightning's own callback would stop the run."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.log_dir is not None or self.already_saved:  # `log_dir` is collective: every rank asks
            return super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero:
            os.makedirs(trainer.default_root_dir, exist_ok=True)
            path = os.path.join(trainer.default_root_dir, self.config_filename)
            self.parser.save(self.config, path, skip_none=False, overwrite=self.overwrite, multifile=self.multifile)
        self.already_saved = True


class GotCLI(LightningCLI):
    """LightningCLI with the checkpoint section, the model-path link and got-lightning's defaults."""

    def __init__(self, *args: Any, only_subcommand: str | None = None, **kwargs: Any) -> None:
        self.only_subcommand = only_subcommand
        super().__init__(*args, **kwargs)

    def subcommands(self) -> dict[str, set[str]]:  # type: ignore[override]
        """Only the subcommand asked for, when known: LightningCLI builds the whole parser of each of
        its four subcommands before it reads which one is wanted (0.2 s each on 2 cores)."""
        every = LightningCLI.subcommands()
        return {self.only_subcommand: every[self.only_subcommand]} if self.only_subcommand in every else every

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_lightning_class_args(BestCheckpoint, "best_checkpoint")
        parser.add_lightning_class_args(PredictionWriter, "predict_output")
        parser.add_lightning_class_args(PreemptionCheckpoint, "preemption")
        parser.add_lightning_class_args(LoggedPages, "logged_pages")
        for model_key, data_key in MODEL_TO_DATA.items():
            parser.link_arguments(f"model.{model_key}", f"data.{data_key}")
        parser.add_argument(
            "--fresh_start",
            type=bool,
            default=False,
            help="fit: start over in a run directory that holds checkpoints (they are moved aside into replaced-<time>/, not deleted)",
        )
        parser.add_argument(
            "--validate_before_fit",
            type=bool,
            default=False,
            help="Validate the untrained model first, to print the held-out CER before training",
        )
        parser.set_defaults(
            {
                "checkpoint.save_last": True,
                "trainer.use_distributed_sampler": False,
                "trainer.callbacks": [
                    {"class_path": "got_lightning.training.progress.GotProgressBar"},
                    {"class_path": "lightning.pytorch.callbacks.RichModelSummary", "init_args": {"max_depth": 2}},
                ],
            }
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        self.command_line = shlex.join(["got-lightning", *(sys.argv[1:] if args is None else args)])
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """Keep the user's config: Lightning would overwrite the model section with the hyperparameters
        saved in a checkpoint file (an old run's model directory, generation settings) whenever
        `--ckpt_path` names a file. The weights still come from the checkpoint."""

    def before_instantiate_classes(self) -> None:
        if self.subcommand is not None:  # serve builds no trainer
            check_logger_packages(self.config[self.subcommand]["trainer"].get("logger"))

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> L.Trainer:
        if config.get("logger") in (None, True):  # Lightning's default, without its notice about tensorboardX
            config = {**config, "logger": default_logger(config.get("default_root_dir") or ".")}
        # Where the user switched a feature off, our default callback for it would contradict them.
        if config.get("enable_progress_bar") is False:
            config = _without_callbacks(config, ProgressBar)
        if config.get("enable_model_summary") is False:
            config = _without_callbacks(config, ModelSummary)
        elif any(isinstance(c, ModelSummary) for c in config.get("callbacks") or []):
            # The flag only adds Lightning's default summary, which would announce that it skips itself.
            config = {**config, "enable_model_summary": False}
        if config.get("enable_checkpointing") is False:  # also over our checkpoint sections
            callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
            config = _without_callbacks(config, ModelCheckpoint)
            if self.subcommand == "fit":
                print("trainer.enable_checkpointing: false: this run writes no checkpoint and cannot be resumed", file=sys.stderr)
        return super()._instantiate_trainer(config, callbacks)

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks.append(ExactEpochResume())  # always: resuming must never shift epochs
        return trainer

    def kept_checkpoints(self) -> int:
        """How many checkpoints the run's callbacks keep at once (all of them when save_top_k is -1)."""
        count = 0
        for callback in self.trainer.checkpoint_callbacks:
            kept = callback.save_top_k
            if kept == -1:
                every = getattr(callback, "_every_n_train_steps", 0) or 1
                kept = max(self.trainer.max_steps // every, 1) if self.trainer.max_steps > 0 else 1
            count += kept + int(bool(callback.save_last))
        return count

    run_lock: RunLock | None = None

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        finally:
            if self.run_lock is not None:
                self.run_lock.release()

    def before_fit(self) -> None:
        if self.model.hparams.cache_vision_features and self.datamodule.augmentation is not None:
            raise ConfigError(
                "model.cache_vision_features reuses each page's first encoding, so data.augment would change "
                "nothing the model sees: turn one of them off"
            )
        self.model.run_record.command = self.command_line
        root = self.trainer.default_root_dir
        check_writable(root)
        if self.trainer.is_global_zero:
            self.run_lock = RunLock(root).acquire()
            if notice := self.run_lock.takeover_notice():
                print(notice, file=sys.stderr)
            for stale in remove_stale_staging(RunDir(root).checkpoints):
                print(f"removed a half-written checkpoint of an interrupted run: {stale}", file=sys.stderr)
            config = self.config_init[self.subcommand]
            start_in_place(root, config.get("ckpt_path"), bool(config.get("fresh_start")))
        check_annotations(self.datamodule.specs)
        if not self.datamodule.renders_data():  # rendering is Lightning's prepare_data, on one rank per node
            self.datamodule.trainer = self.trainer  # its reports come from rank 0 only
            self.datamodule.setup("fit")
            self.datamodule.check_something_to_train_on()
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        check_free_space(root, self.kept_checkpoints() * checkpoint_bytes(trainable))
        self._prepare_checkpoints()
        self.cer_before = None
        if self.config_init[self.subcommand].get("validate_before_fit"):
            self.model.held_out.folder = RunDir(root).before_fit
            self.trainer.validate(self.model, datamodule=self.datamodule)
            self.model.held_out.folder = None
            self.cer_before = self.trainer.callback_metrics.get("val/cer")

    def before_validate(self) -> None:
        self._prepare_checkpoints()

    before_test = before_validate
    before_predict = before_validate

    def _prepare_checkpoints(self) -> None:
        """Crash-safe checkpoint I/O and `--ckpt_path last|best` resolved to a complete checkpoint
        of this run (named on stderr). What a killed run left behind is cleaned up by `fit` alone,
        holding the run's lock: a reader could delete a live save's staging file."""
        if not is_deepspeed(self.trainer.strategy):  # DeepSpeed writes its own directories
            self.trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        config = self.config_init[self.subcommand]
        requested = config.get("ckpt_path")
        config["ckpt_path"] = resolve_checkpoint(requested, self.trainer.default_root_dir)
        if requested in NAMED_CHECKPOINTS and self.trainer.is_global_zero:
            verb = "resuming from" if self.subcommand == "fit" else "using"
            step = checkpoint_step(config["ckpt_path"])
            at = "" if step is None else f" (step {step})"
            print(f"--ckpt_path {requested}: {verb} {config['ckpt_path']}{at}", file=sys.stderr)

    def after_fit(self) -> None:
        cer_after = self.trainer.callback_metrics.get("val/cer")
        if self.trainer.is_global_zero and cer_after is not None:
            before = "" if self.cer_before is None else f"before training {describe_cer(self.cer_before)}, "
            Console(soft_wrap=True).print(f"held-out CER: {before}after training {describe_cer(cer_after)}")


def _without_callbacks(config: dict[str, Any], kind: type[Callback]) -> dict[str, Any]:
    """The trainer config with no callback of this kind."""
    return {**config, "callbacks": [c for c in config.get("callbacks") or [] if not isinstance(c, kind)]}


def describe_cer(value: Any) -> str:
    value = float(value)
    return "not scored (no held-out sample could be read)" if math.isnan(value) else f"{value:.4f}"


def run_lightning(argv: list[str]) -> int:
    def run() -> int:
        GotCLI(
            GotLightningModule,
            GotDataModule,
            args=None if argv == sys.argv[1:] else argv,
            only_subcommand=argv[0] if argv else None,
            save_config_callback=SaveRunConfig,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"prog": "got-lightning"},
            parser_class=OneLineErrorsParser,
        )
        return 0

    return run_reporting_errors(run, user_errors=LIGHTNING_USER_ERRORS)
