"""Held-out evaluation: greedy generation, scores, result files, predictions and reports."""
