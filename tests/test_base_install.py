"""The README's install (no extras) runs every command that needs none: peft, bitsandbytes,
deepspeed, pyarrow, datasets, albumentations, litdata and the loggers' packages are hidden from the `got-lightning` processes here, as if they were not installed.
(CI also runs tools/journey.py in a venv made with the README's install alone.)"""

import json
import os
import subprocess
import sys

import pytest

from got_lightning.model.loading import load_model
from tests.helpers import run_executable, write_original_dir
from tests.training_helpers import fit_config

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("base_install")]  # one worker builds the module's shared runs

EXTRAS = (
    "peft",
    "bitsandbytes",
    "deepspeed",
    "pyarrow",
    "datasets",
    "tensorboard",
    "wandb",
    "mlflow",
    "albumentations",
    "litdata",
)


@pytest.fixture(scope="module")
def no_extras(tmp_path_factory):
    """An environment whose Python finds none of the optional packages (`sys.modules[name] = None`
    makes both `import name` and `importlib.util.find_spec(name)` say it is absent)."""
    folder = tmp_path_factory.mktemp("no_extras")
    (folder / "sitecustomize.py").write_text("import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in EXTRAS))
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])))


def test_the_environment_really_hides_the_extras(no_extras):
    probe = f"import importlib.util as u; print([u.find_spec(n) for n in {EXTRAS!r}])"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=no_extras, check=True)
    assert result.stdout.strip() == repr([None] * len(EXTRAS))


def test_every_command_runs_without_extras(no_extras, micro_model_dir, digit_pages, tmp_path):
    def got_lightning(*args):
        result = run_executable(*args, env=no_extras)
        assert result.returncode == 0, f"{args}:\n{result.stderr[-3000:]}"
        return result

    assert "fit" in got_lightning("--help").stdout
    got_lightning("init", "--preset", "micro", "--output", str(tmp_path / "micro"))
    write_original_dir(tmp_path / "original", load_model(micro_model_dir))
    got_lightning("convert", "--input", str(tmp_path / "original"), "--output", str(tmp_path / "converted"))

    run = tmp_path / "run"
    config = str(
        fit_config(
            tmp_path / "c.yaml", digit_pages, micro_model_dir, run, trainer={"limit_val_batches": 1.0, "limit_test_batches": 1.0}
        )
    )
    fitted = got_lightning("fit", "--config", config, "--trainer.max_steps", "2", "--trainer.logger", "true")
    # Without tensorboard the default logger writes CSV, and says nothing about it.
    logs = run / "lightning_logs" / "version_0"
    assert (logs / "hparams.yaml").is_file() and not list(logs.glob("events.*")) and "tensorboardX" not in fitted.stderr
    got_lightning("fit", "--config", config, "--trainer.max_steps", "4", "--ckpt_path", "last")
    got_lightning("validate", "--config", config, "--ckpt_path", "last")
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 4
    got_lightning("test", "--config", config, "--ckpt_path", "last")
    got_lightning("export", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--output", str(tmp_path / "export"))
    got_lightning(
        "predict",
        "--config",
        config,
        "--model.model_path",
        str(tmp_path / "export"),
        "--data.predict_input",
        str(digit_pages / "images"),
        "--predict_output.path",
        str(tmp_path / "p.jsonl"),
    )
    got_lightning("data", "check", "--config", config)
    got_lightning("data", "show", "--config", config, "--index", "0", "--json")
    predictions = str(run / "predictions.jsonl")
    got_lightning("compare", predictions, predictions, "--html", str(tmp_path / "r.html"))


def test_a_feature_that_needs_an_extra_names_it_in_one_line(no_extras, micro_model_dir, digit_pages, tmp_path):
    config = str(fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run"))
    needs = (
        (["--model.lora", "{rank: 4}"], "lora"),
        (["--model.optimizer", "adamw8bit"], "bnb"),
        (["--trainer.logger", "WandbLogger"], "loggers"),
        (["--trainer.logger", "MLFlowLogger"], "loggers"),
        (["--data.augment", "[{name: rotate}]"], "augment"),
    )
    for option, extra in needs:
        result = run_executable("fit", "--config", config, *option, env=no_extras)
        assert result.returncode == 2, result.stderr[-2000:]
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("got-lightning: error:") and f"pip install 'got-lightning[{extra}]'" in last
        assert "Traceback" not in result.stderr
    packed = run_executable("data", "pack", "--config", config, "--output", str(tmp_path / "packed"), env=no_extras)
    assert packed.returncode == 2 and "pip install 'got-lightning[streaming]'" in packed.stderr.strip().splitlines()[-1]
    table = tmp_path / "pages.parquet"
    table.write_bytes(b"PAR1")  # never read: the missing package is named first
    result = run_executable("data", "check", "--annotations", str(table), "--model_path", str(micro_model_dir), env=no_extras)
    assert result.returncode == 2 and "pip install 'got-lightning[datasets]'" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
