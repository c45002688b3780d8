"""`got-lightning COMMAND --help` prints the help rendered ahead from the live parser: the same text,
at once, and never for libraries it was not rendered with."""

import json
import time

import pytest

from got_lightning.commands.dispatch import LIGHTNING_COMMANDS
from got_lightning.commands.stored_help import HELP_DIR, VERSIONS_FILE, installed_versions, live_help, stored_help
from tests.helpers import run_executable

pytestmark = pytest.mark.slow  # the live parser imports torch, Lightning and transformers once per command

RENDERED_FOR_THESE_LIBRARIES = json.loads((HELP_DIR / VERSIONS_FILE).read_text()) == installed_versions()
NOT_RENDERED_HERE = "the stored help was rendered for other library versions (python tools/render_help.py)"


@pytest.mark.skipif(not RENDERED_FOR_THESE_LIBRARIES, reason=NOT_RENDERED_HERE)
@pytest.mark.parametrize("command", list(LIGHTNING_COMMANDS))
def test_the_stored_help_is_what_the_live_parser_prints(command):
    assert stored_help(command) == live_help(command), "an option or docstring changed: python tools/render_help.py"


@pytest.mark.skipif(not RENDERED_FOR_THESE_LIBRARIES, reason=NOT_RENDERED_HERE)
def test_every_help_answers_within_3_seconds():
    for command in [*LIGHTNING_COMMANDS, "data", "init", "export", "compare", "report", "score", "convert"]:
        started = time.monotonic()
        result = run_executable(command, "--help")
        seconds = time.monotonic() - started
        assert result.returncode == 0 and "usage:" in result.stdout, result.stderr[-2000:]
        assert seconds < 3, f"got-lightning {command} --help took {seconds:.1f} s"


def test_help_rendered_for_other_libraries_is_not_used(tmp_path):
    (tmp_path / "fit.txt").write_text("usage: stale\n")
    (tmp_path / VERSIONS_FILE).write_text(json.dumps({**installed_versions(), "lightning": "0.0.1"}))
    assert stored_help("fit", tmp_path) is None
    (tmp_path / VERSIONS_FILE).write_text(json.dumps(installed_versions()))
    assert stored_help("fit", tmp_path) == "usage: stale\n"


def test_a_subclass_help_asks_the_live_parser():
    result = run_executable("fit", "--trainer.logger.help", "WandbLogger")
    assert result.returncode == 0 and "--trainer.logger.offline" in result.stdout
