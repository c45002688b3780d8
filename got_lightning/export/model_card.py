"""The model card (`README.md`) an export carries, as the Hugging Face Hub's model page expects it:
YAML metadata (base model, datasets, the held-out CER) and what made the model."""

from __future__ import annotations

from typing import Any

import yaml

from got_lightning.model.hub import is_hub_id
from got_lightning.training.run_record import RunRecord


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
