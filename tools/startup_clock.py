"""A callback for `tools/bench_startup.py`: prints how long after the command started (the
`STARTUP_CLOCK_T0` time the benchmark sets) the first validation batch began."""

from __future__ import annotations

import os
import time

import lightning as L


class FirstBatchClock(L.Callback):
    def __init__(self) -> None:
        self.seen = False

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if not self.seen:
            self.seen = True
            print(f"first validation batch after {time.time() - float(os.environ['STARTUP_CLOCK_T0']):.3f} s", flush=True)
