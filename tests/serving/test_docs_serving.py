"""The commands at the top of docs/serving.md work as written: after a short run of the demo, its serve
command, its curl call and its openai client call (only the port is a free one instead of 8000)."""

import json
import re
import shlex
import subprocess
import sys

import pytest

from got_lightning.cli import main
from tests.helpers import REPO_ROOT
from tests.serving.server_process import ServerProcess

pytestmark = pytest.mark.slow


def readme_section() -> str:
    text = (REPO_ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    return text.split("\n## ", 1)[0]


def test_the_readme_serve_curl_and_openai_snippets_work(tmp_path, monkeypatch):
    section = readme_section()
    shell = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1).splitlines()
    serve, curl = (line.split("  #")[0].strip() for line in shell)
    python = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    monkeypatch.chdir(tmp_path)
    demo = str(REPO_ROOT / "configs" / "demo.yaml")
    overrides = ["--trainer.max_steps", "2", "--trainer.val_check_interval", "2", "--validate_before_fit", "false"]
    assert main(["fit", "--config", demo, *overrides]) == 0

    arguments = shlex.split(serve)
    assert arguments[:2] == ["got-lightning", "serve"]
    server = ServerProcess(*[demo if part == "configs/demo.yaml" else part for part in arguments[2:]], cwd=tmp_path)
    try:
        port = server.url.rsplit(":", 1)[1]
        answer = subprocess.run(shlex.split(curl.replace(":8000", f":{port}")), capture_output=True, text=True, check=True)
        line = json.loads(answer.stdout)
        assert {"prediction", "new_tokens", "truncated", "confidence", "seconds"} <= set(line)
        printed = subprocess.run(
            [sys.executable, "-c", python.replace(":8000", f":{port}")], capture_output=True, text=True, cwd=tmp_path
        )
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout == line["prediction"] + "\n"
        assert "--ckpt_path last: using" in server.output()
    finally:
        server.stop()
