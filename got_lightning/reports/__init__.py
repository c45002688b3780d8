"""Offline reports on files a run left behind: base against fine-tuned, the error analysis, the
training curve, the HTML page with its page images, and scores of a predictions file."""
