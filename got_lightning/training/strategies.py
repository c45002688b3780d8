"""DeepSpeed through Lightning with upstream-style ZeRO JSON files (HF `"auto"` values resolved),
on CUDA GPUs and, for trying a recipe before renting GPUs, on CPU processes."""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, FSDPStrategy

from got_lightning.core.atomic_files import publish_directory, staging_path
from got_lightning.core.errors import SettingError
from got_lightning.data.accumulation import WindowPosition
from got_lightning.training.checkpoints import mark_complete

AUTO = "auto"
BNB_OPTIMIZERS = ("adamw8bit", "paged_adamw8bit")
# DeepSpeed's CPU accelerator compiles this shared-memory all-reduce with the C++ compiler on first
# use, under a lock that a killed build leaves behind (later runs then wait forever). gloo does the
# same reductions; CPU runs are for trying a recipe, not for speed.
SHM_COMM_OP = "deepspeed_shm_comm"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class DeepSpeedConfigError(SettingError):
    """A DeepSpeed JSON setting that Lightning or got-lightning controls."""


def resolve_auto(config: dict[str, Any], precision: str, micro_batch_size: int, hidden_size: int, optimizer: str) -> dict:
    """A copy of `config` with every `"auto"` value filled in the way the HF Trainer does, and the keys
    Lightning injects itself (gradient accumulation, clipping) removed when they were `"auto"`."""
    config = copy.deepcopy(config)
    accumulation = config.get("gradient_accumulation_steps")
    if accumulation == AUTO:
        del config["gradient_accumulation_steps"]
    elif accumulation is not None:
        raise DeepSpeedConfigError(
            "remove gradient_accumulation_steps from the DeepSpeed JSON: set trainer.accumulate_grad_batches instead"
        )
    if config.get("gradient_clipping") == AUTO:
        del config["gradient_clipping"]
    if config.get("train_batch_size") == AUTO:
        del config["train_batch_size"]
    if config.get("train_micro_batch_size_per_gpu") == AUTO:
        config["train_micro_batch_size_per_gpu"] = micro_batch_size
    for key, wanted in (("bf16", precision.startswith("bf16")), ("fp16", precision.startswith("16"))):
        if isinstance(config.get(key), dict) and config[key].get("enabled") == AUTO:
            config[key]["enabled"] = wanted
    zero = config.get("zero_optimization", {})
    sizes = {
        "reduce_bucket_size": hidden_size * hidden_size,
        "stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
        "stage3_param_persistence_threshold": 10 * hidden_size,
    }
    for key, value in sizes.items():
        if zero.get(key) == AUTO:
            zero[key] = value
    if "optimizer" in config or "scheduler" in config:
        raise DeepSpeedConfigError(
            "remove the optimizer/scheduler section from the DeepSpeed JSON: DeepSpeed would build its own "
            "optimizer over all parameters (no decay groups, no per-part learning rates, JIT-compiled kernels); "
            "set model.optimizer, model.learning_rate and model.lr_scheduler instead"
        )
    left = [path for path, value in _walk(config) if value == AUTO]
    if left:
        raise DeepSpeedConfigError(f"cannot resolve 'auto' for {', '.join(left)} in the DeepSpeed JSON")
    if optimizer in BNB_OPTIMIZERS:
        config.setdefault("zero_allow_untested_optimizer", True)
    return config


def _walk(node: Any, prefix: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), node


def find_config_file(config: Any) -> Any:
    """A relative DeepSpeed JSON path from the working directory, else from the project folder (so
    `zero_config/zero2.json` in a recipe works from any directory); anything else as given."""
    if not isinstance(config, (str, Path)) or Path(config).is_absolute() or Path(config).exists():
        return config
    in_project = PROJECT_ROOT / config
    return str(in_project) if in_project.is_file() else config


def use_deepspeed_cpu_accelerator() -> None:
    """Point DeepSpeed at its CPU accelerator (gloo when oneCCL is absent) without the JIT-built
    shared-memory op, also on a machine that has a GPU."""
    os.environ["DS_ACCELERATOR"] = "cpu"
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator, set_accelerator
    from deepspeed.accelerator.cpu_accelerator import CPU_Accelerator

    if get_accelerator().device_name() != "cpu":
        set_accelerator(CPU_Accelerator())
    deepspeed.ops.__compatible_ops__[SHM_COMM_OP] = False


