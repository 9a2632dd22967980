"""Open a page in headless Chromium and read it, through the DevTools protocol over a pipe
(`--remote-debugging-pipe`: JSON messages separated by NUL bytes on file descriptors 3
and 4), so nothing but the browser itself is needed: no websocket library, no Node.

Used by the report's browser test and `benchmarks/report_page.py` to check
`index.html` as a person would see it: the DOM after the scripts ran, the JavaScript
errors and console errors, a screenshot, and the time until the page says it is ready.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from apps_hpc.core.errors import AppsHpcError

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class HeadlessPage:
    """One tab of a headless Chromium started for it; use as a context manager."""

    def __init__(self, executable: str | None = None, width: int = 1280, height: int = 1000):
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise AppsHpcError("chromium not found (Debian: apt-get install chromium)")
        self.size = (width, height)
        self.errors: list[str] = []  # uncaught exceptions, console.error, error log entries
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next_id = 0
        self._session: str | None = None

    def __enter__(self) -> HeadlessPage:
        self._profile = tempfile.TemporaryDirectory(prefix="apps-hpc-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        width, height = self.size
        args = [*FLAGS, f"--user-data-dir={self._profile.name}", f"--window-size={width},{height}"]
        wrapper = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self._proc = subprocess.Popen(
            ["bash", "-c", wrapper, self.executable, *args],
            pass_fds=(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        attach = {"targetId": target, "flatten": True}
        self._session = self.call("Target.attachToTarget", attach)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._session = None
            self.call("Browser.close", timeout=10)
        except (AppsHpcError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._to_browser)
        self._profile.cleanup()

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._from_browser, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for raw in messages:
                    self._events.put(json.loads(raw))
        self._events.put({"closed": True})

    def _note(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            args = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
            self.errors.append("console.error: " + " ".join(args))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(f"log: {params['entry'].get('text')}")

    def call(self, method: str, params: dict | None = None, timeout: float = 60) -> Any:
        """Send one command (to the tab once attached) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self._session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self._events.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise AppsHpcError(f"chromium: no answer to {method} in {timeout}s") from None
            if event.get("closed"):
                raise AppsHpcError(f"chromium closed the pipe during {method}")
            if event.get("id") == message["id"]:
                if "error" in event:
                    raise AppsHpcError(f"chromium: {method}: {event['error']}")
                return event.get("result", {})
            self._note(event)

    def evaluate(self, expression: str, await_promise: bool = False) -> Any:
        params = {"expression": expression, "returnByValue": True, "awaitPromise": await_promise}
        result = self.call("Runtime.evaluate", params)
        if "exceptionDetails" in result:
            raise AppsHpcError(f"chromium: {expression!r} raised {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30, poll: float = 0.01) -> float:
        """Seconds until `expression` is truthy in the page."""
        start = time.monotonic()
        while not self.evaluate(expression):
            if time.monotonic() - start > timeout:
                raise AppsHpcError(f"chromium: {expression!r} still false after {timeout}s")
            time.sleep(poll)
        return time.monotonic() - start

    def goto(self, url: str, ready: str, timeout: float = 30) -> float:
        """Navigate and wait until `ready` is truthy; seconds from navigation to ready."""
        start = time.monotonic()
        self.call("Page.navigate", {"url": url})
        self.wait_for(ready, timeout)
        return time.monotonic() - start

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params = {"format": "png", "captureBeyondViewport": full_page}
        data = self.call("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path
