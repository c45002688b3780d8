"""`serve` parses its own arguments without leaving them in the caller's `sys.argv` (a later
LightningCLI in the same process would warn that its arguments differ from the command line)."""

from __future__ import annotations

import sys

import pytest

from got_lightning.cli import main


def test_serve_puts_the_callers_argv_back(micro_model_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["caller", "--its-own"])
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--model.model_path", str(micro_model_dir), "--print_config"])
    assert stopped.value.code in (0, None), capsys.readouterr().err[-2000:]
    assert "model_path" in capsys.readouterr().out
    assert sys.argv == ["caller", "--its-own"]
