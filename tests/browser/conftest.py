"""Fixtures for the real-browser tests: the service (JSON API + workbench) under uvicorn on a free
loopback port, over a tiny BEIR collection and a BM25 experiment folder, and headless Chromium driven
by Selenium through Debian's chromedriver.

Why a real server and browser: the workbench's sorting, pickers and expandable texts are JavaScript
and CSS; only a browser shows that they work. The driver is given chromedriver's path explicitly, so
Selenium Manager never tries to download one (CI is offline). Like the shared ``chromium`` fixture,
a missing chromedriver fails under RANKSTACK_REQUIRE_BROWSER=1 (CI) and skips elsewhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMEDRIVER_PATHS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def find_chromedriver() -> str | None:
    for cand in (os.environ.get("CHROMEDRIVER"), shutil.which("chromedriver"), *CHROMEDRIVER_PATHS):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def _require(what: str) -> None:
    msg = f"{what} is not available (apt-get install -y chromium chromium-driver)"
    if os.environ.get("RANKSTACK_REQUIRE_BROWSER") == "1":
        pytest.fail(msg + "; RANKSTACK_REQUIRE_BROWSER=1 requires it")
    pytest.skip(msg)


def make_driver(chromium: str, width: int = 1280, height: int = 1000):
    """Headless Chromium (new headless mode) with a fixed window size; no sandbox (CI runs as root)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    driver_path = find_chromedriver()
    if driver_path is None:
        _require("chromedriver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-extensions", "--no-first-run", "--disable-background-networking",
                f"--window-size={width},{height}", "--lang=en-US"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_page_load_timeout(20)
    return driver


class ServerThread:
    """uvicorn serving ``app`` on an already bound loopback socket, in a daemon thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def workbench_folders(tmp_path_factory) -> tuple[Path, Path]:
    from tests.browser.workbench_data import make_experiment

    return make_experiment(tmp_path_factory.mktemp("browser"), "tiny-exp")


@pytest.fixture(scope="module")
def workbench_url(workbench_folders) -> str:
    """Base URL of the service (create_app over a ServeConfig, as `rankstack serve` builds it)."""
    pytest.importorskip("uvicorn")
    from rankstack.recipes.serve import ServeConfig
    from rankstack.service.app import create_app

    collection, exp = workbench_folders
    app = create_app(ServeConfig(target="bm25(k1=0.9, b=0.4)", collection=str(collection), experiments=[exp],
                                 cache_dir=None, warmup=False))
    with ServerThread(app) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser(chromium):
    driver = make_driver(chromium)
    yield driver
    driver.quit()