class GotDeepSpeedStrategy(DeepSpeedStrategy):
    """Lightning's `DeepSpeedStrategy` that accepts upstream's `zero_config/*.json` as they are:
    `"auto"` values are resolved from the trainer, the datamodule and the model before Lightning
    adds its own settings. Frozen parameters are kept out of checkpoints by default.

    Runs on CUDA GPUs, and with `trainer.accelerator: cpu` on CPU processes (DeepSpeed's CPU
    accelerator, gloo): the same recipe, checkpoints and resume, to try before paying for GPUs.

    Accumulation windows are the data's (see `WindowLoader`): DeepSpeed is told at every micro-batch
    whether it ends a window, and Lightning calls the engine's `step` only there, so both agree on
    every optimizer step, the last partial window of an epoch included.
    """

    def __init__(
        self, *args: Any, config: str | Path | dict[str, Any] | None = None, exclude_frozen_parameters: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(*args, config=find_config_file(config), exclude_frozen_parameters=exclude_frozen_parameters, **kwargs)

    @property
    def on_cpu(self) -> bool:
        return isinstance(self.accelerator, CPUAccelerator)

    def setup_environment(self) -> None:
        if not self.on_cpu:
            super().setup_environment()
            return
        if str(self.precision_plugin.precision).startswith("16"):
            raise DeepSpeedConfigError(
                f"trainer.precision {self.precision_plugin.precision}: DeepSpeed's CPU accelerator has no fp16; "
                "use bf16-mixed (as the GPU recipes do) or 32-true"
            )
        use_deepspeed_cpu_accelerator()
        DDPStrategy.setup_environment(self)

    def setup_distributed(self) -> None:
        if not self.on_cpu:
            super().setup_distributed()
            return
        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()

    @property
    def root_device(self) -> torch.device:
        device = super().root_device
        # DeepSpeed takes this index as `device_rank`; a CPU device has none, and index 0 is every
        # CPU rank's device (the engine reads ranks from the process group).
        return torch.device("cpu", 0) if device.type == "cpu" else device

    @property
    def handles_gradient_accumulation(self) -> bool:
        # Lightning decides where a window ends (its last micro-batch, also the partial one at the
        # end of an epoch) and calls `engine.step` only there; `training_step` tells the engine.
        return False

    @contextmanager
    def block_backward_sync(self) -> Iterator[None]:
        # The engine reduces (or partitions) gradients itself according to the window boundary.
        yield

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        self.deepspeed_engine.set_gradient_accumulation_boundary(WindowPosition.of(args[0]).ends)
        return super().training_step(*args, **kwargs)

    def save_checkpoint(self, checkpoint: dict, filepath: Any, storage_options: Any | None = None) -> None:
        """Every rank writes its shard into a staging directory beside the target; once all have,
        rank 0 marks it complete and renames it into place, so a checkpoint's name only ever
        points at a complete directory (see `checkpoints.is_complete_checkpoint`)."""
        target = Path(self.broadcast(str(filepath)))
        staging = staging_path(target, tag=f"step{checkpoint.get('global_step', 0)}")
        if self.is_global_zero:
            shutil.rmtree(staging, ignore_errors=True)
        self.barrier("checkpoint staging cleared")
        super().save_checkpoint(checkpoint, staging, storage_options)
        self.barrier("checkpoint shards written")
        if self.is_global_zero:
            mark_complete(staging, {"global_step": checkpoint.get("global_step"), "world_size": self.world_size})
            publish_directory(staging, target)
        self.barrier("checkpoint published")

    def _format_config(self) -> None:
        module = self.lightning_module
        if self.config is not None and module is not None:
            datamodule = module.trainer.datamodule
            self.config = resolve_auto(
                self.config,
                precision=str(self.precision_plugin.precision),
                micro_batch_size=getattr(datamodule, "batch_size", 1),
                hidden_size=module.got.config.text_config.hidden_size,
                optimizer=module.hparams.get("optimizer", "adamw"),
            )
        super()._format_config()


def is_deepspeed(strategy: Any) -> bool:
    """Whether a strategy trains through a DeepSpeed engine (which owns gradients and the step)."""
    return isinstance(strategy, DeepSpeedStrategy)


def global_grad_norm(strategy: Any) -> torch.Tensor | None:
    """The gradient norm DeepSpeed computed in its last step (None before the first)."""
    norm = strategy.deepspeed_engine.get_global_grad_norm()
    return None if norm is None else torch.as_tensor(float(norm))


def all_ranks_finished(trainer: Any) -> Callable[[bool], bool]:
    """How generation learns that every process is done: with sharded weights (ZeRO-3, FSDP) each
    forward is collective, so the processes agree at every step; otherwise no one waits."""
    strategy = trainer.strategy
    sharded = isinstance(strategy, FSDPStrategy) or (isinstance(strategy, DeepSpeedStrategy) and strategy.zero_stage_3)
    if not sharded or trainer.world_size == 1:
        return bool
    return lambda done: strategy.reduce_boolean_decision(done, all=True)
