"""The LightningDataModule: config-registered datasets, held-out split, samplers and loaders."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchdata.stateful_dataloader import StatefulDataLoader

from got_lightning.core.errors import SettingError
from got_lightning.core.options import as_options
from got_lightning.data.accumulation import WindowLoader
from got_lightning.data.annotations.index import build_index
from got_lightning.data.collate import Collator
from got_lightning.data.config import DatasetSpec
from got_lightning.data.dataset import AnnotationSource, GotDataset, StrictModeError, index_datasets, source_entries
from got_lightning.data.errors import NothingToTrainOnError, Problem, commonest_reasons
from got_lightning.data.images.augment import ScanAugmentation
from got_lightning.data.images.geometry import ImageGeometry
from got_lightning.data.images.pixels import ImageMode, PageProcessor
from got_lightning.data.predict import ImageFolderDataset, PredictPrompt, is_annotation_file, list_images
from got_lightning.data.prompt import OverlengthPolicy, PromptBuilder
from got_lightning.data.sample import SampleBuilder
from got_lightning.data.sampler import ShardSampler, TrainBatchSampler
from got_lightning.data.split import repeat_positions, split_positions
from got_lightning.data.synthetic import materialize
from got_lightning.model.hub import DEFAULT_REVISION, resolve_model_path
from got_lightning.tokenizer import load_tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitSummary:
    """Record counts of one dataset after indexing and splitting."""

    name: str
    records: int
    bad: int
    train: int
    val: int
    left_out: int


class GotDataModule(L.LightningDataModule):
    """GOT conversation datasets with a deterministic held-out split.

    Args:
        datasets: The datasets to train on (`name`, `annotations`, `image_root`, ...).
        val_fraction: Share of each dataset held out by image hash, unless the dataset sets its own.
        image_mode: `resize` (upstream), `pad` (letterbox on white) or `tiles` (dynamic tiling).
        min_tiles: Fewest tiles per page in `tiles` mode.
        max_tiles: Most tiles per page in `tiles` mode (a thumbnail is added when more than one).
        model_max_length: Longest sample in tokens, image tokens included.
        overlength: `skip` over-length samples (counted, reported) or `truncate` their answer text.
        batch_size: Training samples per device and step.
        eval_batch_size: Samples per validation batch.
        num_workers: DataLoader worker processes.
        group_by_length: Batch samples of similar length together to cut padding.
        seed: Shuffling seed (the split does not depend on it).
        strict: Fail on the first bad record or image instead of skipping it.
        allow_outside_root: Let image paths point outside their dataset's image_root.
        max_image_pixels: Refuse images with more pixels (decompression bombs); null for no limit.
        jpeg_draft: 0 decodes JPEGs at full resolution (pixels within 0.05 of transformers' processor);
            N > 0 lets libjpeg-turbo decode at a reduced scale that stays N times larger than the resize
            target (faster still on big scans, but no longer within that tolerance at text edges).
        model_path: Model directory or hub id whose tokenizer and image size to use (none: the real GOT's).
        model_revision: Branch, tag or commit when `model_path` is a hub id.
        predict_input: What `predict` reads: a folder of images, a list file (one image path per line)
            or an annotation file (its prompts are used and its answers kept as references).
        predict_prompt: The prompt `predict` asks of folder and list images.
        augment: Scan augmentation of the training split, steps applied in order, each
            `{name, p, ...parameters}`: `rotate`, `skew`, `perspective`, `blur`, `noise`, `jpeg`,
            `brightness_contrast`, `ink_thicker`, `ink_thinner` (docs/data.md lists their parameters).
            The same (seed, epoch, sample) always gives the same pixels; held-out pages are never augmented.
    """

    def __init__(
        self,
        datasets: list[DatasetSpec] | None = None,
        val_fraction: float = 0.0,
        image_mode: ImageMode = "resize",
        min_tiles: int = 1,
        max_tiles: int = 6,
        model_max_length: int = 8192,
        overlength: OverlengthPolicy = "skip",
        batch_size: int = 1,
        eval_batch_size: int = 1,
        num_workers: int = 0,
        group_by_length: bool = False,
        seed: int = 0,
        strict: bool = False,
        allow_outside_root: bool = False,
        max_image_pixels: int | None = Image.MAX_IMAGE_PIXELS,
        jpeg_draft: float = 0.0,
        model_path: str | None = None,
        model_revision: str = DEFAULT_REVISION,
        predict_input: str | None = None,
        predict_prompt: PredictPrompt | dict | None = None,
        augment: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= val_fraction < 1:
            raise SettingError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.specs = [spec if isinstance(spec, DatasetSpec) else DatasetSpec(**spec) for spec in datasets or []]
        names = [spec.name for spec in self.specs]
        if len(set(names)) != len(names):
            raise SettingError(f"dataset names must be unique, got {names}")
        self.val_fraction = val_fraction
        self.model_max_length = model_max_length
        self.overlength = overlength
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.group_by_length = group_by_length
        self.seed = seed
        self.strict = strict
        self.allow_outside_root = allow_outside_root
        self.model_path = model_path
        self.model_revision = model_revision
        self.image_mode = image_mode
        self.min_tiles = min_tiles
        self.max_tiles = max_tiles
        self.jpeg_draft = jpeg_draft
        self.max_image_pixels = max_image_pixels
        self.predict_input = predict_input
        self.predict_prompt = as_options(PredictPrompt, predict_prompt, PredictPrompt())
        self.augmentation = ScanAugmentation(augment, seed) if augment else None
        self.train_dataset: GotDataset | None = None
        self.val_dataset: GotDataset | None = None
        self.summaries: list[SplitSummary] = []
        self.index_problems: list[Problem] = []
        self._loaders: list[StatefulDataLoader] = []
        self.held_out_problems: list[Problem] = []
        self.predict_keys: list[str | int] | None = None
        self.predict_index_problems: list[Problem] = []
        self._predicted: set[str | int] = set()

    @cached_property
    def model_dir(self) -> Path | None:
        """The local folder of `model_path` (a hub id resolved through the hub's cache)."""
        return None if self.model_path is None else resolve_model_path(self.model_path, self.model_revision)

    @cached_property
    def geometry(self) -> ImageGeometry:
        """Read from the model directory when first needed (the model may be built after this module)."""
        return ImageGeometry.from_model_dir(self.model_dir)

    @cached_property
    def pages(self) -> PageProcessor:
        return PageProcessor(
            image_size=self.geometry.image_size,
            mode=self.image_mode,
            min_tiles=self.min_tiles,
            max_tiles=self.max_tiles,
            draft_oversample=self.jpeg_draft,
            max_pixels=self.max_image_pixels,
        )

    @cached_property
    def tokenizer(self):
        return load_tokenizer(self.model_dir)

    @cached_property
    def builder(self) -> SampleBuilder:
        prompts = PromptBuilder(self.tokenizer, self.geometry.tokens_per_tile, self.model_max_length, self.overlength)
        return SampleBuilder(self.pages, prompts, self.allow_outside_root)

    def prepare_data(self) -> None:
        """Render synthetic datasets whose annotation file does not exist yet."""
        for spec in self.specs:
            if spec.synthetic is not None:
                materialize(spec.synthetic, spec.annotations)

    def renders_data(self) -> bool:
        """Whether `prepare_data` has synthetic datasets still to render."""
        return any(spec.synthetic is not None and not Path(spec.annotations).exists() for spec in self.specs)

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None or stage == "predict":
            return
        if not self.specs:
            raise SettingError("no datasets configured (data.datasets)")
        sources: list[AnnotationSource] = []
        train_entries: list[np.ndarray] = []
        val_entries: list[np.ndarray] = []
        for dataset in index_datasets(self.specs):
            spec, index = dataset.spec, dataset.train.index
            self.index_problems += dataset.problems
            sources.append(dataset.train)
            source_id = len(sources) - 1
            if dataset.held_out is None:
                fraction = self.val_fraction if spec.val_fraction is None else spec.val_fraction
                train, held_out = split_positions(index.split_points, fraction)
                val_id, left_out = source_id, 0
            else:
                val_index = dataset.held_out.index
                self.held_out_problems += val_index.problems
                sources.append(dataset.held_out)
                val_id = len(sources) - 1
                train, _ = split_positions(index.split_points, 0.0, val_index.split_points)
                held_out = val_index.valid_positions
                left_out = len(index.valid_positions) - len(train)
            repeated = repeat_positions(train, index.split_points, spec.repeat)
            train_entries.append(source_entries(source_id, repeated))
            val_entries.append(source_entries(val_id, held_out))
            self.summaries.append(
                SplitSummary(spec.name, len(index), len(dataset.problems), len(repeated), len(held_out), left_out)
            )
        if self.strict and self.index_problems:
            raise StrictModeError(f"{len(self.index_problems)} bad record(s) (strict: true); first: {self.index_problems[0]}")
        self.train_dataset = GotDataset(sources, np.concatenate(train_entries), self.builder, self.strict, self.augmentation)
        self.val_dataset = GotDataset(sources, np.concatenate(val_entries), self.builder, self.strict)
        self._report()

    def check_something_to_train_on(self) -> None:
        """Stop before the first step when no train sample can be read (every record bad, every
        image missing, every answer over-length): such a run would only skip. Stops at the first
        readable sample, so a healthy dataset costs one sample's check."""
        entries = self.train_dataset.entries
        _, first = np.unique(entries, axis=0, return_index=True)
        reasons = [problem.reason for problem in self.index_problems]
        for item in sorted(first.tolist()):
            sample = self.train_dataset.build(item, pixels=False)
            if not isinstance(sample, Problem):
                return
            reasons.append(sample.reason)
        records = sum(summary.records for summary in self.summaries)
        why = f": {commonest_reasons(reasons)}" if reasons else ""
        raise NothingToTrainOnError(
            f"nothing to train on: no train sample of {records} record(s) can be read{why} "
            "(`got-lightning data check --config CFG` lists every reason)"
        )

    def _report(self) -> None:
        if self.trainer is not None and self.trainer.global_rank != 0:
            return
        for summary in self.summaries:
            (log.warning if summary.bad else log.info)(
                "dataset %r: %d records, %d bad, train %d, val %d%s",
                summary.name,
                summary.records,
                summary.bad,
                summary.train,
                summary.val,
                f", {summary.left_out} train record(s) left out because their image is in the validation file"
                if summary.left_out
                else "",
            )
        for problem in self.index_problems[:20]:
            log.warning("bad record skipped: %s", problem)
        if len(self.index_problems) > 20:
            log.warning("... and %d more bad records (run `got-lightning data check`)", len(self.index_problems) - 20)

    def _world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 1, 0
        return self.trainer.world_size, self.trainer.global_rank

    def train_lengths(self) -> np.ndarray:
        """Cheap per-item length estimates for length grouping: answer characters."""
        entries = self.train_dataset.entries
        lengths = np.zeros(len(entries), dtype=np.int64)
        for source_id, source in enumerate(self.train_dataset.sources):
            rows = entries[:, 0] == source_id
            lengths[rows] = source.index.answer_chars[entries[rows, 1]]
        return lengths

    def train_dataloader(self) -> WindowLoader:
        world, rank = self._world()
        sampler = TrainBatchSampler(
            self.train_lengths(),
            batch_size=self.batch_size,
            seed=self.seed,
            group_by_length=self.group_by_length,
            num_replicas=world,
            rank=rank,
            tag_epoch=self.augmentation is not None,
        )
        window = self.trainer.accumulate_grad_batches if self.trainer is not None else 1
        return WindowLoader(self._loader(self.train_dataset, batch_sampler=sampler), window)

    def val_dataloader(self) -> StatefulDataLoader:
        world, rank = self._world()
        sampler = ShardSampler(len(self.val_dataset), world, rank)
        return self._loader(self.val_dataset, sampler=sampler, batch_size=self.eval_batch_size)

    def test_dataloader(self) -> StatefulDataLoader:
        """The held-out split (there is no separate test split)."""
        return self.val_dataloader()

    def predict_dataset(self) -> Dataset:
        """The images of `predict_input`, or every valid record of an annotation file; sets
        `predict_keys`, every input in order (image paths, or record positions)."""
        if self.predict_input is None:
            raise SettingError("set data.predict_input to a folder of images, a list file or an annotation file")
        if is_annotation_file(self.predict_input):
            index = build_index(self.predict_input, "predict")
            for problem in index.problems:
                log.warning("bad record: %s", problem)
            self.predict_index_problems = index.problems
            self.predict_keys = list(range(len(index)))
            source = AnnotationSource(index, Path(self.predict_input).parent)
            return GotDataset([source], source_entries(0, index.valid_positions), self.builder, self.strict)
        images = list_images(self.predict_input)
        self.predict_keys = images
        return ImageFolderDataset(images, self.builder, self.predict_prompt, self.image_mode == "tiles")

    def skip_predicted(self, keys: set[str | int]) -> None:
        """Inputs that `predict` leaves out (answered by an earlier run)."""
        self._predicted = keys

    def predict_settings(self) -> dict:
        """What about the inputs decides `predict`'s text: the input, prompt and page geometry."""
        return {
            "input": None if self.predict_input is None else str(Path(self.predict_input).resolve()),
            "prompt": asdict(self.predict_prompt),
            "image_mode": self.image_mode,
            "tiles": [self.min_tiles, self.max_tiles],
            "model_max_length": self.model_max_length,
        }

    def predict_dataloader(self) -> StatefulDataLoader:
        dataset = self.predict_dataset()
        if isinstance(dataset, GotDataset):
            items = [item for item, position in enumerate(dataset.entries[:, 1].tolist()) if position not in self._predicted]
        else:
            items = [item for item, image in enumerate(dataset.images) if image not in self._predicted]
        world, rank = self._world()
        remaining = Subset(dataset, items)
        return self._loader(remaining, sampler=ShardSampler(len(remaining), world, rank), batch_size=self.eval_batch_size)

    def teardown(self, stage: str) -> None:
        """Stop the loaders' worker processes. Lightning stops those of a plain `DataLoader` only;
        left to the garbage collector, a stateful loader's workers cost 5 s each to shut down."""
        for loader in self._loaders:
            iterator = getattr(loader, "_iterator", None)
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()
            loader._iterator = None
        self._loaders.clear()

    def _loader(self, dataset: Dataset, **sampling) -> StatefulDataLoader:
        loader = StatefulDataLoader(
            dataset,
            collate_fn=Collator(),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            **sampling,
        )
        self._loaders.append(loader)
        return loader


def attached_datamodule(trainer: L.Trainer | None) -> GotDataModule | None:
    """The trainer's `GotDataModule`; None when it runs on plain dataloaders (tools, tests)."""
    datamodule = getattr(trainer, "datamodule", None)
    return datamodule if isinstance(datamodule, GotDataModule) else None
