"""Greedy OCR generation shared by validation, `predict` and `serve`: prompts out of training-format
batches, the n-gram rule, and a decoding batch that rows join and leave between steps."""
