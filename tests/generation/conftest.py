import pytest
import torch

from got_lightning.data.collate import Collator
from got_lightning.generation.prompts import split_prompts
from got_lightning.module import GotLightningModule
from tests.training_helpers import datamodule


@pytest.fixture
def held_out(image_sensitive_model_dir, digit_pages):
    data = datamodule(digit_pages, image_sensitive_model_dir, val_fraction=0.5)
    data.setup("validate")
    module = GotLightningModule(str(image_sensitive_model_dir))
    samples = [data.val_dataset[position] for position in range(len(data.val_dataset))]
    batch = Collator()(samples)
    prompts, _ = split_prompts(batch["input_ids"], batch["labels"])
    with torch.no_grad():
        features = module.image_features(batch["pixel_values"])
    return module.got.eval(), samples, prompts, features
