"""Subcommands that sit beside LightningCLI's fit/validate/test/predict."""
