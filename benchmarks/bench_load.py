"""Load and contract tests of ``rankstack serve`` on loopback: locust and schemathesis against a live server.

    python benchmarks/bench_load.py --collection scifact --model .cache/models/ce-scifact-v2 \
        --users 32 --time 60 --overload-users 128 --overload-time 60 --json out/load.json
    python benchmarks/bench_load.py --contract-only --contract-examples 50

Scenarios (each a fresh ``rankstack serve`` child process on 127.0.0.1, a free port):

1. ``bm25``: BM25 top 10 (``bm25(k1=0.9, b=0.4)``, k=10), ``--users`` closed-loop users for ``--time`` s;
2. ``ce``: BM25 top 20 >> the cross-encoder (k=10), same load;
3. ``overload``: the cross-encoder pipeline at ``--overload-users`` users: the server must shed with 503
   (no other error), then a probe must get 200 again (we report how long that took);
4. ``contract``: schemathesis (all operations, examples + coverage + fuzzing phases, deterministic)
   against the cross-encoder server: 0 server errors (5xx other than a deliberate 503).

Queries are the collection's test queries in file order, cycled. Latencies are locust's (rounded by
locust to 2 significant digits above 100 ms). Everything runs on the same machine as locust itself.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "tests" / "load" / "locustfile.py"


def _post(url: str, body: dict, timeout: float = 300) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def run_locust(url: str, users: int, seconds: int, queries: Path, k: int, prefix: Path) -> dict:
    env = {**os.environ, "RANKSTACK_LOAD_QUERIES": str(queries), "RANKSTACK_LOAD_K": str(k)}
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r", str(users),
           "-t", f"{seconds}s", "--host", url, "--csv", str(prefix), "--only-summary", "--stop-timeout", "0"]
    subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 600)
    with open(f"{prefix}_stats.csv", newline="") as fh:
        total = {row["Name"]: row for row in csv.DictReader(fh)}["Aggregated"]
    with open(f"{prefix}_failures.csv", newline="") as fh:
        failures = {row["Error"]: int(row["Occurrences"]) for row in csv.DictReader(fh)}
    n, failed = int(total["Request Count"]), int(total["Failure Count"])
    return {"users": users, "seconds": seconds, "requests": n, "failed": failed, "failures": failures,
            "requests_per_s": round(float(total["Requests/s"]), 2),
            "ok_per_s": round((n - failed) / seconds, 2),
            "p50_ms": float(total["50%"]), "p95_ms": float(total["95%"]), "p99_ms": float(total["99%"]),
            "max_ms": float(total["Max Response Time"])}


def probe_until_ok(url: str, query: str, limit_s: float = 600) -> dict:
    """After the load: search until one answers 200 (honouring nothing: one probe per second)."""
    start = time.monotonic()
    statuses = []
    while time.monotonic() - start < limit_s:
        status = _post(url + "/v1/search", {"query": query, "k": 10})
        statuses.append(status)
        if status == 200:
            break
        time.sleep(1)
    return {"probe_statuses": sorted(set(statuses)), "probes": len(statuses), "recovered": statuses[-1] == 200,
            "seconds_to_200": round(time.monotonic() - start, 1)}


def run_contract(url: str, examples: int, report: Path) -> dict:
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json", "--checks", "not_a_server_error",
           "--max-examples", str(examples), "--generation-deterministic", "--seed", "0", "-w", "1",
           "--phases", "examples,coverage,fuzzing", "--request-timeout", "300", "--no-color",
           "--report", "ndjson", "--report-ndjson-path", str(report)]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    statuses: dict[str, int] = {}
    for line in report.read_text().splitlines() if report.is_file() else []:
        for code in _statuses(json.loads(line)):
            statuses[str(code)] = statuses.get(str(code), 0) + 1
    server_errors = sum(v for c, v in statuses.items() if c.startswith("5") and c != "503")
    return {"exit_code": proc.returncode, "seconds": round(time.monotonic() - start, 1), "statuses": statuses,
            "server_errors": server_errors, "summary": proc.stdout[-1500:]}


def _statuses(obj) -> list[int]:
    """Every HTTP status recorded in one ndjson event (responses are nested in the recorder)."""
    found = []
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            if "status_code" in x and isinstance(x["status_code"], int) and "elapsed" in x:
                found.append(x["status_code"])
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", default="scifact")
    ap.add_argument("--model", default=str(ROOT / ".cache/models/ce-scifact-v2"))
    ap.add_argument("--users", type=int, default=32)
    ap.add_argument("--time", type=int, default=60)
    ap.add_argument("--overload-users", type=int, default=128)
    ap.add_argument("--overload-time", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--queue", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--contract-examples", type=int, default=50)
    ap.add_argument("--scenarios", default="bm25,ce,overload,contract")
    ap.add_argument("--contract-only", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--logs", type=Path, default=None, help="folder for server logs (default: a temp folder)")
    args = ap.parse_args()
    scenarios = ["contract"] if args.contract_only else args.scenarios.split(",")

    from rankstack.data.beir import Collection
    from rankstack.service.local import local_server

    queries = list(Collection(args.collection).queries("test").texts)
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    logs = args.logs or work
    logs.mkdir(parents=True, exist_ok=True)
    qfile = work / "queries.json"
    qfile.write_text(json.dumps(queries))
    flags = ["--collection", args.collection, "--workers", str(args.workers), "--queue", str(args.queue),
             "--timeout", str(args.timeout), "--torch-threads", str(args.torch_threads)]
    bm25 = "bm25(k1=0.9, b=0.4)"
    ce = f"bm25(k1=0.9, b=0.4) % 20 >> reranker(model='{args.model}')"
    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True,
                text=True).stdout.splitlines() if line.startswith("Model name")), "unknown")
    results: dict = {"cpu": cpu, "date": time.strftime("%Y-%m-%d"), "queries": len(queries),
                     "server": dict(zip(flags[2::2], flags[3::2])), "scenarios": {}}

    def record(name: str, value: dict) -> None:
        results["scenarios"][name] = value
        print(json.dumps({name: value}), flush=True)

    if "bm25" in scenarios:
        with local_server(bm25, flags, log_path=logs / "server-bm25.log") as url:
            r = run_locust(url, args.users, args.time, qfile, 10, work / "bm25")
            record("bm25", {"pipeline": bm25, **r, "server": _get_json(url + "/healthz")})
    if {"ce", "overload", "contract"} & set(scenarios):
        with local_server(ce, flags, log_path=logs / "server-ce.log") as url:
            if "ce" in scenarios:
                r = run_locust(url, args.users, args.time, qfile, 10, work / "ce")
                record("ce", {"pipeline": ce, **r, "server": _get_json(url + "/healthz")})
            if "overload" in scenarios:
                r = run_locust(url, args.overload_users, args.overload_time, qfile, 10, work / "overload")
                r.update(probe_until_ok(url, queries[0]))
                r["only_503"] = all("HTTP 503" in error for error in r["failures"])
                record("overload", {"pipeline": ce, **r, "server": _get_json(url + "/healthz")})
            if "contract" in scenarios:
                record("contract", run_contract(url, args.contract_examples, work / "contract.ndjson"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
