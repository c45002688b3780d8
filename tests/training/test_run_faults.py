"""The faults a long job meets, through the executable: two writers on one run directory, a reader
beside a live save, a fit over an earlier run, broken checkpoints, a full disk."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import torch

from got_lightning.cli import main
from got_lightning.core.atomic_files import STAGING_MARK
from got_lightning.core.run_dir import RunDir
from tests.helpers import run_executable
from tests.training_helpers import fit_config

pytestmark = pytest.mark.slow


def in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """`got-lightning ARGS` run by its entry point in this process (no interpreter start-up)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["got-lightning", *args], code, out, err)


def resume(capsys, config: Path, run: Path, max_steps: int) -> subprocess.CompletedProcess:
    """`fit --ckpt_path last` of `config` in the run directory `run`, up to `max_steps`."""
    args = ["--trainer.default_root_dir", str(run), "--ckpt_path", "last", "--trainer.max_steps", str(max_steps)]
    return in_process(capsys, "fit", "--config", str(config), *args)


def last_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, digit_pages, micro_model_dir):
    """A run of 4 steps with checkpoints at steps 2 and 4 (top-k keeps both) and last.ckpt."""
    folder = tmp_path_factory.mktemp("finished")
    config = fit_config(
        folder / "c.yaml", digit_pages, micro_model_dir, folder / "run", checkpoint={"every_n_train_steps": 2, "save_top_k": -1}
    )
    assert main(["fit", "--config", str(config)]) == 0
    return config, folder / "run"


def copy_run(run: Path, target: Path) -> Path:
    subprocess.run(["cp", "-a", str(run), str(target)], check=True)
    return target


