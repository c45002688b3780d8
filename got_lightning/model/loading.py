"""Model directories in and out: transformers format, original GOT format, tiny presets."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import GotOcr2ForConditionalGeneration, GotOcr2Processor, PreTrainedTokenizerBase, modeling_utils
from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil
from transformers.utils import logging as transformers_logging

from got_lightning.model.model_dir import ConversionError, ModelDirError, is_transformers_dir, publish_once, read_config
from got_lightning.model.original import (
    convert_state_dict,
    infer_config,
    is_original_state_dict,
)
from got_lightning.model.presets import image_tokens_per_tile, random_model
from got_lightning.tokenizer import load_tokenizer

log = logging.getLogger(__name__)


def read_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a directory's safetensors or (weights-only) PyTorch weight files."""
    files = sorted(model_dir.glob("*.safetensors"))
    if files:
        state: dict[str, torch.Tensor] = {}
        for file in files:
            state.update(load_file(file))
        return state
    files = sorted(model_dir.glob("pytorch_model*.bin"))
    if not files:
        raise ModelDirError(f"{model_dir} has no *.safetensors or pytorch_model*.bin weight files")
    state = {}
    for file in files:
        state.update(torch.load(file, map_location="cpu", weights_only=True))
    return state


def load_original(model_dir: str | Path) -> GotOcr2ForConditionalGeneration:
    """Convert an original-format GOT directory (GOTQwenForCausalLM) into the transformers model."""
    model_dir = Path(model_dir)
    original = read_weights(model_dir)
    if not is_original_state_dict(original):
        raise ModelDirError(f"{model_dir} is neither a transformers `got_ocr2` model nor an original GOT checkpoint")
    converted, unmapped = convert_state_dict(original)
    try:
        config = infer_config(converted, read_config(model_dir))
    except KeyError as error:
        raise ConversionError([str(error.args[0])], unmapped) from error
    model = GotOcr2ForConditionalGeneration(config)
    expected = set(model.state_dict())
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    missing = sorted(expected - set(converted) - tied)
    unexpected = sorted(set(converted) - expected) + unmapped
    if missing or unexpected:
        raise ConversionError(missing, unexpected)
    model.load_state_dict(converted, strict=False)
    model.tie_weights()
    return model.eval()


def load_model(model_dir: str | Path, dtype: torch.dtype | None = None) -> GotOcr2ForConditionalGeneration:
    """The GOT model of a local directory, transformers or original format (converted on load)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelDirError(f"model directory {model_dir} does not exist")
    if is_transformers_dir(model_dir):
        with _without_weights_bar():
            model = GotOcr2ForConditionalGeneration.from_pretrained(model_dir, dtype=dtype, local_files_only=True)
    else:
        log.warning("%s is in the original GOT format; converting it on load (see `got-lightning convert`)", model_dir)
        model = load_original(model_dir)
        if dtype is not None:
            model = model.to(dtype)
    return model.eval()


@contextlib.contextmanager
def _without_weights_bar() -> Iterator[None]:
    """transformers draws a progress bar over the parameters it loads, which takes a second at most:
    two lines of every command's log with nothing to act on. Other bars (downloads) stay."""
    set_hook = getattr(transformers_logging, "set_tqdm_hook", None)  # not in every transformers 5
    if set_hook is None:
        yield
        return

    def hook(factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs.get("desc") == "Loading weights":
            kwargs = {**kwargs, "disable": True}
        return previous(factory, args, kwargs) if previous is not None else factory(*args, **kwargs)

    previous = set_hook(hook)
    try:
        yield
    finally:
        set_hook(previous)


def processor_for(model: GotOcr2ForConditionalGeneration, tokenizer: PreTrainedTokenizerBase) -> GotOcr2Processor:
    """The stock transformers processor matching the model's tile size."""
    size = model.config.vision_config.image_size
    image_processor = GotOcr2ImageProcessorPil(size={"height": size, "width": size})
    return GotOcr2Processor(image_processor=image_processor, tokenizer=tokenizer)


def save_model_dir(model: GotOcr2ForConditionalGeneration, tokenizer: PreTrainedTokenizerBase, output: str | Path) -> Path:
    """Write a transformers directory: config, safetensors weights, tokenizer and processor configs."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    with _saved_as_it_is():
        model.save_pretrained(output, safe_serialization=True)
    processor_for(model, tokenizer).save_pretrained(output)
    # transformers' processor assumes GOT's 256 image tokens per tile whatever the tile size.
    _update_json(output / "processor_config.json", num_image_tokens=image_tokens_per_tile(model.config.vision_config.image_size))
    _update_json(output / "tokenizer_config.json", added_tokens_decoder=_added_tokens(tokenizer))
    return output


@contextlib.contextmanager
def _saved_as_it_is() -> Iterator[None]:
    """`save_pretrained` first unwraps the model from DDP, FSDP or DeepSpeed containers through
    accelerate, which imports DeepSpeed whenever it is installed, only to know its container: 1.2 s
    and a log line in every init, convert and export. The models saved here are never wrapped."""
    unwrap = modeling_utils.unwrap_model
    modeling_utils.unwrap_model = lambda model, recursive=False: model
    try:
        yield
    finally:
        modeling_utils.unwrap_model = unwrap


def _added_tokens(tokenizer: PreTrainedTokenizerBase) -> dict[str, dict[str, Any]]:
    """The added tokens as transformers 4 wrote them into `tokenizer_config.json`. Version 5 leaves
    them out and then parses the whole 19 MB `tokenizer.json` in Python to find them (0.5 s of every
    start here); with them the loader skips that, and older loaders read them as before."""
    return {str(index): token.__getstate__() for index, token in sorted(tokenizer.added_tokens_decoder.items())}


def _update_json(path: Path, **fields: Any) -> None:
    """Set fields in a JSON file that transformers wrote."""
    content = json.loads(path.read_text(encoding="utf-8"))
    content.update(fields)
    path.write_text(json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def init_model_dir(preset: str, output: str | Path, seed: int = 0) -> Path:
    """Write a random model of a preset with the real GOT tokenizer as a transformers directory."""
    return save_model_dir(random_model(preset, seed), load_tokenizer(None), output)


def convert_model_dir(source: str | Path, output: str | Path) -> Path:
    """Convert an original-format GOT directory to a transformers directory."""
    return save_model_dir(load_original(source), load_tokenizer(source), output)


def ensure_model_dir(model_path: str, preset: str | None, seed: int) -> None:
    """Build the preset at `model_path` when the directory does not exist yet."""
    if preset is not None:
        publish_once(Path(model_path), lambda staging: init_model_dir(preset, staging, seed))
