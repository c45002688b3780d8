"""`got-lightning data convert`: a config's datasets, in whatever format, as one GOT JSONL (or
`messages`) file."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.text import Text

from got_lightning.core.atomic_files import atomic_write_text
from got_lightning.data.annotations.export_records import RecordWriter
from got_lightning.data.errors import Problem


def convert(args: argparse.Namespace, console: Console) -> int:
    from got_lightning.commands.inspect_data import _all_records, _data_module

    module = _data_module(args)
    if args.split == "all":
        dataset, problems, _ = _all_records(module)
        items = list(range(len(dataset)))
    else:
        module.setup("fit")
        dataset = module.train_dataset if args.split == "train" else module.val_dataset
        problems = list(module.index_problems)
        # Repeats of a record (repeat > 1) are one record in the file.
        _, first = np.unique(dataset.entries, axis=0, return_index=True)
        items = sorted(first.tolist())
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    writer = RecordWriter(output, module.max_image_pixels, args.to)
    lines = []
    for line in track(writer.lines(dataset, items), total=len(items), description="converting", console=console):
        if isinstance(line, Problem):
            problems.append(line)
        else:
            lines.append(line)
    atomic_write_text(output, "".join(f"{line}\n" for line in lines))
    console.print(
        Text(f"wrote {len(lines)} record(s) to {output} ({args.to}), {len(writer.written)} image(s) into {writer.images_dir}")
    )
    if writer.outside:
        console.print(
            Text(
                f"{writer.outside} image(s) are referenced by absolute path, outside {output.parent}: "
                "use the file with allow_outside_root: true"
            )
        )
    for problem in problems[:20]:
        console.print(Text(f"BAD {problem} (left out)", style="red"))
    if len(problems) > 20:
        console.print(
            Text(f"... and {len(problems) - 20} more bad records left out (run `got-lightning data check`)", style="red")
        )
    return 0
