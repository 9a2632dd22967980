"""A small Hugging Face hub on loopback, for `apps-hpc fetch` (HF_ENDPOINT points at it).

It serves real files from local folders with the endpoints huggingface_hub's
`snapshot_download` / `hf_hub_download` use (read from its source):
- `GET /api/{models,datasets}/<repo>/revision/<rev>`: JSON with `id`, `sha` (the commit)
  and `siblings` (`rfilename` of every file);
- `HEAD`/`GET /<repo>/resolve/<rev>/<file>` and `/datasets/<repo>/resolve/<rev>/<file>`:
  the file, with `ETag` (its sha256), `X-Repo-Commit`, `Content-Length`, and `Range`
  answered with 206 (resume).
Every request is logged. `truncate_once` names a file whose first GET sends half its
bytes and then drops the connection (an interrupted download).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote


@dataclass
class Repo:
    folder: Path
    commit: str

    def files(self) -> list[str]:
        return sorted(
            str(p.relative_to(self.folder)) for p in self.folder.rglob("*") if p.is_file()
        )


@dataclass
class FakeHub:
    repos: dict[tuple[str, str], Repo]  # (models|datasets, owner/name) -> files
    truncate_once: set[str] = field(default_factory=set)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, range)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def gets(self, suffix: str = "") -> list[tuple[str, str, str]]:
        return [
            e for e in self.log if e[0] == "GET" and "/resolve/" in e[1] and e[1].endswith(suffix)
        ]

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._serve(self, body=False)

            def do_GET(self) -> None:
                hub._serve(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def _find(self, path: str) -> tuple[str, Repo | None, str | None]:
        """(kind, repo, file or None for an info request) of a request path."""
        parts = unquote(path.split("?")[0]).strip("/").split("/")
        if parts[0] == "api":  # api/models/owner/name/revision/rev
            kind, repo_id = parts[1], "/".join(parts[2:4])
            return "info", self.repos.get((kind, repo_id)), None
        kind = "datasets" if parts[0] == "datasets" else "models"
        parts = parts[1:] if kind == "datasets" else parts
        repo_id, file = "/".join(parts[0:2]), "/".join(parts[4:])  # owner/name/resolve/rev/f
        return "file", self.repos.get((kind, repo_id)), file

    def _serve(self, req: BaseHTTPRequestHandler, body: bool) -> None:
        self.log.append((req.command, req.path, req.headers.get("Range", "")))
        what, repo, file = self._find(req.path)
        if repo is None or (file is not None and not (repo.folder / file).is_file()):
            req.send_response(404)
            req.send_header("X-Error-Code", "RepoNotFound" if repo is None else "EntryNotFound")
            req.end_headers()
            return
        if what == "info":
            self._send_info(req, repo)
        else:
            assert file is not None
            self._send_file(req, repo, file, body)

    def _send_info(self, req: BaseHTTPRequestHandler, repo: Repo) -> None:
        data = json.dumps(
            {"id": "x", "sha": repo.commit, "siblings": [{"rfilename": f} for f in repo.files()]}
        ).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def _send_file(self, req: BaseHTTPRequestHandler, repo: Repo, file: str, body: bool) -> None:
        data = (repo.folder / file).read_bytes()
        start = int(req.headers.get("Range", "bytes=0-").split("=")[1].split("-")[0] or 0)
        req.send_response(206 if start else 200)
        req.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        req.send_header("X-Repo-Commit", repo.commit)
        req.send_header("Content-Length", str(len(data) - start))
        if start:
            req.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        req.end_headers()
        if not body:
            return
        if file in self.truncate_once:
            self.truncate_once.discard(file)
            req.wfile.write(data[start : start + (len(data) - start) // 2])
            req.wfile.flush()
            req.close_connection = True
            return
        req.wfile.write(data[start:])
