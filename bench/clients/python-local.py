"""Python client: local route decisions/s beside remote route in the same run, and the memory a
local router holds for 1,000 rollouts.

    taskset -c 1 .venv/bin/python bench/clients/python-local.py [seconds-per-round] [rounds]

It starts its own server pinned to core 0 (`taskset -c 0 node dist/src/cli/main.js serve`, a
temporary database, port 0) and prints one JSON line per figure. Run it pinned to core 1. Rates
are given per second of wall-clock time and per second of this process's CPU time (on a shared
machine the pinned core is not all the benchmark's).
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import rollgate
from rollgate.v1 import rollout_pb2, rollout_service_pb2 as rs

ROOT = Path(__file__).resolve().parents[2]


def start_server(db: Path) -> tuple[subprocess.Popen, int]:
    main = ROOT / "dist" / "src" / "cli" / "main.js"
    cmd = ["node", str(main), "serve", "--listen", "127.0.0.1:0", "--db", str(db)]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "LOG_LEVEL": "info"})
    port = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") == "listening":
            port = int(entry["port"])
        if entry.get("msg") == "ready":
            break
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    assert port, "the server did not start"
    return proc, port


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024  # type: ignore[union-attr]


def rate(fn, seconds: float) -> dict:
    """Calls fn(n) with growing n until it took ``seconds``; returns the rates of the last call."""
    n = 10_000
    while True:
        wall, cpu = time.perf_counter(), time.process_time()
        fn(n)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if wall >= seconds:
            return {"calls": n, "per_s": n / wall, "per_cpu_s": n / cpu if cpu > 0 else None}
        n = int(n * max(2.0, seconds / max(wall, 1e-3) * 1.1))


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    tmp = Path(tempfile.mkdtemp(prefix="rollgate-bench-py-"))
    proc, port = start_server(tmp / "rollgate.db")
    try:
        client = rollgate.Client(f"http://127.0.0.1:{port}")
        client.rollouts.CreateRollout(rs.CreateRolloutRequest(rollout=rollout_pb2.Rollout(
            name="checkout", stable_version="v1", canary_version="v2", features={"new-ui": True, "beta": False},
            overrides={"vip": rollout_pb2.VARIANT_CANARY}), reason="bench"))
        client.rollouts.SetWeight(rs.SetWeightRequest(name="checkout", weight_bp=2500, reason="bench"))
        router = client.start_local(["checkout"], startup_timeout=20)
        assert router.route("checkout", "k").fallback == rollgate.FallbackReason.NONE
        keys = [f"user-{i}" for i in range(100_000)]
        route_local = router.route

        def local(n: int) -> None:
            ks = keys
            m = len(ks)
            canary = 0
            for i in range(n):
                if route_local("checkout", ks[i % m]).variant == 2:
                    canary += 1
            assert 0.2 < canary / n < 0.3, canary / n

        def remote_rate() -> dict:
            n, wall, cpu = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - wall < seconds:
                client.route("checkout", keys[n % len(keys)])
                n += 1
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            return {"calls": n, "per_s": n / wall, "per_cpu_s": n / cpu if cpu > 0 else None}

        local(200_000)  # warm-up
        for r in range(rounds):  # interleaved rounds: local, then remote
            print(json.dumps({"case": "python local route", "round": r + 1, **rate(local, seconds)}), flush=True)
            print(json.dumps({"case": "python remote route", "round": r + 1, **remote_rate()}), flush=True)
        router.close()

        # Memory for 1,000 rollouts (3 features, 2 overrides each), from the server's stream.
        for i in range(1000):
            client.rollouts.CreateRollout(rs.CreateRolloutRequest(rollout=rollout_pb2.Rollout(
                name=f"mem-{i:04d}", stable_version="v1.4.2", canary_version="v1.5.0",
                features={"new-checkout": True, "dark-mode": False, "beta-banner": True},
                overrides={"qa-user-1": rollout_pb2.VARIANT_CANARY, "qa-user-2": rollout_pb2.VARIANT_STABLE}), reason="bench"))
        gc.collect()
        rss0 = rss_bytes()
        tracemalloc.start()
        big = client.start_local(startup_timeout=60)
        gc.collect()
        traced, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss1 = rss_bytes()
        assert big.stats().rollouts == 1001, big.stats()
        print(json.dumps({"case": "python local memory, 1,000 rollouts", "python_heap_bytes": traced, "rss_delta_bytes": rss1 - rss0,
                          "python_heap_bytes_per_rollout": traced / 1001}), flush=True)
        big.close()
        client.close()
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
