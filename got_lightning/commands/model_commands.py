"""`got-lightning init`, `convert` and `export`: model directories in and out."""

from __future__ import annotations

import argparse

from got_lightning.model.presets import PRESETS


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    init = subparsers.add_parser("init", help="write a random model of a size preset (real GOT tokenizer)")
    init.add_argument(
        "--preset",
        required=True,
        choices=sorted(PRESETS),
        help="got: the released GOT-OCR2.0 layout (580M); tiny, micro: small random models for the demo and tests; "
        "encoder1024: the real encoder with a tiny decoder, for benchmarks only",
    )
    init.add_argument("--output", required=True, help="directory to write (transformers format)")
    init.add_argument("--seed", type=int, default=0, help="same seed, same weights")
    convert = subparsers.add_parser("convert", help="original GOT checkpoint (GOTQwenForCausalLM) to transformers")
    convert.add_argument("--input", required=True, help="original-format directory (weights + qwen.tiktoken) or hub id")
    convert.add_argument("--revision", help="branch, tag or commit when --input is a hub id (default: main)")
    convert.add_argument("--output", required=True, help="directory to write (transformers format)")
    export = subparsers.add_parser("export", help="training checkpoint to a stock transformers model directory")
    export.add_argument("--ckpt", required=True, help="Lightning .ckpt file or DeepSpeed checkpoint directory")
    export.add_argument("--output", required=True, help="directory to write")
    export.add_argument(
        "--model_path", "--model-path", dest="model_path", help="base model folder or hub id, if not the one the checkpoint names"
    )
    export.add_argument("--revision", help="branch, tag or commit of that hub id")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.text import Text

    from got_lightning.model.hub import fetch_model_dir
    from got_lightning.model.loading import convert_model_dir, init_model_dir

    if args.command == "init":
        output = init_model_dir(args.preset, args.output, args.seed)
    elif args.command == "convert":
        output = convert_model_dir(fetch_model_dir(args.input, args.revision), args.output)
    else:
        from got_lightning.export import export

        output = export(args.ckpt, args.output, args.model_path, args.revision, command=args.command_line)
    Console().print(Text(f"wrote {output}"))
    return 0
