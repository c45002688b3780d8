"""Training machinery around the LightningModule: strategies, crash-safe checkpoints, exact resume,
preemption, pre-flight checks, the progress bar and the step monitors."""
