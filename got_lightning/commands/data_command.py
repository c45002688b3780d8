"""`got-lightning data check`, `data show` and `data convert`: see exactly what the model will get,
and move datasets between formats."""

from __future__ import annotations

import argparse

from got_lightning.data.config import DATASET_FORMATS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="inspect datasets")
    commands = data.add_subparsers(dest="data_command", required=True)
    for name, help_text in (
        ("check", "read every record and image, report problems"),
        ("show", "show one sample"),
        ("convert", "write the datasets, in any format, as GOT JSONL (or messages)"),
        ("pack", "write a split as litdata chunks in a folder or under s3://bucket/prefix (format: litdata)"),
    ):
        parser = commands.add_parser(name, help=help_text)
        parser.add_argument(
            "--config", action="append", help="got-lightning YAML config (its data section); repeat to stack them as fit does"
        )
        parser.add_argument("--annotations", help="annotations: a file, a folder or a dataset id, in any format (see --format)")
        parser.add_argument("--image-root", "--image_root", dest="image_root", help="folder image paths are relative to")
        parser.add_argument(
            "--allow-outside-root",
            "--allow_outside_root",
            dest="allow_outside_root",
            action="store_true",
            help="let --annotations' image paths point outside --image-root",
        )
        parser.add_argument(
            "--format",
            choices=("auto", *DATASET_FORMATS),
            help="format of --annotations (default: auto, from the path and the first record)",
        )
        parser.add_argument("--image-mode", "--image_mode", dest="image_mode", choices=("resize", "pad", "tiles"))
        parser.add_argument(
            "--model_path",
            "--model-path",
            dest="model_path",
            help="model folder or hub id whose tokenizer and tile size to use (default: the config's model)",
        )
        parser.add_argument("--revision", help="branch, tag or commit of a hub id (default: the config's, else main)")
        if name in ("check", "show"):
            parser.add_argument("--json", action="store_true", help="print one JSON object")
        if name == "convert":
            parser.add_argument(
                "--output", required=True, help="JSONL file to write (images it must write go in images/ beside it)"
            )
            parser.add_argument("--split", choices=("train", "val", "all"), default="all", help="which records (default: all)")
            parser.add_argument("--to", choices=("got", "messages"), default="got", help="the format written")
        elif name == "pack":
            parser.add_argument("--output", required=True, help="an empty folder, or s3://bucket/prefix (AWS_* variables)")
            parser.add_argument("--split", choices=("train", "val"), default="train", help="which split (default: train)")
            parser.add_argument("--chunk_mb", "--chunk-mb", dest="chunk_mb", type=float, default=64.0, help="chunk size in MiB")
        elif name == "check":
            parser.add_argument("--workers", type=int, default=0, help="worker processes reading images")
        else:
            parser.add_argument("--split", choices=("train", "val"), default="train")
            parser.add_argument("--index", type=int, default=0)
            parser.add_argument(
                "--epoch", type=int, default=0, help="the training epoch whose augmentation to show (data.augment; train split)"
            )
            parser.add_argument("--save", help="write what the model sees as a PNG (tiles side by side)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from got_lightning.commands.inspect_data import check, show

    if args.data_command == "convert":
        from got_lightning.commands.convert_data import convert

        return convert(args, Console())
    if args.data_command == "pack":
        from got_lightning.commands.pack_data import pack

        return pack(args, Console())
    console = Console(stderr=args.json)
    return check(args, console) if args.data_command == "check" else show(args, console)
