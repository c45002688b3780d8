"""The LightningModule: GOT training with explicit freezing, exact token-mean loss, and CER validation."""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.utilities import GradClipAlgorithmType
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torchmetrics import MeanMetric

from got_lightning.core.errors import SettingError
from got_lightning.core.options import as_options
from got_lightning.data.accumulation import WindowPosition
from got_lightning.data.collate import Batch
from got_lightning.data.datamodule import attached_datamodule
from got_lightning.data.predict import FOLDER_INPUT
from got_lightning.evaluation.held_out import SCORE_NAMES, HeldOutResults
from got_lightning.evaluation.metrics import OcrMetrics
from got_lightning.evaluation.results import prediction_line, scored_record
from got_lightning.evaluation.scores import TextNormalization
from got_lightning.generation.batch import Answer
from got_lightning.generation.greedy import GenerationArgs, decode, generate_answers
from got_lightning.generation.prompts import split_prompts
from got_lightning.model.feature_cache import FeatureCacheArgs, VisionFeatureCache, tower_fingerprint
from got_lightning.model.forward import ImageEncoder, read_prompts
from got_lightning.model.freezing import Freezing, count_parameters, print_summary
from got_lightning.model.hub import DEFAULT_REVISION, resolve_model_path
from got_lightning.model.kernels import AttentionName, compile_text_layers, set_text_attention
from got_lightning.model.loading import ensure_model_dir, load_model
from got_lightning.model.lora import LoraArgs, add_lora, merge_lora
from got_lightning.model.loss import effective_batch_loss, supervised_loss_sum
from got_lightning.model.model_dir import ModelDirError
from got_lightning.model.optim import OptimizerArgs, OptimizerName, SchedulerName
from got_lightning.model.output_head import OutputHead, generation_head
from got_lightning.tokenizer import load_tokenizer
from got_lightning.training.checkpoints import adopt_older_callback_states
from got_lightning.training.nonfinite import NonFiniteGuard
from got_lightning.training.rng import capture_rng_states, restore_rng_states
from got_lightning.training.run_record import CARD_KEY, RunRecord, held_out_summary
from got_lightning.training.strategies import all_ranks_finished, is_deepspeed
from got_lightning.training.window_monitor import WindowMonitor


