"""The GOT model: size presets, loading and conversion, freezing, LoRA, optimizers and loss."""
