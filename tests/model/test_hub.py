"""Models by hub id through the `got-lightning` executable, without a network: a cache in the hub's
own layout read with HF_HUB_OFFLINE=1, and a local stand-in for the Hub's HTTP API for downloads
and the Hub's error answers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from got_lightning.model.loading import init_model_dir, load_model
from got_lightning.tokenizer import bundled_tiktoken_file
from tests.helpers import record, run_executable, text_page, write_json, write_original_dir
from tests.model.fake_hub import FakeHub, FakeRepo
from tests.training_helpers import fit_config

MAIN_COMMIT = "1111111111111111111111111111111111111111"
V2_COMMIT = "2222222222222222222222222222222222222222"


def hub_cache(cache: Path, repo_id: str, folder: Path, commit: str = MAIN_COMMIT, branch: str = "main") -> Path:
    """`folder` as snapshot `commit` of `repo_id` in the hub's cache layout, `branch` pointing at it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / branch).write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)
    return repo


@pytest.fixture
def environment(tmp_path) -> dict[str, str]:
    """A hub cache and a conversion cache of the test's own, and no token, endpoint or offline flag
    inherited from the machine."""
    values = {
        key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HOME")
    }
    return dict(
        values, HF_HUB_CACHE=str(tmp_path / "hub"), GOT_LIGHTNING_CACHE=str(tmp_path / "got-cache"), HF_HUB_DISABLE_TELEMETRY="1"
    )


def offline(environment: dict[str, str]) -> dict[str, str]:
    return dict(environment, HF_HUB_OFFLINE="1")


def got_lightning(*args: str, env: dict[str, str], expect: int = 0):
    result = run_executable(*args, env=env)
    assert result.returncode == expect, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def one_page(tmp_path: Path) -> Path:
    text_page(tmp_path / "page.png", size=(96, 64))
    return write_json(tmp_path / "one.json", [record("page.png")])


@pytest.mark.slow
def test_fit_resume_validate_and_export_by_hub_id_offline(environment, micro_model_dir, digit_pages, tmp_path):
    hub_cache(tmp_path / "hub", "acme/got-micro", micro_model_dir)
    env = offline(environment)
    run = tmp_path / "run"
    config = str(
        fit_config(
            tmp_path / "c.yaml",
            digit_pages,
            micro_model_dir,
            run,
            model={"model_path": "acme/got-micro"},
            trainer={"limit_val_batches": 1.0},
        )
    )
    got_lightning("fit", "--config", config, "--trainer.max_steps", "2", env=env)
    got_lightning("fit", "--config", config, "--trainer.max_steps", "4", "--ckpt_path", "last", env=env)
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 4 and checkpoint["hyper_parameters"]["model_path"] == "acme/got-micro"
    got_lightning("validate", "--config", config, "--ckpt_path", "last", env=env)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 4 and metrics["model_path"] == "acme/got-micro"

    got_lightning("export", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--output", str(tmp_path / "export"), env=env)
    card = (tmp_path / "export" / "README.md").read_text(encoding="utf-8")
    assert yaml.safe_load(card.split("---\n")[1])["base_model"] == "acme/got-micro"
    from transformers import GotOcr2ForConditionalGeneration

    exported = GotOcr2ForConditionalGeneration.from_pretrained(tmp_path / "export").state_dict()
    base = load_model(micro_model_dir).state_dict()
    tower = [name for name in base if name.startswith("model.vision_tower.")]
    assert tower and all(torch.equal(exported[name], base[name]) for name in tower)  # frozen, read from the cached snapshot
    name = "model.language_model.layers.0.mlp.up_proj.weight"
    torch.testing.assert_close(exported[name], checkpoint["state_dict"][f"got.{name}"])


@pytest.mark.slow
def test_a_branch_other_than_main_and_a_commit_select_their_snapshot(environment, micro_model_dir, tmp_path):
    tiny = init_model_dir("tiny", tmp_path / "tiny", seed=1)
    hub_cache(tmp_path / "hub", "acme/got", micro_model_dir)
    hub_cache(tmp_path / "hub", "acme/got", tiny, commit=V2_COMMIT, branch="v2")
    annotations = one_page(tmp_path)

    def tile_side(*revision: str) -> int:
        shown = got_lightning(
            "data",
            "show",
            "--annotations",
            str(annotations),
            "--model_path",
            "acme/got",
            *revision,
            "--json",
            env=offline(environment),
        )
        return json.loads(shown.stdout)["pixel_values_shape"][-1]

    assert tile_side() == 64  # main: the micro model's 64-px tiles
    assert tile_side("--revision", "v2") == 256  # the tiny model's
    assert tile_side("--revision", V2_COMMIT) == 256


MARK_REMOTE_CODE = """from pathlib import Path
Path(__file__).with_name("REMOTE_CODE_RAN").write_text("yes")
"""


def original_repo(folder: Path, micro_model_dir: Path) -> FakeRepo:
    """The original GOT repository's layout: GOTQwenForCausalLM weights, qwen.tiktoken, remote code."""
    write_original_dir(folder, load_model(micro_model_dir))
    shutil.copy(bundled_tiktoken_file(), folder / "qwen.tiktoken")
    (folder / "modeling_GOT.py").write_text(MARK_REMOTE_CODE)
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"auto_map": {"AutoTokenizer": ["tokenization_qwen.QWenTokenizer", None]}})
    )
    return FakeRepo.of_folder(folder)


