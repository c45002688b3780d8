"""Write docs/options.md: every option of got-lightning's config sections (model, data, checkpoint,
...) with its type, default and help, taken from the parser `got-lightning fit` builds out of the
signatures and docstrings, so that the code is the one place each option is described.

    python tools/render_options.py           # rewrite docs/options.md
    python tools/render_options.py --check   # exit 1 when docs/options.md is not what the code says
    python tools/render_options.py --names   # the option names, one a line
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

from jsonargparse import ArgumentParser

from got_lightning.commands.lightning_commands import GotCLI
from got_lightning.data.datamodule import GotDataModule
from got_lightning.module import GotLightningModule

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "options.md"
SECTIONS = ("model", "data", "checkpoint", "best_checkpoint", "preemption", "logged_pages", "predict_output")
TOP_LEVEL = ("seed_everything", "fresh_start", "validate_before_fit", "ckpt_path")
HEADER = """# Options

Every option of the config sections, as `got-lightning fit --help` prints it, generated from the
signatures and docstrings by `python tools/render_options.py` (a test keeps this file equal to the
code). Set them in a config file (`model:` / `data:` / ... sections) or on the command line
(`--model.learning_rate 1e-4`). Lightning's own `trainer.*` options are in `got-lightning fit --help`
and Lightning's `Trainer` documentation.
"""


class _ParserOnly(GotCLI):
    """GotCLI that builds and parses, and instantiates nothing."""

    def before_instantiate_classes(self) -> None:
        pass

    def instantiate_classes(self) -> None:
        pass


def _dataclass_of(typehint: object) -> type | None:
    for candidate in (typehint, *typing.get_args(typehint)):
        for inner in (candidate, *typing.get_args(candidate)):
            if dataclasses.is_dataclass(inner):
                return inner
    return None


def _type_name(action: argparse.Action) -> str:
    typehint = getattr(action, "_typehint", None)
    if typehint is None:
        return "bool" if isinstance(action.default, bool) else "str"
    name = getattr(typehint, "__name__", None) if isinstance(typehint, type) else None
    text = name or str(typehint).replace("typing.", "")
    for module in ("got_lightning.", "lightning.pytorch.", "pathlib."):
        text = text.replace(module, "")
    return text.replace("NoneType", "None").replace("|", "\\|")


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _rows(parser: ArgumentParser, prefix: str = "") -> list[str]:
    rows = []
    for action in parser._actions:
        if action.dest in ("help", "config", "print_config") or action.dest.endswith(".help") or action.help == argparse.SUPPRESS:
            continue
        dataclass = _dataclass_of(getattr(action, "_typehint", None))
        if dataclass is not None:
            listed = "list" in str(action._typehint)
            kind = f"list[{dataclass.__name__}]" if listed else dataclass.__name__
            rows.append(f"| `{prefix}{action.dest}` | {kind} | {_cell(action.default)} | {_cell(action.help or '')} |")
            nested = ArgumentParser()
            nested.add_class_arguments(dataclass)
            rows += _rows(nested, f"{prefix}{action.dest}{'[].' if listed else '.'}")
            continue
        default = "linked: set by the `model.` option" if action.default == argparse.SUPPRESS else _cell(action.default)
        rows.append(f"| `{prefix}{action.dest}` | {_type_name(action)} | {default} | {_cell(action.help or '')} |")
    return rows


def render() -> str:
    rows = _rows(_ParserOnly(GotLightningModule, GotDataModule, run=False, args=["--model.model_path", "MODEL"]).parser)
    out = [HEADER]
    for section in (*SECTIONS, "other"):
        if section == "other":
            chosen = [row for row in rows if row.split("`")[1] in TOP_LEVEL]
        else:
            chosen = [row for row in rows if row.split("`")[1].startswith(f"{section}.")]
        if chosen:
            out += [f"## {section}", "", "| option | type | default | what it does |", "| --- | --- | --- | --- |", *chosen, ""]
        if section == "data":
            out += _augment_table()
    return "\n".join(out)


def _augment_table() -> list[str]:
    """The steps `data.augment` takes, from the table the code builds them from."""
    from got_lightning.data.images.augment import STEPS

    rows = [
        f"| `{name}` | {', '.join(f'`{key}: {value:g}`' for key, value in {**kind.defaults, 'p': 0.5}.items())} | {kind.doc} |"
        for name, kind in STEPS.items()
    ]
    intro = (
        "Each entry of `data.augment` is `{name: ..., p: ..., ...}`; the steps run in the order given, each with probability `p`."
    )
    return [
        "### data.augment steps",
        "",
        intro,
        "",
        "| name | parameters (defaults) | effect |",
        "| --- | --- | --- |",
        *rows,
        "",
    ]


def option_names() -> list[str]:
    cli = _ParserOnly(GotLightningModule, GotDataModule, run=False, args=["--model.model_path", "MODEL"])
    return [row.split("`")[1] for row in _rows(cli.parser)]


def main() -> int:
    if "--names" in sys.argv[1:]:
        print("\n".join(option_names()))
        return 0
    text = render()
    if "--check" in sys.argv[1:]:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} differs from the code: python tools/render_options.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
