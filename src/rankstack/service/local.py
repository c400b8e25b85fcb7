"""A service started in a child process on loopback, for load tests, contract tests and benchmarks.

Why a child process: locust and schemathesis must talk to a real server over TCP (HTTP parsing,
keep-alive, uvicorn's event loop) exactly as ``rankstack serve`` runs it. The address is always
127.0.0.1 on a free port; the server is stopped (SIGINT, then SIGKILL after a grace period) when the
block ends, whatever happened inside it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["free_port", "local_server"]

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def local_server(target: str, args: Sequence[str] = (), *, startup_timeout: float = 600.0,
                 log_path: str | Path | None = None, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``rankstack serve TARGET ARGS... --host 127.0.0.1 --port FREE``; yield its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "rankstack", "serve", target, *args, "--host", HOST, "--port", str(port)]
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env={**os.environ, **(env or {})})
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while not _healthy(url):
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {proc.returncode} before it answered "
                                   f"(command: {' '.join(cmd)}; log: {log_path or 'not kept'})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /healthz within {startup_timeout:g} s")
            time.sleep(0.25)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log is not subprocess.DEVNULL:
            log.close()
