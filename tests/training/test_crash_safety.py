"""Real processes killed and signalled mid-run: `--ckpt_path last` always resumes from a complete
checkpoint and the resumed run ends with the weights of an uninterrupted one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import torch

from got_lightning.cli import main
from got_lightning.training.checkpoints import STAGING_MARK
from tests.training_helpers import fit_config

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("crash_safety")]  # one worker builds the module's shared runs

SCHEDULE = {"model": {"lr_schedule_steps": 400}}
SAVED_STEP = re.compile(r".*step=(\d+)\.ckpt")


def config_for(tmp_path: Path, digit_pages, micro_model_dir, name: str, **checkpoint) -> Path:
    return fit_config(
        tmp_path / f"{name}.yaml",
        digit_pages,
        micro_model_dir,
        tmp_path / name,
        checkpoint={"every_n_train_steps": 1, "save_top_k": 1, **checkpoint},
        **SCHEDULE,
    )


def weights(root: Path) -> dict[str, torch.Tensor]:
    return torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        torch.testing.assert_close(b[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def start_fit(config: Path, max_steps: int, driver: str | None = None) -> subprocess.Popen:
    command = ["-c", driver] if driver else ["-m", "got_lightning.cli"]
    return subprocess.Popen(
        [sys.executable, *command, "fit", "--config", str(config), "--trainer.max_steps", str(max_steps)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_until(run: subprocess.Popen, saved: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not saved():
        assert run.poll() is None, f"run ended before {what} was saved:\n{run.stdout.read()}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.02)


def wait_for_checkpoint(run: subprocess.Popen, root: Path, pattern: str) -> None:
    wait_until(run, lambda: any((root / "checkpoints").glob(pattern)), pattern)


def wait_for_step(run: subprocess.Popen, root: Path, step: int) -> None:
    """Until the checkpoint of `step` or a later one is complete (a run keeps only its newest)."""

    def saved() -> bool:
        names = (path.name for path in (root / "checkpoints").glob("*.ckpt"))
        return any(int(found[1]) >= step for name in names if (found := SAVED_STEP.fullmatch(name)))

    wait_until(run, saved, f"the checkpoint of step {step} or a later one")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, digit_pages, micro_model_dir):
    """An uninterrupted run of 30 steps."""
    folder = tmp_path_factory.mktemp("reference")
    config = config_for(folder, digit_pages, micro_model_dir, "straight")
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "30"]) == 0
    return weights(folder / "straight")


@pytest.mark.parametrize("kill_after", [1, 16])
def test_kill_9_then_resume_equals_uninterrupted(kill_after, reference, digit_pages, micro_model_dir, tmp_path):
    config = config_for(tmp_path, digit_pages, micro_model_dir, "killed")
    run = start_fit(config, 30)
    wait_for_step(run, tmp_path / "killed", kill_after)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "30", "--ckpt_path", "last"]) == 0
    assert_same_weights(reference, weights(tmp_path / "killed"))


AUGMENT = [{"name": "rotate", "degrees": 3, "p": 0.8}, {"name": "noise", "std": 0.1, "p": 0.8}, {"name": "jpeg", "p": 0.5}]


def augmented_config(tmp_path: Path, digit_pages, micro_model_dir, name: str) -> Path:
    return fit_config(
        tmp_path / f"{name}.yaml",
        digit_pages,
        micro_model_dir,
        tmp_path / name,
        checkpoint={"every_n_train_steps": 1, "save_top_k": 1},
        data={"augment": AUGMENT, "num_workers": 2},
        **SCHEDULE,
    )


def test_kill_9_then_resume_with_augmentation_equals_uninterrupted(reference, digit_pages, micro_model_dir, tmp_path):
    """Augmented pages depend only on (seed, epoch, sample): a killed and resumed run, reading with
    two worker processes, trains on the pixels an uninterrupted one trains on."""
    straight = augmented_config(tmp_path, digit_pages, micro_model_dir, "straight")
    assert main(["fit", "--config", str(straight), "--trainer.max_steps", "30"]) == 0
    augmented = weights(tmp_path / "straight")
    with pytest.raises(AssertionError):  # the augmentation does change what the model learns from
        assert_same_weights(reference, augmented)
    config = augmented_config(tmp_path, digit_pages, micro_model_dir, "killed")
    run = start_fit(config, 30)
    wait_for_step(run, tmp_path / "killed", 16)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "30", "--ckpt_path", "last"]) == 0
    assert_same_weights(augmented, weights(tmp_path / "killed"))


KILL_MID_WRITE = textwrap.dedent("""
    import os, signal, sys
    import got_lightning.training.checkpoints as io
    saves = 0
    real_save = io.torch.save
    def half_then_die(checkpoint, handle):
        global saves
        saves += 1
        if saves < 5:
            return real_save(checkpoint, handle)
        real_save(checkpoint, handle)
        handle.truncate(handle.tell() // 2)
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    io.torch.save = half_then_die
    from got_lightning.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_kill_9_while_a_checkpoint_is_written_never_leaves_a_broken_one(reference, digit_pages, micro_model_dir, tmp_path):
    config = config_for(tmp_path, digit_pages, micro_model_dir, "midwrite")
    run = start_fit(config, 30, driver=KILL_MID_WRITE)
    assert run.wait(timeout=120) == -signal.SIGKILL
    folder = tmp_path / "midwrite" / "checkpoints"
    assert [path.name for path in folder.iterdir() if STAGING_MARK in path.name]  # died mid-write
    for checkpoint in folder.glob("*.ckpt"):
        torch.load(checkpoint, weights_only=True)  # every named checkpoint is complete
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "30", "--ckpt_path", "last"]) == 0
    assert not [path for path in folder.iterdir() if STAGING_MARK in path.name]
    assert_same_weights(reference, weights(tmp_path / "midwrite"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_save_a_resumable_checkpoint(signum, reference, digit_pages, micro_model_dir, tmp_path):
    config = config_for(tmp_path, digit_pages, micro_model_dir, "signalled", every_n_train_steps=2)
    run = start_fit(config, 30)
    wait_for_step(run, tmp_path / "signalled", 2)
    run.send_signal(signum)
    output, _ = run.communicate(timeout=60)
    assert run.returncode == 0, output
    saved = torch.load(tmp_path / "signalled" / "checkpoints" / "last.ckpt", weights_only=True)
    assert 2 <= saved["global_step"] < 30, output
    assert f"{signal.Signals(signum).name} received: saved" in output and f"at step {saved['global_step']};" in output
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "30", "--ckpt_path", "last"]) == 0
    assert_same_weights(reference, weights(tmp_path / "signalled"))


@pytest.mark.parametrize("victim", ["rank 0", "rank 1"])
def test_one_ddp_rank_dying_stops_the_other_in_bounded_time(victim, digit_pages, micro_model_dir, tmp_path):
    config = config_for(tmp_path, digit_pages, micro_model_dir, "ddp", every_n_train_steps=2)
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "got_lightning.cli",
            "fit",
            "--config",
            str(config),
            "--trainer.max_steps",
            "400",
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for_checkpoint(run, tmp_path / "ddp", "last.ckpt")
    children = psutil.Process(run.pid).children()
    assert len(children) == 1  # Lightning's launcher: this process is rank 0, its child rank 1
    rank_1 = children[0]
    if victim == "rank 0":
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        rank_1.wait(timeout=90)  # raises TimeoutExpired if rank 1 hangs in a collective
    else:
        rank_1.kill()
        # Rank 0 fails its next collective ("connection closed by peer") instead of hanging.
        assert run.wait(timeout=90) != 0, run.stdout.read()[-3000:]
