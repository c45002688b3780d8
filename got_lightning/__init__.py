"""got-lightning: fine-tune GOT-OCR2.0 with PyTorch Lightning."""

__version__ = "0.1.0"
