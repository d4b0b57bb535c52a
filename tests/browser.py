"""Headless Chromium driven over its DevTools protocol on a pipe (--remote-debugging-pipe): no
driver binary and no Python package beyond the standard library. Tests of the HTML pages use it;
they skip where no Chromium is installed (.ci/run installs Debian's package)."""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

# what Chromium needs to run headless as root, with nothing reaching out to the network
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--mute-audio", "--autoplay-policy=no-user-gesture-required",
         "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium with one page. Use as a context manager."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 900, downloads: Path | None = None):
        exe = find_chromium()
        if exe is None:
            raise RuntimeError("no Chromium installed")
        to_child, self._out = os.pipe()  # commands: we write, Chromium reads fd 3
        self._in, from_child = os.pipe()  # replies: Chromium writes fd 4, we read

        def wire_fds():  # in the child: the pipe ends become fds 3 and 4, inheritable
            ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_child, from_child)]
            for target, fd in zip((3, 4), ends):
                os.dup2(fd, target)

        self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                                      f"--window-size={width},{height}", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=wire_fds, close_fds=False)  # Python opens no inheritable fds
        os.close(to_child)
        os.close(from_child)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        if downloads is not None:
            self.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))

    # ---- the protocol ----
    def _message(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, timeout: float = 30, session: str | None = None, **params) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._message(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def send(self, method: str, timeout: float = 30, **params) -> dict:
        """A command to the page."""
        return self.call(method, timeout=timeout, session=self.session, **params)

    # ---- what tests do ----
    def open(self, url: str, timeout: float = 30) -> None:
        self.events.clear()
        # the page being left is marked, so its own readyState ('complete') is not taken for the new one's
        self.js("window.__leaving = true")
        self.send("Page.navigate", url=url)
        self.wait_for("!window.__leaving && document.readyState === 'complete'", timeout)

    def js(self, expression: str, timeout: float = 30):
        res = self.send("Runtime.evaluate", timeout=timeout, expression=expression, returnByValue=True,
                        awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression[:60]}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout} s: {expression}")
            time.sleep(0.1)

    def key(self, key: str, code: str, key_code: int) -> None:
        """A key press, as a person makes it (keydown and keyup)."""
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=key, code=code, windowsVirtualKeyCode=key_code)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            w, h = self.js("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}
        data = self.send("Page.captureScreenshot", timeout=60, **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._out)
        os.close(self._in)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
