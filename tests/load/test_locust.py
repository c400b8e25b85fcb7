"""A short locust run (headless, 5 users, 5 s, at most 2,000 requests) against ``rankstack serve``
started on 127.0.0.1: zero failed requests. The full run is ``benchmarks/bench_load.py``."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("locust") is None or importlib.util.find_spec("uvicorn") is None:
    pytest.skip("locust and uvicorn are needed (extra 'serve' + locust)", allow_module_level=True)
# never import locust here: it monkey-patches the test process (gevent); it runs in its own process

from rankstack.service.local import local_server
from tests.fixtures.beir import write_beir

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def test_short_locust_run_has_no_failures(tmp_path):
    coll = write_beir(tmp_path / "tiny")
    with local_server("bm25", ["--collection", str(coll), "--cache-dir", "none", "--queue", "32"],
                      startup_timeout=120, log_path=tmp_path / "server.log") as url:
        assert url.startswith("http://127.0.0.1:")
        proc = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "5", "-r", "5", "-t", "5s",
             "--host", url, "--csv", str(tmp_path / "load"), "--only-summary", "--stop-timeout", "5"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "RANKSTACK_LOAD_MAX_REQUESTS": "2000", "RANKSTACK_LOAD_K": "3"})
    with open(tmp_path / "load_stats.csv", newline="") as fh:
        rows = {row["Name"]: row for row in csv.DictReader(fh)}
    total = rows["Aggregated"]
    assert int(total["Request Count"]) > 0, proc.stderr[-2000:]
    assert int(total["Failure Count"]) == 0, (tmp_path / "load_failures.csv").read_text()
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (tmp_path / "server.log").read_text()
    assert '"path": "/v1/search", "status": 200' in log and "Traceback" not in log
