"""A user's whole journey through the `got-lightning` executable, on the demo recipe: fit, resume,
validate and test the named checkpoints, export and load the export in stock transformers,
predict, serve the export over HTTP, and the data, model and compare commands. Standard library only, so it checks an
installation as it is (CI runs it in a venv made with nothing but the README's install).

    python tools/journey.py --workdir /tmp/journey
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
RUN = Path("runs/demo/run")


class JourneyError(AssertionError):
    """A step of the journey did not do what a user expects."""


# A normal run prints no warning the user cannot act on. Lines that look like warnings and are
# expected: our own, which say what to do.
# (Python's warnings print `file.py:LINE: message` even when the category's name is not in the message.)
WARNING_LINE = re.compile(r"Warning\b|\bWARNING\b|^warning:|\[WARNING\]|\.py:\d+: ")
EXPECTED_WARNINGS = (re.compile(r"^warning: \d+ held-out page\(s\) \([\d.]+%\) stopped at max_new_tokens"),)
unexpected_warnings: list[str] = []


def got_lightning(*args: str) -> subprocess.CompletedProcess:
    executable = shutil.which("got-lightning") or str(Path(sys.executable).parent / "got-lightning")
    started = time.perf_counter()
    result = subprocess.run([executable, *args], capture_output=True, text=True)
    print(f"[{time.perf_counter() - started:5.1f} s] got-lightning {' '.join(args)} -> exit {result.returncode}", flush=True)
    if result.returncode != 0:
        raise JourneyError(f"got-lightning {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    note_warnings(args, result.stdout + "\n" + result.stderr)
    return result


def note_warnings(args: tuple[str, ...], output: str) -> None:
    for line in output.splitlines():
        if WARNING_LINE.search(line) and not any(expected.search(line) for expected in EXPECTED_WARNINGS):
            unexpected_warnings.append(f"got-lightning {' '.join(args[:2])}: {line.strip()[:300]}")


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))


def check(condition: bool, message: str) -> None:
    if not condition:
        raise JourneyError(message)


def fit_and_resume(steps: int) -> None:
    schedule = [
        "--model.lr_schedule_steps",
        str(2 * steps),
        "--trainer.val_check_interval",
        str(steps),
        "--checkpoint.every_n_train_steps",
        str(steps),
    ]
    got_lightning("fit", "--config", str(DEMO), "--trainer.max_steps", str(steps), *schedule)
    resumed = got_lightning("fit", "--config", str(DEMO), "--trainer.max_steps", str(2 * steps), "--ckpt_path", "last", *schedule)
    check(
        f"--ckpt_path last: resuming from {RUN / 'checkpoints' / 'last.ckpt'}" in resumed.stderr, "resume did not name last.ckpt"
    )


def validate_named_checkpoints(steps: int) -> None:
    before, after = metrics(RUN / "validation" / "before-fit"), metrics(RUN / "validation" / f"step-{2 * steps:06d}")
    check(after["cer"] < before["cer"], f"training did not lower the held-out CER ({before['cer']} -> {after['cer']})")
    got_lightning("validate", "--config", str(DEMO), "--ckpt_path", "last")
    last = metrics(RUN)
    check(
        last["cer"] == after["cer"] and last["global_step"] == 2 * steps,
        f"validate --ckpt_path last scored {last['cer']} (step {last['global_step']}), the trained model has {after['cer']}",
    )
    got_lightning("test", "--config", str(DEMO), "--ckpt_path", "best")
    best = metrics(RUN)
    check(best["cer"] <= after["cer"], f"test --ckpt_path best scored {best['cer']}, worse than the last checkpoint")


def export_and_load() -> Path:
    exported = Path("runs/export")
    got_lightning("export", "--ckpt", str(RUN / "checkpoints" / "last.ckpt"), "--output", str(exported))
    page = sorted(Path("runs/demo/data/images").iterdir())[0]
    stock = (
        "import sys, torch\n"
        "from PIL import Image\n"
        "from transformers import AutoProcessor, GotOcr2ForConditionalGeneration\n"
        "model = GotOcr2ForConditionalGeneration.from_pretrained(sys.argv[1]).eval()\n"
        "processor = AutoProcessor.from_pretrained(sys.argv[1])\n"
        "tokens = (model.config.vision_config.image_size // 64) ** 2  # the processor assumes GOT's 256\n"
        "inputs = processor(Image.open(sys.argv[2]).convert('RGB'), num_image_tokens=tokens, return_tensors='pt')\n"
        "with torch.no_grad():\n"
        "    out = model.generate(**inputs, do_sample=False, max_new_tokens=8)\n"
        "print('stock transformers read:', processor.decode(out[0, inputs['input_ids'].shape[1]:], skip_special_tokens=True))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", stock, str(exported), str(page)], capture_output=True, text=True)
    check(loaded.returncode == 0, f"stock transformers could not load the export:\n{loaded.stderr[-3000:]}")
    print(loaded.stdout.strip())
    return exported


def predict(exported: Path) -> None:
    pages = Path("runs/predict-pages")
    pages.mkdir(exist_ok=True)
    for image in sorted(Path("runs/demo/data/images").iterdir())[:6]:
        shutil.copy(image, pages / image.name)
    for name, source in (("checkpoint", ["--ckpt_path", "last"]), ("export", ["--model.model_path", str(exported)])):
        output = Path(f"runs/predict-{name}.jsonl")
        got_lightning(
            "predict",
            "--config",
            str(DEMO),
            *source,
            "--data.predict_input",
            str(pages),
            "--predict_output.path",
            str(output),
            "--predict_output.write_txt",
            "true",
        )
        lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
        check(len(lines) == 6 and all("prediction" in line for line in lines), f"predict from the {name} wrote {lines}")


def serve(exported: Path) -> None:
    """The export behind the server: /predict and a chat completion read what predict read; SIGTERM stops it (exit 0)."""
    executable = shutil.which("got-lightning") or str(Path(sys.executable).parent / "got-lightning")
    log = Path("runs/serve.log")
    with open(log, "w", encoding="utf-8") as errors:
        server = subprocess.Popen(
            [executable, "serve", "--config", str(DEMO), "--model.model_path", str(exported), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    try:
        address = next((line.rsplit(" at ", 1)[1].strip() for line in server.stdout if " at http://" in line), None)
        check(address is not None, f"serve did not start:\n{log.read_text(encoding='utf-8')[-3000:]}")
        expected = {
            Path(line["image"]).name: line["prediction"]
            for line in map(json.loads, Path("runs/predict-export.jsonl").read_text(encoding="utf-8").splitlines())
        }
        image = sorted(Path("runs/predict-pages").iterdir())[0]
        url = f"data:image/png;base64,{base64.b64encode(image.read_bytes()).decode()}"
        answer = _post(f"{address}/predict", {"image": url})
        check(
            answer["prediction"] == expected[image.name],
            f"serve /predict read {answer} where predict read {expected[image.name]!r}",
        )
        chat = _post(
            f"{address}/v1/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]},
        )
        check(chat["choices"][0]["message"]["content"] == expected[image.name], f"serve chat read {chat}")
        print(f"[serve] {address}: /predict and /v1/chat/completions read {answer['prediction']!r}")
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    check(code == 0, f"serve exited {code} after SIGTERM")
    note_warnings(("serve",), log.read_text(encoding="utf-8"))


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def other_commands(steps: int) -> None:
    got_lightning("data", "check", "--config", str(DEMO))
    shown = json.loads(got_lightning("data", "show", "--config", str(DEMO), "--split", "val", "--index", "0", "--json").stdout)
    check(len(shown["input_ids"]) == len(shown["labels"]), "data show: input_ids and labels differ in length")
    got_lightning("init", "--preset", "micro", "--output", "runs/micro")
    before, after = RUN / "validation" / "before-fit", RUN / "validation" / f"step-{2 * steps:06d}"
    got_lightning("compare", str(before / "predictions.jsonl"), str(after / "predictions.jsonl"), "--html", "runs/compare.html")
    check(Path("runs/compare.html").stat().st_size > 0, "compare wrote no HTML report")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="empty folder to run in (the demo builds runs/ there)")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps before and after the resume")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    started = time.perf_counter()
    fit_and_resume(args.steps)
    validate_named_checkpoints(args.steps)
    exported = export_and_load()
    predict(exported)
    serve(exported)
    other_commands(args.steps)
    check(not unexpected_warnings, "warnings a user cannot act on:\n" + "\n".join(dict.fromkeys(unexpected_warnings)))
    print(f"journey complete in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