class GotLightningModule(L.LightningModule):
    """GOT-OCR2.0 (transformers' `GotOcr2ForConditionalGeneration`) fine-tuning.

    Args:
        model_path: Local model directory (transformers or original GOT format) or a Hugging Face Hub
            id such as `stepfun-ai/GOT-OCR-2.0-hf` (resolved through the hub's cache).
        revision: Branch, tag or commit of a hub id.
        init_preset: When `model_path` does not exist, build a random model of this preset there
            (`tiny`, `micro`, `got`) with the real GOT tokenizer.
        init_seed: Seed of that random model (same seed, same weights).
        freeze_vision_tower: Keep the SAM/ViTDet encoder fixed (runs in eval mode, no gradients).
        freeze_projector: Keep the vision-to-text projector fixed.
        freeze_language_model: Keep the Qwen2 decoder and its head fixed.
        lora: LoRA adapters on the language model (its base weights are then frozen).
        optimizer: `adamw`, or bitsandbytes' `adamw8bit` / `paged_adamw8bit`.
        learning_rate: Peak learning rate.
        vision_learning_rate: Peak learning rate of the vision tower when it trains (default: `learning_rate`).
        projector_learning_rate: Peak learning rate of the projector (default: `learning_rate`).
        weight_decay: AdamW weight decay (never applied to norms, biases and embeddings).
        betas: Adam betas.
        eps: Adam epsilon.
        lr_scheduler: `cosine`, `linear` or `constant` after warmup.
        warmup_ratio: Share of optimizer steps spent warming up linearly.
        min_lr_ratio: Learning rate at the end of the schedule, relative to the peak.
        lr_schedule_steps: Optimizer steps the warmup and decay span (default: the trainer's total,
            from max_steps or max_epochs). Fix it to stop early and resume with another max_steps.
        gradient_checkpointing: Recompute activations in the backward pass to save memory.
        attn_implementation: The language model's attention kernel: `sdpa` (PyTorch's fused
            attention), `eager`, `flash_attention_2` (flash-attn package, CUDA) or `flex_attention`.
        compile: `torch.compile` the language model's layers (training speed on GPU; the first
            steps spend time compiling).
        generation: Greedy decoding settings of validation.
        val_generate: Generate during validation and report CER (otherwise loss only).
        normalization: Text normalization applied to prediction and reference before scoring.
        vision_batch_size: Most tiles the vision tower encodes in one call (none: a batch's tiles at
            once). Each of its global-attention layers holds 12 x 4096 x 4096 scores per 1024-px tile
            (about 0.8 GB in bf16, twice that while the softmax runs in fp32): lower it to bound
            memory at large (eval) batches. Same features either way.
        cache_vision_features: Compute the frozen tower's output once per tile and reuse it (from
            the second epoch on); needs `freeze_vision_tower`, and refuses `data.augment` (its pages change every epoch).
        feature_cache: Where the cache lives (memory or a directory) and its size bound.
        max_nonfinite_steps: A step whose loss or gradient norm is NaN/inf is skipped (weights and
            optimizer state untouched) and counted; this many in a row stop the run with an error,
            leaving the last good checkpoint as it was.
        max_empty_steps: This many optimizer steps in a row without one readable training sample
            (every record of their batches bad) stop the run with the commonest reasons.
    """

    def __init__(
        self,
        model_path: str,
        revision: str = DEFAULT_REVISION,
        init_preset: str | None = None,
        init_seed: int = 0,
        freeze_vision_tower: bool = True,
        freeze_projector: bool = False,
        freeze_language_model: bool = False,
        lora: LoraArgs | dict | None = None,
        optimizer: OptimizerName = "adamw",
        learning_rate: float = 2e-5,
        vision_learning_rate: float | None = None,
        projector_learning_rate: float | None = None,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        lr_scheduler: SchedulerName = "cosine",
        warmup_ratio: float = 0.001,
        min_lr_ratio: float = 0.0,
        lr_schedule_steps: int | None = None,
        gradient_checkpointing: bool = False,
        attn_implementation: AttentionName = "sdpa",
        compile: bool = False,
        generation: GenerationArgs | dict | None = None,
        val_generate: bool = True,
        vision_batch_size: int | None = None,
        normalization: TextNormalization | dict | None = None,
        cache_vision_features: bool = False,
        feature_cache: FeatureCacheArgs | dict | None = None,
        max_nonfinite_steps: int = 10,
        max_empty_steps: int = 10,
    ) -> None:
        super().__init__()
        lora = as_options(LoraArgs, lora)
        generation = as_options(GenerationArgs, generation, GenerationArgs())
        normalization = as_options(TextNormalization, normalization, TextNormalization())
        feature_cache = as_options(FeatureCacheArgs, feature_cache, FeatureCacheArgs())
        self.optimizer_args = OptimizerArgs(
            optimizer,
            learning_rate,
            vision_learning_rate,
            projector_learning_rate,
            weight_decay,
            tuple(betas),
            eps,
            lr_scheduler,
            warmup_ratio,
            min_lr_ratio,
            lr_schedule_steps,
        )
        if cache_vision_features and not freeze_vision_tower:
            raise SettingError(
                "model.cache_vision_features needs model.freeze_vision_tower: true (a training tower changes its features)"
            )
        # Plain values only, so checkpoints load with `weights_only=True`.
        self.save_hyperparameters(ignore=["lora", "generation", "normalization", "feature_cache"])
        self.hparams["lora"] = None if lora is None else asdict(lora)
        self.hparams["generation"] = asdict(generation)
        self.hparams["normalization"] = asdict(normalization)
        self.hparams["feature_cache"] = asdict(feature_cache)
        ensure_model_dir(model_path, init_preset, init_seed)
        model_dir = resolve_model_path(model_path, revision)
        if not model_dir.exists():
            raise ModelDirError(f"model directory {model_path} does not exist (set model.init_preset to build one)")
        self.got = load_model(model_dir)
        set_text_attention(self.got, attn_implementation)
        self.tokenizer = load_tokenizer(model_dir)
        self.freezing = Freezing(freeze_vision_tower, freeze_projector, freeze_language_model or lora is not None)
        self.freezing.apply(self.got)
        if lora is not None:
            add_lora(self.got, lora)
        self.freezing.check(self.got)
        if gradient_checkpointing:
            self.got.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if compile:
            compile_text_layers(self.got)
        self.generation = generation
        self.feature_cache = (
            VisionFeatureCache(tower_fingerprint(self.got.model.vision_tower), feature_cache) if cache_vision_features else None
        )
        self.image_encoder = ImageEncoder(self.got, self.freezing.vision_tower, vision_batch_size, self.feature_cache)
        self.normalization = normalization
        self.val_metrics = OcrMetrics()
        self.val_loss = MeanMetric()
        self.held_out = HeldOutResults()
        self._output_head: OutputHead | None = None
        self.strict_loading = False
        self.loaded_step = 0
        self.run_record = RunRecord()
        self.train()

    @property
    def image_size(self) -> int:
        return self.got.config.vision_config.image_size

    def train(self, mode: bool = True) -> GotLightningModule:
        super().train(mode)
        if self.freezing.vision_tower:
            self.got.model.vision_tower.eval()
        return self

    # ---- forward -------------------------------------------------------------------------------

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected tile features `(tiles, tokens_per_tile, hidden)` (see `ImageEncoder`)."""
        return self.image_encoder(pixel_values)

    def hidden_states(self, batch: Batch, features: torch.Tensor | None = None) -> torch.Tensor:
        """Last hidden states of a batch; pass its `image_features` when they are already computed."""
        features = self.image_features(batch["pixel_values"]) if features is None else features
        return read_prompts(self.got, batch["input_ids"], batch["attention_mask"], features, use_cache=False).last_hidden_state

    def logits(self, batch: Batch) -> torch.Tensor:
        """Full-vocabulary logits of a batch (for checks and export parity)."""
        return self.got.lm_head(self.hidden_states(batch))

    def loss_sum(self, batch: Batch, features: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        return supervised_loss_sum(self.hidden_states(batch, features), batch["labels"], self.got.lm_head)

    # ---- training ------------------------------------------------------------------------------

    def _zero_loss(self) -> torch.Tensor:
        """A zero loss touching every trainable parameter, so every rank still runs a backward."""
        return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0

    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """The loss of one micro-batch, normalised over its whole accumulation window (see
        `effective_batch_loss`); `loss_sum` and `window_tokens` go to the `WindowMonitor`."""
        window = WindowPosition.of(batch)
        window_tokens = self.trainer.strategy.reduce(torch.tensor(float(window.tokens), device=self.device), reduce_op="sum")
        loss_sum = self.loss_sum(batch)[0] if batch["size"] else self._zero_loss()
        trainer = self.trainer
        loss = effective_batch_loss(
            loss_sum, window_tokens, trainer.world_size, trainer.accumulate_grad_batches, is_deepspeed(trainer.strategy)
        )
        return {"loss": loss, "loss_sum": loss_sum.detach(), "window_tokens": window_tokens}

    def configure_callbacks(self) -> list[L.Callback]:
        """The step monitors every run has, whatever its trainer config (those the trainer holds
        already, from an earlier stage of this run or from the user, stay)."""
        held = {type(callback) for callback in self.trainer.callbacks}
        monitors = [WindowMonitor(self.hparams.max_empty_steps), NonFiniteGuard(self.hparams.max_nonfinite_steps)]
        return [monitor for monitor in monitors if type(monitor) not in held]

    def configure_optimizers(self) -> dict[str, Any]:
        return self.optimizer_args.configure(
            self, lambda: int(self.trainer.estimated_stepping_batches), fused=not self._scaled_and_clipped()
        )

    def _scaled_and_clipped(self) -> bool:
        """fp16 loss scaling with gradient clipping: gradients must be unscaled before they are
        clipped, and a fused AdamW unscales only inside its own step."""
        plugin = self.trainer.precision_plugin
        return isinstance(plugin, MixedPrecision) and plugin.scaler is not None and bool(self.trainer.gradient_clip_val)

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        plugin = self.trainer.precision_plugin
        if isinstance(plugin, MixedPrecision) and plugin.scaler is None:
            # bf16 autocast scales nothing, yet Lightning refuses to clip for any fused optimizer.
            Precision.clip_gradients(
                plugin, optimizer, gradient_clip_val or 0.0, GradClipAlgorithmType(gradient_clip_algorithm or "norm")
            )
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def on_fit_start(self) -> None:
        in_eval_mode = [name for name, module in self.named_modules() if not module.training]
        frozen_tower = [name for name, _ in self.got.model.vision_tower.named_modules(prefix="got.model.vision_tower")]
        if in_eval_mode and set(in_eval_mode) <= set(frozen_tower) and self.freezing.vision_tower:
            # Expected: the frozen tower runs in eval mode, as upstream's does. Said once in the summary.
            warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode", category=PossibleUserWarning)
        if self.trainer.is_global_zero:
            print_summary(count_parameters(self.got), frozen_tower_in_eval_mode=self.freezing.vision_tower)

    # ---- validation ----------------------------------------------------------------------------

    def on_validation_epoch_start(self) -> None:
        # A `validate` before `fit` leaves inference-mode tensors behind; start from fresh state.
        self.val_metrics.reset()
        self.val_loss.reset()
        self.held_out.reset()
        self._output_head = None

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.held_out.add([], batch["problems"])
        if not batch["size"]:
            return
        features = self.image_features(batch["pixel_values"])
        loss_sum, tokens = self.loss_sum(batch, features)
        self.val_loss.update(loss_sum / max(tokens, 1), weight=max(tokens, 1))
        self.log(f"{self._prefix}/loss", self.val_loss, prog_bar=True)
        if not self.hparams.val_generate:
            return
        prompts, _ = split_prompts(batch["input_ids"], batch["labels"])
        answers = self._generate(prompts, features)
        scored = [
            scored_record(key, images, paths, decode(self.tokenizer, answer.ids), reference, self.normalization, answer.reading())
            for key, images, paths, answer, reference in zip(
                batch["keys"], batch["images"], batch["image_paths"], answers, batch["answers"]
            )
        ]
        self.val_metrics.update([score for _, score in scored])
        self.held_out.add([record for record, _ in scored], [])

    def _generate(self, prompts: list[list[int]], features: torch.Tensor) -> list[Answer]:
        if self._output_head is None:
            # Built once per evaluation epoch, for its first (full) batch: the weights stay put until its end.
            self._output_head = generation_head(self.got.lm_head, len(prompts))
        return generate_answers(self.got, prompts, features, self.generation, all_ranks_finished(self.trainer), self._output_head)

    @property
    def _prefix(self) -> str:
        return "test" if self.trainer.testing else "val"

    def on_test_epoch_start(self) -> None:
        self.on_validation_epoch_start()

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        """`got-lightning test`: the held-out evaluation under `test/` names."""
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self.on_validation_epoch_end()

    def on_predict_epoch_start(self) -> None:
        self._output_head = None

    def predict_step(self, batch: Batch, batch_idx: int) -> list[dict[str, Any]]:
        """Greedy OCR of a batch: one dict per sample (a reference too when the input had answers)."""
        if not batch["size"]:
            return []
        started = time.perf_counter()
        prompts, _ = split_prompts(batch["input_ids"], batch["labels"])
        answers = self._generate(prompts, self.image_features(batch["pixel_values"]))
        return [
            prediction_line(
                images,
                paths,
                decode(self.tokenizer, answer.ids),
                **answer.reading(),
                seconds=answer.finished_at - started,
                position=None if key[0] == FOLDER_INPUT else key[1],
                reference=reference,
            )
            for key, images, paths, answer, reference in zip(
                batch["keys"], batch["images"], batch["image_paths"], answers, batch["answers"]
            )
        ]

    def on_predict_epoch_end(self) -> None:
        self._output_head = None

    def on_validation_epoch_end(self) -> None:
        self._output_head = None
        if not self.hparams.val_generate or self.trainer.sanity_checking:
            return
        values = {name: float(value) for name, value in self.val_metrics.compute().items()}
        scored = int(values["num_samples"])
        for name in SCORE_NAMES:
            # Nothing scored is no score: NaN, never a stale or perfect one (checkpoints rank it last).
            value = values[name] if scored else float("nan")
            self.log(f"{self._prefix}/{name}", value, prog_bar=name == "cer", batch_size=1)
        fitting = self.trainer.state.fn == "fit"
        details = {
            "normalization": self.normalization.describe(),
            "generation": asdict(self.generation),
            "model_path": self.hparams.model_path,
            "checkpoint": None if self.trainer.ckpt_path is None else str(self.trainer.ckpt_path),
            "global_step": self.global_step if fitting else self.loaded_step,
        }
        loss = float(self.val_loss.compute()) if scored else None
        self.val_metrics.reset()
        metrics = self.held_out.publish(self.trainer, values, loss, details)
        if fitting:
            self.run_record.held_out = held_out_summary(metrics)

    # ---- checkpoints ---------------------------------------------------------------------------

    def frozen_state_keys(self) -> set[str]:
        return {name for name, p in self.named_parameters(remove_duplicate=False) if not p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Frozen weights stay in the model directory; the checkpoint holds what training changes."""
        frozen = self.frozen_state_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}
        checkpoint["rng_states"] = capture_rng_states()
        if (data := attached_datamodule(self.trainer)) is not None:
            self.run_record.datasets = [spec.name for spec in data.specs]
        checkpoint[CARD_KEY] = self.run_record.to_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.loaded_step = int(checkpoint.get("global_step", 0))
        adopt_older_callback_states(checkpoint)
        # A DeepSpeed checkpoint's client state has no weights: the engine loads them itself.
        if "state_dict" in checkpoint:
            self._check_checkpoint_keys(checkpoint["state_dict"])
        if "rng_states" in checkpoint:  # rank 0's states: every rank resumes from them
            restore_rng_states(checkpoint["rng_states"])
        self.run_record = RunRecord.of_checkpoint(checkpoint)

    def load_trained(self, checkpoint: dict[str, Any]) -> None:
        """Put a training checkpoint's weights (read with `read_checkpoint`) on top of the base model."""
        self.on_load_checkpoint(checkpoint)
        self.load_state_dict(checkpoint["state_dict"], strict=False)

    def _check_checkpoint_keys(self, state_dict: dict[str, Any]) -> None:
        own = self.state_dict()
        for key, value in state_dict.items():
            if key in own and hasattr(value, "shape") and tuple(value.shape) != tuple(own[key].shape):
                raise SettingError(
                    f"checkpoint does not fit this model: {key} is {list(value.shape)} in the checkpoint but "
                    f"{list(own[key].shape)} here (a checkpoint of another preset or model_path?)"
                )
        expected = set(own) - self.frozen_state_keys()
        present = set(state_dict)
        missing, unexpected = sorted(expected - present), sorted(present - set(own))
        if missing or unexpected:
            raise SettingError(
                "checkpoint does not match this model configuration (freezing or LoRA settings differ?): "
                f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
            )

    def merged_model(self):
        """The wrapped transformers model with any LoRA adapters folded in (modifies this module)."""
        if self.hparams.lora is not None:
            merge_lora(self.got)
        return self.got
