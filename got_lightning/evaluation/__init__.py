"""Held-out evaluation inside Lightning's loops: scores and metrics, the held-out files of each
validation, the pages a logger shows, and `predict`'s writer."""
