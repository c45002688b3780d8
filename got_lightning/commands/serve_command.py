"""`got-lightning serve`: the model of a recipe, a training checkpoint or an export behind an
OpenAI-compatible HTTP server, read with the batched generation loop.

FastAPI and uvicorn directly rather than LitServe: the batch must be ours between decoding steps
(requests join it, finished and abandoned ones leave), and LitServe's OpenAI spec runs whole
batches of whole requests in worker processes (one bad request failed all 8 of its batch, SIGTERM
left its workers running, no `/v1/models`: measured with litserve 0.2.19, see docs/serving.md)."""

from __future__ import annotations

import copy
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import uvicorn
from lightning.pytorch.cli import LightningArgumentParser

from got_lightning.commands.lightning_commands import GotCLI
from got_lightning.core.errors import InputNotFoundError, SettingError
from got_lightning.core.run_dir import RunDir
from got_lightning.data.datamodule import GotDataModule
from got_lightning.data.sample import SampleBuilder
from got_lightning.module import GotLightningModule
from got_lightning.serving.app import ServedModel, build_app
from got_lightning.serving.engine import Engine, EnginePool
from got_lightning.serving.requests import ServeLimits
from got_lightning.training.checkpoints import NAMED_CHECKPOINTS, read_checkpoint, resolve_checkpoint

AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
CAST = {"bf16-true": torch.bfloat16, "16-true": torch.float16}
FULL = {None, "32", "32-true", 32}


