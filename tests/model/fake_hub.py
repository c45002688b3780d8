"""A local stand-in for the Hugging Face Hub's HTTP API, enough of it for `snapshot_download`: repo
info, the file tree and file downloads, and the Hub's error answers (unknown repository, gated
repository without a token, unknown revision). Point `HF_ENDPOINT` at `FakeHub.url`."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROUTE = re.compile(
    r"^/(?:api/models/)?(?P<repo>[^/]+/[^/]+)/(?P<kind>revision|tree|resolve)/(?P<revision>[^/?]+)(?:/(?P<file>[^?]+))?"
)


@dataclass
class FakeRepo:
    """One repository: its files at one commit, reachable by that commit and by branch names."""

    files: dict[str, bytes]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    branches: tuple[str, ...] = ("main",)
    gated: bool = False
    requests: list[str] = field(default_factory=list)

    @classmethod
    def of_folder(cls, folder: Path, **options) -> FakeRepo:
        return cls({path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}, **options)


class FakeHub:
    def __init__(self, repos: dict[str, FakeRepo]) -> None:
        self.repos = repos
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        repos = self.repos

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _send(self, status: int, payload: bytes, headers: dict[str, str], body: bool) -> None:
                self.send_response(status)
                for key, value in {"Content-Length": str(len(payload)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                if body:
                    self.wfile.write(payload)

            def _error(self, status: int, code: str, message: str, body: bool) -> None:
                payload = json.dumps({"error": message}).encode()
                self._send(
                    status, payload, {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}, body
                )

            def _answer(self, body: bool) -> None:
                match = ROUTE.match(self.path)
                repo = repos.get(match["repo"]) if match else None
                if repo is None:
                    return self._error(404, "RepoNotFound", "Repository not found", body)
                repo.requests.append(f"{self.command} {self.path}")
                if repo.gated and not self.headers.get("Authorization"):
                    return self._error(401, "GatedRepo", f"Access to model {match['repo']} is restricted.", body)
                if match["revision"] not in (repo.commit, *repo.branches):
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {match['revision']}", body)
                if match["kind"] == "revision":
                    info = {
                        "id": match["repo"],
                        "sha": repo.commit,
                        "private": False,
                        "siblings": [{"rfilename": name} for name in sorted(repo.files)],
                    }
                    return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)
                if match["kind"] == "tree":
                    tree = [
                        {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                        for name, data in sorted(repo.files.items())
                    ]
                    return self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, body)
                data = repo.files.get(match["file"] or "")
                if data is None:
                    return self._error(404, "EntryNotFound", f"{match['file']} does not exist", body)
                headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}
                self._send(200, data, headers, body)

        return Handler
