"""`got-lightning data pack`: a config's split, after the index and its checks, as litdata chunks
in a folder or under an S3 prefix (`format: litdata` reads them back)."""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.text import Text

from got_lightning.data.annotations.export_records import encoded_image
from got_lightning.data.annotations.formats.shards import ShardWriter
from got_lightning.data.annotations.records import image_of, parse_record
from got_lightning.data.errors import BadSampleError, Problem


def pack(args: argparse.Namespace, console: Console) -> int:
    from got_lightning.commands.inspect_data import _data_module

    module = _data_module(args)
    module.setup("fit")
    dataset = module.train_dataset if args.split == "train" else module.val_dataset
    problems: list[Problem] = list(module.index_problems)
    _, first = np.unique(dataset.entries, axis=0, return_index=True)  # a repeated record is packed once
    writer = ShardWriter(args.output, args.chunk_mb)
    for item in track(sorted(first.tolist()), description=f"packing the {args.split} split", console=console):
        source, position = dataset.locate(item)
        raw = source.index.read(position)
        try:
            record = parse_record(raw)
            images = source.index.images(position) or dataset.builder.resolve(record, source.image_root)
            encoded = [encoded_image(image, module.max_image_pixels)[0] for image in images]
        except (BadSampleError, OSError) as error:
            reason = error.reason if isinstance(error, BadSampleError) else f"cannot be read: {error}"
            problems.append(Problem(source.name, position, image_of(raw), reason))
            continue
        refs = [image.ref for image in images]
        writer.add({**raw, "image": refs[0] if len(refs) == 1 else refs}, encoded)
    packed = writer.finish()
    console.print(
        Text(
            f"packed {writer.written} record(s) of the {args.split} split into {args.output}: "
            f"{packed / 2**20:.1f} MiB for {writer.source_bytes / 2**20:.1f} MiB of images ({len(problems)} bad left out)"
        )
    )
    for problem in problems[:20]:
        console.print(Text(f"BAD {problem} (left out)", style="red"))
    return 0
