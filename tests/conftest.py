import os

import pytest
import torch

from got_lightning.data.synthetic import PageStyle, make_dataset
from got_lightning.model.loading import init_model_dir, save_model_dir
from got_lightning.model.presets import random_model
from got_lightning.tokenizer import build_got_tokenizer

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One thread per worker, for its subprocesses too: the workers already fill the cores, and
    # oversubscribed threads slow every test down.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test of an `xdist_group` runs on the worker its group started on, or fails before its
    fixtures build: a group split over workers builds its shared runs twice, silently (as pytest
    9.2 did to pytest-xdist 3.8)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    group = item.get_closest_marker("xdist_group")
    if worker is None or group is None or not item.config.getvalue("loadgroup"):
        return
    name = group.args[0] if group.args else group.kwargs.get("name", "default")
    seen = item.config._tmp_path_factory.getbasetemp().parent / "xdist-groups"  # shared by the workers
    seen.mkdir(exist_ok=True)
    (seen / f"{name}@{worker}").touch()
    if others := sorted(path.name.split("@")[-1] for path in seen.glob(f"{name}@*") if path.name != f"{name}@{worker}"):
        pytest.fail(
            f"xdist_group {name!r} runs on {worker} and on {', '.join(others)}: the installed pytest-xdist does not group"
        )


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


@pytest.fixture(scope="session")
def image_sensitive_model_dir(tmp_path_factory):
    """The micro model with its weight matrices scaled up 20x, so that greedy answers differ from
    page to page (the plain random micro model answers every page alike)."""
    model = random_model("micro", seed=0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() >= 2 and "embed_tokens" not in name:
                parameter.mul_(20)
    return save_model_dir(model, build_got_tokenizer(), tmp_path_factory.mktemp("sensitive") / "model")