def test_a_second_fit_on_a_live_run_directory_is_refused_naming_the_holder(digit_pages, micro_model_dir, tmp_path, capsys):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run", trainer={"max_steps": 400})
    first = subprocess.Popen(
        [sys.executable, "-m", "got_lightning.cli", "fit", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    lock = RunDir(tmp_path / "run").lock
    try:
        deadline = time.monotonic() + 120
        while not (lock.is_file() and lock.read_text().strip()):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        holder = json.loads(lock.read_text())
        assert holder["pid"] == first.pid
        second = in_process(capsys, "fit", "--config", str(config), "--ckpt_path", "last")
        assert second.returncode == 2
        assert f"is in use by pid {first.pid} on {holder['host']}" in last_line(second)
    finally:
        first.kill()
        first.wait()
    # The holder died without letting go: the next fit takes the lock over and says so.
    third = in_process(capsys, "fit", "--config", str(config), "--trainer.max_steps", "1", "--fresh_start", "true")
    assert third.returncode == 0, third.stderr
    assert f"took over {lock} from pid {first.pid}" in third.stderr and "no longer running" in third.stderr
    assert lock.read_text() == ""  # a clean exit clears the holder


PAUSE_MID_SAVE = textwrap.dedent("""
    import os, signal, sys
    import got_lightning.training.checkpoints as io
    saves = 0
    real_save = io.torch.save
    def pause_in_the_second_save(checkpoint, handle):
        global saves
        saves += 1
        real_save(checkpoint, handle)
        if saves == 2:
            handle.flush()
            os.kill(os.getpid(), signal.SIGSTOP)  # the test resumes it with SIGCONT
    io.torch.save = pause_in_the_second_save
    from got_lightning.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_readers_beside_a_paused_save_leave_its_files_alone(digit_pages, micro_model_dir, tmp_path, capsys):
    config = fit_config(
        tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run", checkpoint={"every_n_train_steps": 2}
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", PAUSE_MID_SAVE, "fit", "--config", str(config), "--trainer.max_steps", "6"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    folder = tmp_path / "run" / "checkpoints"
    try:
        deadline = time.monotonic() + 120
        while psutil.Process(writer.pid).status() != psutil.STATUS_STOPPED:
            assert writer.poll() is None and time.monotonic() < deadline, (
                writer.stderr.read() if writer.poll() is not None else ""
            )
            time.sleep(0.05)
        staging = [path for path in folder.iterdir() if STAGING_MARK in path.name]
        assert staging  # stopped with its staging file half-published
        for command in (
            ["validate", "--config", str(config), "--ckpt_path", "last", "--trainer.limit_val_batches", "1"],
            ["export", "--ckpt", str(next(folder.glob("*step=2.ckpt"))), "--output", str(tmp_path / "exported")],
        ):
            reader = in_process(capsys, *command)
            assert reader.returncode == 0, reader.stderr
            assert "removed a half-written" not in reader.stderr
            assert all(path.exists() for path in staging)
    finally:
        writer.send_signal(signal.SIGCONT)
    _, errors = writer.communicate(timeout=180)
    assert writer.returncode == 0, errors
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 6
    assert not [path for path in folder.iterdir() if STAGING_MARK in path.name]


def test_a_fit_over_an_earlier_run_continues_or_starts_over_never_beside_it(finished_run, tmp_path, capsys):
    config, run = finished_run
    run = copy_run(run, tmp_path / "run")
    before = sorted(path.name for path in (run / "checkpoints").iterdir())
    plain = in_process(capsys, "fit", "--config", str(config), "--trainer.default_root_dir", str(run))
    assert plain.returncode == 2
    assert "continue it with --ckpt_path last, or start over with --fresh_start true" in last_line(plain)
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == before
    resumed = resume(capsys, config, run, max_steps=6)
    assert resumed.returncode == 0, resumed.stderr
    assert f"--ckpt_path last: resuming from {run / 'checkpoints' / 'last.ckpt'} (step 4)" in resumed.stderr
    assert "exists and is not empty" not in resumed.stderr
    fresh = in_process(capsys, "fit", "--config", str(config), "--trainer.default_root_dir", str(run), "--fresh_start", "true")
    assert fresh.returncode == 0, fresh.stderr
    [aside] = run.glob("replaced-*")
    assert (aside / "checkpoints" / "last.ckpt").is_file() and f"now in {aside}" in fresh.stderr
    names = [path.name for path in (run / "checkpoints").iterdir()]
    assert "last.ckpt" in names and not any("-v1" in name for name in names)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_broken_newest_checkpoint_is_passed_over_and_named(finished_run, tmp_path, damage, capsys):
    config, run = finished_run
    run = copy_run(run, tmp_path / "run")
    last = run / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    intact = run / "checkpoints" / "epoch=0-step=4.ckpt"
    for command in (
        ["export", "--ckpt", str(last), "--output", str(tmp_path / "out")],
        ["validate", "--config", str(config), "--ckpt_path", str(last)],
    ):
        result = in_process(capsys, *command)
        assert result.returncode == 2
        assert f"checkpoint {last} is broken" in last_line(result)
    resumed = resume(capsys, config, run, max_steps=5)
    assert resumed.returncode == 0, resumed.stderr
    assert f"checkpoint {last} is broken" in resumed.stderr and f"using {intact} instead" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    # The resumed run writes a whole last.ckpt over the broken one.
    assert torch.load(last, weights_only=True)["global_step"] == 5
    assert not list(last.parent.glob("last-v*"))


def test_a_full_disk_during_a_save_is_one_line_naming_the_last_good_checkpoint(digit_pages, micro_model_dir, tmp_path, capsys):
    config = fit_config(
        tmp_path / "c.yaml",
        digit_pages,
        micro_model_dir,
        tmp_path / "run",
        checkpoint={"every_n_train_steps": 2, "save_top_k": -1},
    )
    first = in_process(capsys, "fit", "--config", str(config), "--trainer.max_steps", "2")
    assert first.returncode == 0, first.stderr
    good = tmp_path / "run" / "checkpoints" / "last.ckpt"
    size = good.stat().st_size
    before = good.read_bytes()

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    full = run_executable("fit", "--config", str(config), "--ckpt_path", "last", preexec_fn=limit_file_size)
    assert full.returncode == 2
    line = last_line(full)
    assert "cannot write checkpoint" in line and "File too large" in line and "MiB free there" in line
    assert "the checkpoint needs about" in line and "the last good checkpoint is" in line
    assert good.read_bytes() == before
    assert not list((tmp_path / "run" / "checkpoints").glob(".*partial*"))


HOLD_LOCK_FORK_AND_DIE = textwrap.dedent("""
    import os, signal, sys, time
    from got_lightning.training.run_lock import RunLock
    lock = RunLock(sys.argv[1]).acquire()
    child = os.fork()  # as a DataLoader worker is forked
    if child == 0:
        devnull = os.open(os.devnull, os.O_RDWR)
        for stream in (0, 1, 2):  # let the test read the parent's output without waiting for this child
            os.dup2(devnull, stream)
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_run_killed_while_its_loader_workers_live_leaves_its_lock_to_the_next_run(tmp_path):
    """Forked children (loader workers outlive a kill -9 by seconds) never hold the run's lock."""
    from got_lightning.training.run_lock import RunLock

    killed = subprocess.run([sys.executable, "-c", HOLD_LOCK_FORK_AND_DIE, str(tmp_path)], capture_output=True, text=True)
    worker = psutil.Process(int(killed.stdout.split()[0]))
    try:
        assert worker.is_running()
        lock = RunLock(tmp_path).acquire()
        assert "no longer running" in lock.takeover_notice()
        lock.release()
    finally:
        worker.kill()
