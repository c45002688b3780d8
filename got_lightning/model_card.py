"""The model card (`README.md`) an export carries, as the Hugging Face Hub's model page expects it:
YAML metadata (base model, datasets, the held-out CER) and what made the model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from got_lightning.model.hub import is_hub_id

CARD_KEY = "got_lightning"


@dataclass
class RunRecord:
    """What a checkpoint records about the run that wrote it (saved under `CARD_KEY`)."""

    datasets: list[str] = field(default_factory=list)
    command: str | None = None
    held_out: dict[str, Any] | None = None

    @classmethod
    def of_checkpoint(cls, checkpoint: dict[str, Any]) -> RunRecord:
        return cls(**checkpoint.get(CARD_KEY, {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def held_out_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a card needs of a validation's `metrics.json`."""
    summary = {key: metrics.get(key) for key in ("cer", "num_samples", "num_held_out", "global_step")}
    summary["normalization"] = ", ".join(name for name, on in (metrics.get("normalization") or {}).items() if on)
    return summary


def held_out_for(record: RunRecord, checkpoint: Path, step: int) -> dict[str, Any] | None:
    """The held-out figures of the checkpoint's own step: recorded in it, or the run's validation
    files of that step (a step's checkpoint is written before its validation runs); else the latest
    recorded ones."""
    if record.held_out and record.held_out.get("global_step") == step:
        return record.held_out
    metrics = Path(checkpoint).parent.parent / "validation" / f"step-{step:06d}" / "metrics.json"
    if metrics.is_file():
        return held_out_summary(json.loads(metrics.read_text(encoding="utf-8")))
    return record.held_out


def _held_out_line(held_out: dict[str, Any] | None, step: int) -> str:
    if not held_out or held_out.get("cer") is None:
        return "not measured with this checkpoint: run `got-lightning validate --config CFG --ckpt_path CKPT` before publishing"
    when = f"step {held_out['global_step']}" + ("" if held_out["global_step"] == step else f" (the checkpoint is step {step})")
    return (
        f"CER {held_out['cer']:.4f} on {held_out['num_samples']} of {held_out['num_held_out']} held-out samples, at {when}; "
        f"normalization: {held_out.get('normalization') or 'none'}"
    )


def model_card(
    record: RunRecord,
    held_out: dict[str, Any] | None,
    base_model: str,
    revision: str | None,
    step: int,
    image_tokens: int,
    export_command: str,
) -> str:
    """README.md text: metadata block, results, how the model was made and how to use it."""
    metadata: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "image-text-to-text",
        "tags": ["got-ocr2", "ocr", "got-lightning"],
    }
    if is_hub_id(base_model):
        metadata["base_model"] = base_model
    if record.datasets:
        metadata["datasets"] = list(record.datasets)
    if held_out and held_out.get("cer") is not None:
        metadata["model-index"] = [
            {
                "name": "GOT-OCR2.0 fine-tuned with got-lightning",
                "results": [
                    {
                        "task": {"type": "image-text-to-text", "name": "OCR"},
                        "dataset": {"name": f"{', '.join(record.datasets) or 'held-out'} (held-out split)", "type": "held-out"},
                        "metrics": [{"type": "cer", "name": "held-out CER", "value": round(float(held_out["cer"]), 6)}],
                    }
                ],
            }
        ]
    base = f"`{base_model}`" + (f" (revision `{revision}`)" if revision and revision != "main" and is_hub_id(base_model) else "")
    # The processor assumes GOT's 256 image tokens per 1024-px tile.
    tokens_argument = "" if image_tokens == 256 else f", num_image_tokens={image_tokens}"
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        "# GOT-OCR2.0, fine-tuned",
        "",
        f"GOT-OCR2.0 (`GotOcr2ForConditionalGeneration`) fine-tuned from {base} with got-lightning.",
        "",
        f"- Datasets: {', '.join(record.datasets) or 'not recorded'}",
        f"- Held-out: {_held_out_line(held_out, step)}",
        f"- Optimizer steps: {step}",
        f"- Trained with: `{record.command or 'not recorded'}`",
        f"- Exported with: `{export_command}`",
        "",
        "## Use",
        "",
        "```python",
        "from PIL import Image",
        "from transformers import AutoProcessor, GotOcr2ForConditionalGeneration",
        "",
        'model = GotOcr2ForConditionalGeneration.from_pretrained("THIS_REPO")',
        'processor = AutoProcessor.from_pretrained("THIS_REPO")',
        'page = Image.open("page.jpg").convert("RGB")',
        f'inputs = processor(page, return_tensors="pt"{tokens_argument})',
        'ids = model.generate(**inputs, do_sample=False, max_new_tokens=4096, stop_strings="<|im_end|>", tokenizer=processor.tokenizer)',
        'print(processor.decode(ids[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        "```",
        "",
    ]
    return "\n".join(lines)
