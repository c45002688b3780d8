"""Models by name: a Hugging Face Hub id (`org/name`) resolved to a local folder through the hub's
own cache, exactly as transformers does it (`HF_HOME`/`HF_HUB_CACHE`, `HF_HUB_OFFLINE`, `HF_TOKEN`),
downloading only the files a GOT model needs. The original GOT repository (remote-code layout) is
converted once into got-lightning's own cache, keyed by id and commit; no remote code ever runs."""

from __future__ import annotations

import os
import re
from pathlib import Path

from got_lightning.model.model_dir import ModelDirError, has_weights, is_transformers_dir, publish_once

DEFAULT_REVISION = "main"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
# Config, weights, tokenizer and processor files; never the repository's Python code.
MODEL_FILES = [
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "qwen.tiktoken",
    "chat_template.*",
    "preprocessor_config.json",
    "processor_config.json",
]
PICKLE_WEIGHTS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]


def is_hub_id(model_path: str | Path) -> bool:
    """`org/name` that is not an existing local path (a local folder always wins, as in transformers)."""
    text = str(model_path)
    return bool(HUB_ID.match(text)) and not Path(text).expanduser().exists()


def converted_cache() -> Path:
    """Where converted original-format models live: `GOT_LIGHTNING_CACHE`, else the user cache folder
    (never inside the hub's cache, which huggingface_hub manages)."""
    configured = os.environ.get("GOT_LIGHTNING_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "got-lightning"


def fetch_model_dir(model_path: str | Path, revision: str | None = None) -> Path:
    """A local folder as it is; a hub id as the folder of its cached snapshot, as published (downloaded
    when missing and online)."""
    if not is_hub_id(model_path):
        return Path(model_path).expanduser()
    repo_id, revision = str(model_path), revision or DEFAULT_REVISION
    snapshot = hub_snapshot(repo_id, revision, MODEL_FILES)
    if not has_weights(snapshot):
        snapshot = hub_snapshot(repo_id, revision, PICKLE_WEIGHTS + MODEL_FILES)
    return snapshot


def resolve_model_path(model_path: str | Path, revision: str | None = None) -> Path:
    """`fetch_model_dir`, with a hub snapshot in the original GOT layout converted to transformers'."""
    folder = fetch_model_dir(model_path, revision)
    if not is_hub_id(model_path) or is_transformers_dir(folder):
        return folder
    from got_lightning.model.loading import convert_model_dir

    # The snapshot folder is named by its commit: the conversion is redone only for another commit.
    target = converted_cache() / "converted" / str(model_path).replace("/", "--") / folder.name
    return publish_once(target, lambda staging: convert_model_dir(folder, staging))


def hub_snapshot(
    repo_id: str, revision: str, patterns: list[str], repo_type: str = "model", error_class: type[Exception] = ModelDirError
) -> Path:
    """The cached snapshot folder of a Hub repository's matching files (downloaded when missing and
    online); every way it can fail is one `error_class` naming the id, the revision and what to do."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_type} {repo_id} (revision {revision})"
    kind = "" if repo_type == "model" else f" --repo-type {repo_type}"
    download = f"`hf download {repo_id}{kind} --revision {revision}` (`huggingface-cli download` before huggingface_hub 1.0)"
    fail = error_class
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns, repo_type=repo_type))
    except GatedRepoError as error:
        raise fail(
            f"{where} is gated: accept its terms on huggingface.co/{repo_id}, then set HF_TOKEN (or run `hf auth login`)"
        ) from error
    except RevisionNotFoundError as error:
        raise fail(f"{where}: the repository has no such branch, tag or commit") from error
    except RepositoryNotFoundError as error:
        raise fail(
            f"{where}: no such {repo_type} on the Hugging Face Hub, or it is private (set HF_TOKEN); "
            "a local folder of that name does not exist either"
        ) from error
    except LocalEntryNotFoundError as error:
        raise fail(
            f"{where} is not in the Hugging Face cache and the Hub cannot be reached (HF_HUB_OFFLINE="
            f"{os.environ.get('HF_HUB_OFFLINE', 'unset')}): run {download} where there is a network, "
            "with the same HF_HOME"
        ) from error
    except HfHubHTTPError as error:
        raise fail(f"{where}: the Hub answered {error.response.status_code}; try {download}") from error
