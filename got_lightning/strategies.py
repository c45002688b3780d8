"""The strategy class path recipes name (`got_lightning.strategies.GotDeepSpeedStrategy`); the code
lives in `got_lightning.training.strategies`."""

from got_lightning.training.strategies import GotDeepSpeedStrategy

__all__ = ["GotDeepSpeedStrategy"]
