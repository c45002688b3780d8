"""The held-out pages read worst, shown in the experiment trackers users watch: at each validation
the pages with the most edits go to every logger that takes images (TensorBoard, Weights & Biases,
MLflow) with their reference and reading, and as text to those that take text."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger

from got_lightning.core.errors import SettingError
from got_lightning.core.run_dir import step_name
from got_lightning.evaluation.thumbnails import page_thumbnail

TAG = "val/worst_pages"


class LoggedPages(L.Callback):
    """Logs the held-out pages with the most edits after each validation (rank 0).

    Args:
        count: Pages logged per validation (0: none).
        long_side: Pages are shrunk to this many pixels on their long side before logging.
    """

    def __init__(self, count: int = 4, long_side: int = 1024) -> None:
        if count < 0 or long_side <= 0:
            raise SettingError(f"logged_pages: count must be >= 0 and long_side > 0, got count={count}, long_side={long_side}")
        self.count = count
        self.long_side = long_side

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        held_out = getattr(pl_module, "held_out", None)
        if not self.count or trainer.sanity_checking or not trainer.is_global_zero or held_out is None:
            return
        pages = worst_pages(held_out.latest, self.count)
        if not pages:
            return
        images = [page_thumbnail(page.get("image_path"), self.long_side) for page in pages]
        for logger in trainer.loggers:
            log_pages(logger, pages, [None if image is None else np.asarray(image) for image in images], trainer.global_step)


def worst_pages(records: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The `count` records with the most edits (then the highest CER), wrong readings only."""
    wrong = [record for record in records if record.get("edits", 0) > 0]
    return sorted(wrong, key=lambda record: (-record["edits"], -record.get("cer", 0.0)))[:count]


def caption(page: dict[str, Any]) -> str:
    return (
        f"{page.get('dataset', '')} {page.get('image', '')}: {page['edits']} edit(s), CER {page.get('cer', 0.0):.4f}\n"
        f"reference: {page['reference']}\nreading:   {page['prediction']}"
    )


def log_pages(logger: Logger, pages: list[dict[str, Any]], images: list[np.ndarray | None], step: int) -> None:
    """Each logger in its own way; loggers that take neither images nor text (CSV) get nothing."""
    if isinstance(logger, TensorBoardLogger):
        for rank, (page, image) in enumerate(zip(pages, images)):
            if image is not None:
                logger.experiment.add_image(f"{TAG}/{rank}", image, step, dataformats="HWC")
            logger.experiment.add_text(f"{TAG}/{rank}", _markdown(page), step)
    elif isinstance(logger, WandbLogger):
        shown = [(page, image) for page, image in zip(pages, images) if image is not None]
        if shown:
            logger.log_image(key=TAG, images=[image for _, image in shown], caption=[caption(p) for p, _ in shown], step=step)
        columns = ["dataset", "image", "edits", "cer", "reference", "reading"]
        rows = [
            [p.get("dataset", ""), p.get("image", ""), p["edits"], p.get("cer", 0.0), p["reference"], p["prediction"]]
            for p in pages
        ]
        logger.log_text(key=f"{TAG}_text", columns=columns, data=rows, step=step)
    elif isinstance(logger, MLFlowLogger):
        folder = f"{TAG}/{step_name(step)}"
        for rank, (page, image) in enumerate(zip(pages, images)):
            if image is not None:
                logger.experiment.log_image(logger.run_id, image, artifact_file=f"{folder}/{rank}.png")
            logger.experiment.log_text(logger.run_id, caption(page) + "\n", artifact_file=f"{folder}/{rank}.txt")


def _markdown(page: dict[str, Any]) -> str:
    """TensorBoard's text panel renders markdown: the texts go in code blocks, kept verbatim."""
    header = f"**{page.get('dataset', '')} {page.get('image', '')}**: {page['edits']} edit(s), CER {page.get('cer', 0.0):.4f}"
    return f"{header}\n\nreference:\n\n```\n{page['reference']}\n```\n\nreading:\n\n```\n{page['prediction']}\n```"
