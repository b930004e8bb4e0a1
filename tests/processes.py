"""Running tutorlane's processes in tests: start, wait until up, stop or kill."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    """A `python -m tutorlane ...` child process, its output kept in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.env = env
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        """Start (or restart) the process."""
        output = self.log.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tutorlane", *self.args],
            env={**os.environ, **self.env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        return self

    def output(self) -> str:
        """Return everything the process printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def check_running(self) -> None:
        """Fail with the process's output if it has exited."""
        if self.popen is not None and self.popen.poll() is not None:
            raise RuntimeError(f"{self.args[0]} exited early:\n{self.output()}")

    def wait_until(self, ready: Callable[[], bool], seconds: float = 30) -> None:
        """Wait until `ready()` holds, failing early if the process dies."""
        wait_for(ready, seconds, on_each=self.check_running, what=" ".join(self.args))

    def stop(self) -> None:
        """Ask the process to stop, then insist."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def kill(self) -> None:
        """Kill the process at once (SIGKILL), wherever it is."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def wait_for(
    ready: Callable[[], bool],
    seconds: float,
    on_each: Callable[[], None] = lambda: None,
    what: str = "condition",
) -> None:
    """Poll `ready()` until it holds, or fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        on_each()
        if ready():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not ready within {seconds}s")


def http_up(url: str) -> Callable[[], bool]:
    """Return a check that `url` answers with less than 500."""

    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    return check