@pytest.mark.slow
def test_the_original_repository_by_id_is_downloaded_converted_once_and_runs_no_remote_code(
    environment, micro_model_dir, tmp_path
):
    repo = original_repo(tmp_path / "original", micro_model_dir)
    annotations = one_page(tmp_path)
    with FakeHub({"stepfun-ai/GOT-OCR2_0": repo}) as hub:
        online = dict(environment, HF_ENDPOINT=hub.url)
        shown = got_lightning(
            "data", "show", "--annotations", str(annotations), "--model_path", "stepfun-ai/GOT-OCR2_0", "--json", env=online
        )
        assert "Fetching" in shown.stderr  # huggingface_hub's progress bar
    downloaded = {request.rsplit("/", 1)[-1] for request in repo.requests if request.startswith("GET /stepfun-ai")}
    assert downloaded == {"config.json", "model.safetensors", "qwen.tiktoken", "tokenizer_config.json"}  # never the code
    snapshot = tmp_path / "hub" / "models--stepfun-ai--GOT-OCR2_0" / "snapshots" / repo.commit
    assert sorted(path.name for path in snapshot.iterdir()) == sorted(downloaded)  # nothing written into the hub's cache
    converted = tmp_path / "got-cache" / "converted" / "stepfun-ai--GOT-OCR2_0" / repo.commit
    assert json.loads((converted / "config.json").read_text())["model_type"] == "got_ocr2"
    written = (converted / "model.safetensors").stat().st_mtime_ns

    # Offline afterwards: the cached snapshot and the converted folder are used as they are.
    run = tmp_path / "run"
    pages = tmp_path
    config = str(
        fit_config(
            tmp_path / "c.yaml",
            pages,
            micro_model_dir,
            run,
            model={"model_path": "stepfun-ai/GOT-OCR2_0"},
            data={"datasets": [{"name": "one", "annotations": str(annotations)}], "val_fraction": 0.0},
        )
    )
    got_lightning("fit", "--config", config, "--trainer.max_steps", "1", env=offline(environment))
    assert (converted / "model.safetensors").stat().st_mtime_ns == written
    assert not list(tmp_path.rglob("REMOTE_CODE_RAN"))
    converted_weights = load_model(converted).state_dict()
    for name, tensor in load_model(micro_model_dir).state_dict().items():
        torch.testing.assert_close(converted_weights[name], tensor, rtol=0, atol=0, msg=name)


def last_error_line(result) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_offline_with_nothing_cached_is_one_line_naming_the_id_revision_and_the_download(
    environment, micro_model_dir, digit_pages, tmp_path
):
    config = str(
        fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run", model={"model_path": "acme/absent"})
    )
    for command in (
        ["fit", "--config", config, "--model.revision", "v7"],
        ["data", "show", "--annotations", str(one_page(tmp_path)), "--model_path", "acme/absent", "--revision", "v7"],
    ):
        line = last_error_line(got_lightning(*command, env=offline(environment), expect=2))
        assert (
            "acme/absent (revision v7)" in line and "hf download acme/absent --revision v7" in line and "HF_HUB_OFFLINE=1" in line
        )


@pytest.mark.parametrize(
    "repo_id, token, expected",
    [
        ("acme/no-such-model", None, "no such model on the Hugging Face Hub, or it is private (set HF_TOKEN)"),
        ("acme/gated", None, "is gated: accept its terms on huggingface.co/acme/gated, then set HF_TOKEN"),
        ("acme/gated", "hf_secret", None),
    ],
)
@pytest.mark.slow
def test_the_hubs_refusals_are_one_line_and_a_token_opens_a_gated_model(
    repo_id, token, expected, environment, micro_model_dir, tmp_path
):
    annotations = one_page(tmp_path)
    with FakeHub({"acme/gated": FakeRepo.of_folder(micro_model_dir, gated=True)}) as hub:
        env = dict(environment, HF_ENDPOINT=hub.url, **({"HF_TOKEN": token} if token else {}))
        result = got_lightning(
            "data",
            "show",
            "--annotations",
            str(annotations),
            "--model_path",
            repo_id,
            "--json",
            env=env,
            expect=2 if expected else 0,
        )
    if expected:
        assert expected in last_error_line(result) and f"{repo_id} (revision main)" in last_error_line(result)
    else:
        assert json.loads(result.stdout)["pixel_values_shape"][-1] == 64


def test_a_revision_the_hub_does_not_have_is_one_line(environment, micro_model_dir, tmp_path):
    with FakeHub({"acme/got": FakeRepo.of_folder(micro_model_dir)}) as hub:
        result = got_lightning(
            "data",
            "show",
            "--annotations",
            str(one_page(tmp_path)),
            "--model_path",
            "acme/got",
            "--revision",
            "v9",
            env=dict(environment, HF_ENDPOINT=hub.url),
            expect=2,
        )
    assert "acme/got (revision v9): the repository has no such branch, tag or commit" in last_error_line(result)
