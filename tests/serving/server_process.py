"""`got-lightning serve` started as a user starts it: a subprocess on a free localhost port."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.helpers import executable


class ServerProcess:
    """A running server: its base URL, its process, and what it printed."""

    def __init__(self, *args: str, cwd: Path | None = None, timeout: float = 120) -> None:
        self.log = Path(cwd or ".") / "serve.log"
        self.handle = open(self.log, "w+", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(executable()), "serve", "--port", "0", *args],
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.url = self._wait_for_address(timeout)
        self.client = httpx.Client(base_url=self.url, timeout=120)

    def _wait_for_address(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(r" at (http://127\.0\.0\.1:\d+)", self.output())
            if match:
                return match.group(1)
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}:\n{self.output()}")
            time.sleep(0.1)
        raise TimeoutError(f"serve did not start in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def health(self) -> dict:
        return self.client.get("/health").json()

    def terminate(self) -> int:
        """SIGTERM, then the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.client.close()
        self.handle.close()


def data_url(path: Path, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode()}"


def image_message(url: str, text: str | None = "OCR: ") -> list[dict]:
    parts = [{"type": "image_url", "image_url": {"url": url}}]
    if text is not None:
        parts.append({"type": "text", "text": text})
    return [{"role": "user", "content": parts}]
