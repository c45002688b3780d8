"""The README and docs/ say what the code does: every command they show parses with the real
parsers (LightningCLI's through `--print_config`, which checks every flag and config value), every
key of their YAML examples is an option, and docs/options.md is what the code's docstrings say.
(tools/journey.py and the tests named in each doc run the commands for real.)"""

import dataclasses
import inspect
import re
import shlex
import subprocess
import sys

import lightning as L
import pytest
import yaml

from got_lightning.cli import main
from got_lightning.commands.dispatch import LIGHTNING_COMMANDS, parser
from got_lightning.data.config import DatasetSpec
from tests.helpers import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# Words the docs use for "your file here", and a value each parses as.
PLACEHOLDERS = {"CFG": "configs/demo.yaml", "N": "1", "FILE": "pages.jsonl", "DIR": "out", "PATH": "runs/x.ckpt"}


def blocks(language: str) -> list[tuple[str, str]]:
    return [
        (doc.name, block)
        for doc in DOCS
        for block in re.findall(rf"```{language}\n(.*?)```", doc.read_text(encoding="utf-8"), re.DOTALL)
    ]


def shown_commands() -> list[tuple[str, str]]:
    commands = []
    for doc, block in blocks("bash"):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            line = re.sub(r"^srun ", "", re.sub(r"^-m got_lightning\.cli ", "got-lightning ", line))
            if line.startswith("got-lightning "):
                commands.append((doc, line))
    return commands


def as_arguments(line: str, mine: str) -> list[str]:
    """The command's arguments, with optional parts included, the first of each `a|b` choice and
    placeholders replaced by values of their kind."""
    line = re.sub(r"\[([^\]]+)\]", r"\1", line)
    words = []
    for word in shlex.split(line)[1:]:
        word = word.split("|")[0] if "|" in word and "://" not in word else word
        words.append(mine if word == "mine.yaml" else PLACEHOLDERS.get(word, word))
    return words


def test_the_docs_show_commands():
    assert len(shown_commands()) > 30


@pytest.mark.parametrize(("doc", "line"), shown_commands(), ids=lambda value: value[:60])
def test_every_shown_command_parses(doc, line, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO_ROOT)
    (readme_mine,) = [block for name, block in blocks("yaml") if block.startswith("# mine.yaml")]
    mine = tmp_path / "mine.yaml"
    mine.write_text(readme_mine, encoding="utf-8")
    arguments = as_arguments(line, str(mine))
    if arguments[0] in LIGHTNING_COMMANDS:
        with pytest.raises(SystemExit) as stopped:
            main([*arguments, "--print_config"])
        assert stopped.value.code in (0, None), f"{doc}: {line}\n{capsys.readouterr().err[-2000:]}"
    else:
        parser().parse_args(arguments)


def _option_names() -> set[str]:
    result = subprocess.run(
        [sys.executable, "tools/render_options.py", "--names"], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    return set(result.stdout.split())


def _keys(mapping: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        keys.append(name)
        if isinstance(value, dict) and "class_path" not in value:
            keys += _keys(value, f"{name}.")
    return keys


def test_every_key_of_the_yaml_examples_is_an_option():
    options = _option_names()
    trainer = set(inspect.signature(L.Trainer.__init__).parameters)
    dataset_fields = {field.name for field in dataclasses.fields(DatasetSpec)}
    checked = 0
    for doc, block in blocks("yaml"):
        config = yaml.safe_load(block)
        if not isinstance(config, dict) or not set(config) & {"model", "data", "trainer", "checkpoint", "logged_pages"}:
            continue
        for key in _keys(config):
            section, _, rest = key.partition(".")
            if section in ("model", "data", "checkpoint", "best_checkpoint", "preemption", "logged_pages", "predict_output"):
                assert not rest or key in options, f"{doc}: `{key}` is not an option"
            elif section == "trainer" and rest:
                assert rest.split(".")[0] in trainer, f"{doc}: `{key}` is not a Trainer argument"
            checked += 1
        for entry in (config.get("data") or {}).get("datasets") or []:
            assert set(entry) <= dataset_fields, f"{doc}: {set(entry) - dataset_fields} are not dataset keys"
    assert checked > 20


def test_options_md_is_what_the_code_says():
    result = subprocess.run([sys.executable, "tools/render_options.py", "--check"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