class ServeCLI(GotCLI):
    """The recipe's model and data sections, and the server's own flags; no trainer is built."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="training checkpoint: last, best or a path")
        parser.add_argument("--host", type=str, default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free one, printed)")
        parser.add_argument("--devices", type=int, default=1, help="engines, one per GPU (on CPU they share the cores)")
        parser.add_argument("--accelerator", type=str, default="auto", help="auto, cpu or cuda")
        parser.add_argument("--max_batch_size", type=int, default=8, help="pages decoded together per engine (1: no batching)")
        parser.add_argument("--batch_timeout", type=float, default=0.01, help="seconds an idle engine waits for a batch to fill")
        parser.add_argument("--continuous_batching", type=bool, default=True, help="new requests join a running batch")
        parser.add_argument("--max_request_mb", type=float, default=20.0, help="largest request body, in MB")
        parser.add_argument(
            "--allow_local_files", type=str | None, default=None, help="folder whose files requests may name by path"
        )
        parser.add_argument("--served_model_name", type=str | None, default=None, help="the model id clients name")

    def instantiate_classes(self) -> None:
        trainer = self.config["trainer"]
        self.root_dir, self.precision = trainer["default_root_dir"], trainer["precision"]
        # A recipe's strategy, loggers and callbacks belong to training: none is built to serve.
        for key, value in {"strategy": "auto", "callbacks": None, "logger": None, "plugins": None, "profiler": None}.items():
            trainer[key] = value
        self.config_init = self.parser.instantiate_classes(self.config)
        self.model, self.datamodule = self.config_init["model"], self.config_init["data"]


def run_serve(argv: list[str], engine: type[Engine] = Engine) -> int:
    """`got-lightning serve ARGV`; `engine` reads the pages (the benchmark swaps in others)."""
    # LightningCLI reads sys.argv (and warns when given other arguments): hand it the server's own
    # while it parses, and put the caller's back.
    callers_argv, sys.argv = sys.argv, [f"{sys.argv[0]} serve", *argv]
    try:
        cli = ServeCLI(GotLightningModule, GotDataModule, run=False, parser_kwargs={"prog": "got-lightning serve"})
    finally:
        sys.argv = callers_argv
    options = cli.config
    module, data = cli.model, cli.datamodule
    checkpoint = None
    if options.ckpt_path:
        checkpoint = resolve_checkpoint(options.ckpt_path, cli.root_dir or ".")
        if options.ckpt_path in NAMED_CHECKPOINTS:
            print(f"--ckpt_path {options.ckpt_path}: using {checkpoint}", file=sys.stderr)
        module.load_trained(read_checkpoint(checkpoint))
    served = ServedModel(
        engines=EnginePool(_engines(module, options, cli.precision, engine)),
        builder=data.builder,
        tiles_builder=_tiles_builder(data),
        tokenizer=module.tokenizer,
        limits=ServeLimits(
            model_name=options.served_model_name or _model_name(module, checkpoint, cli.root_dir),
            max_new_tokens=module.generation.max_new_tokens,
            max_tokens_limit=max(data.model_max_length, module.generation.max_new_tokens),
            local_files=None if options.allow_local_files is None else _local_folder(options.allow_local_files),
            tiles_by_default=data.image_mode == "tiles",
        ),
        max_request_bytes=int(options.max_request_mb * 2**20),
    )
    server = _Server(uvicorn.Config(build_app(served), host=options.host, port=options.port, log_level="warning"))
    server.describe = f"{served.limits.model_name!r}, {options.devices} engine(s), batches of up to {options.max_batch_size}"
    # uvicorn shuts down gracefully on SIGTERM and Ctrl-C, then raises the signal again for the
    # handler it found: let that one be a no-op, so that a graceful stop exits 0.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: None)
    server.run()
    return 0 if server.started else 2  # uvicorn has said why (the port is taken, say)


class _Server(uvicorn.Server):
    """uvicorn's server, saying where it listens once it does. SIGTERM or Ctrl-C: it stops
    accepting, answers the requests in flight, then the engines stop (exit 0)."""

    describe = ""

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            print(f"got-lightning serve: {self.describe} at http://{host}:{port}", flush=True)


def _engines(module: GotLightningModule, options: Any, precision: Any, engine: type[Engine]) -> list[Engine]:
    if precision not in FULL and precision not in AUTOCAST and precision not in CAST:
        raise SettingError(f"serve supports precision 32-true, bf16-mixed, 16-mixed, bf16-true and 16-true, not {precision!r}")
    if options.devices < 1 or options.max_batch_size < 1:
        raise SettingError("--devices and --max_batch_size must be at least 1")
    use_cuda = options.accelerator == "cuda" or (options.accelerator == "auto" and torch.cuda.is_available())
    if options.accelerator not in ("auto", "cpu", "cuda"):
        raise SettingError(f"--accelerator must be auto, cpu or cuda, got {options.accelerator!r}")
    if use_cuda and torch.cuda.device_count() < options.devices:
        raise SettingError(f"--devices {options.devices} but {torch.cuda.device_count()} CUDA device(s) are visible")
    module = module.eval()
    if precision in CAST:
        module = module.to(CAST[precision])
    engines = []
    for index in range(options.devices):
        device = torch.device("cuda", index) if use_cuda else torch.device("cpu")
        replica = module if index == 0 or not use_cuda else copy.deepcopy(module)
        engines.append(
            engine(
                replica.to(device),
                device,
                options.max_batch_size,
                options.batch_timeout,
                options.continuous_batching,
                AUTOCAST.get(precision),
                name=f"engine-{index}",
            )
        )
    return engines


def _tiles_builder(data: GotDataModule) -> SampleBuilder:
    """The configured pipeline in `tiles` mode, for requests asking GOT's multi-crop prompt."""
    return SampleBuilder(replace(data.pages, mode="tiles"), data.builder.prompts, data.allow_outside_root)


def _model_name(module: GotLightningModule, checkpoint: Path | None, root_dir: str | None) -> str:
    """The id clients name: the model path as given, or `<run folder>/<checkpoint name>`."""
    if checkpoint is None:
        path = str(module.hparams.model_path)
        return path if not Path(path).exists() else Path(path).resolve().name
    run = Path(root_dir).resolve().name if root_dir else RunDir.of_checkpoint(Path(checkpoint).resolve()).root.name
    return f"{run}/{Path(checkpoint).stem}"


def _local_folder(folder: str) -> Path:
    path = Path(folder)
    if not path.is_dir():
        raise InputNotFoundError(f"--allow_local_files {folder}: no such folder")
    return path.resolve()
