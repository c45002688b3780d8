import pytest

from got_lightning.model.loading import init_model_dir
from got_lightning.synthetic import PageStyle, make_dataset
from got_lightning.tokenizer import build_got_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return build_got_tokenizer()


@pytest.fixture(scope="session")
def micro_model_dir(tmp_path_factory):
    """A random `micro` GOT (64 px tiles, one image token each) written as a transformers directory."""
    return init_model_dir("micro", tmp_path_factory.mktemp("micro") / "model", seed=0)


@pytest.fixture(scope="session")
def digit_pages(tmp_path_factory):
    """24 rendered digit strips whose answers run from 1 to 8 characters."""
    output = tmp_path_factory.mktemp("pages")
    make_dataset(output, 24, PageStyle(width=64, height=32, font_size=20, min_chars=1, max_chars=8), seed=3)
    return output
