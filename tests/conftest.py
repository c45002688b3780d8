import pytest

from got_lightning.tokenizer import build_got_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return build_got_tokenizer()
