"""Throughput benchmark: `kfp-backend serve` (waitress) under N keep-alive clients doing GET experiment.

Starts the real server as a subprocess on a free port with a temporary data dir (SQLite unless
--database-url is given), creates one experiment, then N client threads - one requests.Session each, so
connections are kept alive - call GET /apis/v1beta1/experiments/{id} as fast as they can for --duration
seconds (after --warmup seconds whose requests are not counted). Reports requests/s, latency percentiles
and how busy the server and the client processes were (both share the machine's cores).

    .venv/bin/python bench/rps_bench.py
    .venv/bin/python bench/rps_bench.py --clients 16 --duration 30
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

API = "/apis/v1beta1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command() -> str:
    beside = Path(sys.executable).parent / "kfp-backend"
    found = str(beside) if beside.exists() else shutil.which("kfp-backend")
    if not found:
        raise SystemExit("kfp-backend is not installed (run `make install`)")
    return found


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_until_up(base: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            if requests.get(f"{base}{API}/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the server did not answer within {timeout} s")


def client(url: str, start: threading.Barrier, measure_from: list[float], stop_at: list[float],
           latencies: list[float], errors: list[str]) -> None:
    with requests.Session() as session:
        start.wait()
        while True:
            began = time.perf_counter()
            if began >= stop_at[0]:
                return
            try:
                response = session.get(url, timeout=30)
                ok = response.status_code == 200
                if not ok:
                    errors.append(f"HTTP {response.status_code}")
            except requests.RequestException as exc:
                ok = False
                errors.append(type(exc).__name__)
            ended = time.perf_counter()
            if ok and began >= measure_from[0] and ended <= stop_at[0]:
                latencies.append((ended - began) * 1000)


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads (keep-alive each)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument("--server-threads", type=int, help="kfp-backend serve --threads (default: its own)")
    parser.add_argument("--database-url", help="serve this database instead of SQLite in the temp data dir")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    data_dir = Path(tempfile.mkdtemp(prefix="kfpb-rps-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [server_command(), "serve", "--port", str(port), "--data-dir", str(data_dir),
               "--log-level", "WARNING"]
    if args.server_threads:
        command += ["--threads", str(args.server_threads)]
    if args.database_url:
        command += ["--database-url", args.database_url]
    log_path = data_dir / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(base, server, timeout=60)
        created = requests.post(f"{base}{API}/experiments", timeout=10,
                                json={"name": f"rps-bench-{port}", "description": "throughput benchmark"})
        created.raise_for_status()
        url = f"{base}{API}/experiments/{created.json()['id']}"

        latencies: list[list[float]] = [[] for _ in range(args.clients)]
        errors: list[str] = []
        barrier = threading.Barrier(args.clients + 1)
        measure_from, stop_at = [float("inf")], [float("inf")]
        threads = [threading.Thread(target=client, args=(url, barrier, measure_from, stop_at, latencies[i], errors))
                   for i in range(args.clients)]
        for thread in threads:
            thread.start()
        now = time.perf_counter()
        measure_from[0] = now + args.warmup
        stop_at[0] = measure_from[0] + args.duration
        barrier.wait()
        time.sleep(max(measure_from[0] - time.perf_counter(), 0))
        server_cpu, client_cpu, wall = process_cpu_seconds(server.pid), own_cpu_seconds(), time.perf_counter()
        time.sleep(max(stop_at[0] - time.perf_counter(), 0))
        server_cpu = process_cpu_seconds(server.pid) - server_cpu
        client_cpu = own_cpu_seconds() - client_cpu
        wall = time.perf_counter() - wall
        for thread in threads:
            thread.join()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    samples = [x for per_client in latencies for x in per_client]
    if len(samples) < 2:
        print(f"too few successful requests ({len(samples)}); errors: {errors[:5]}; log: {log_path}")
        return 1
    result = {
        "clients": args.clients,
        "duration_s": round(wall, 2),
        "requests": len(samples),
        "requests_per_s": round(len(samples) / args.duration, 1),
        "p50_ms": round(percentile(samples, 50), 2),
        "p95_ms": round(percentile(samples, 95), 2),
        "p99_ms": round(percentile(samples, 99), 2),
        "max_ms": round(max(samples), 2),
        "errors": len(errors),
        "server_cpu_pct": round(100 * server_cpu / wall),
        "client_cpu_pct": round(100 * client_cpu / wall),
        "cores": os.cpu_count(),
        "database": args.database_url or "sqlite (temp data dir)",
    }
    print(f"GET {API}/experiments/{{id}}: {args.clients} keep-alive clients for {args.duration:g} s "
          f"(after {args.warmup:g} s warm-up), {result['database']}")
    print(f"{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
          f"{'server CPU':>12}{'client CPU':>12}")
    print(f"{result['requests']:>9}{result['requests_per_s']:>9}{result['p50_ms']:>9}{result['p95_ms']:>9}"
          f"{result['p99_ms']:>9}{result['max_ms']:>9}{result['errors']:>8}{result['server_cpu_pct']:>11}%"
          f"{result['client_cpu_pct']:>11}%")
    print(f"(CPU % of one core over the measured window; this machine has {result['cores']} cores)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    shutil.rmtree(data_dir, ignore_errors=True)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
