"""Python: the in-process OpenFeature provider through openfeature-sdk beside the router's plain
route, same keys, interleaved rounds.

    taskset -c 1 .venv/bin/python bench/clients/python-openfeature.py [seconds-per-round] [rounds]

Starts its own server pinned to core 0 (as python-local.py does) and prints one JSON line per
round and case, with rates per second of wall-clock time and of this process's CPU time.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from openfeature import api
from openfeature.evaluation_context import EvaluationContext

import rollgate
from rollgate.openfeature_provider import RollgateProvider
from rollgate.v1 import rollout_pb2, rollout_service_pb2 as rs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from importlib import import_module

local_bench = import_module("python-local")


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    tmp = Path(tempfile.mkdtemp(prefix="rollgate-bench-pyof-"))
    proc, port = local_bench.start_server(tmp / "rollgate.db")
    try:
        client = rollgate.Client(f"http://127.0.0.1:{port}")
        client.rollouts.CreateRollout(rs.CreateRolloutRequest(rollout=rollout_pb2.Rollout(
            name="checkout", stable_version="v1", canary_version="v2", features={"new-ui": True, "beta": False},
            overrides={"vip": rollout_pb2.VARIANT_CANARY}), reason="bench"))
        client.rollouts.SetWeight(rs.SetWeightRequest(name="checkout", weight_bp=2500, reason="bench"))
        provider = RollgateProvider(client, ["checkout"], startup_timeout=20)
        api.set_provider_and_wait(provider, domain="bench")
        of = api.get_client("bench")
        router = provider.router
        assert router is not None
        keys = [f"user-{i}" for i in range(100_000)]
        contexts = [EvaluationContext(targeting_key=k) for k in keys]
        for k, c in zip(keys[:2000], contexts[:2000]):
            assert of.get_string_value("checkout", "none", c) == router.route("checkout", k).version

        def plain(n: int) -> None:
            route, m = router.route, len(keys)
            canary = sum(1 for i in range(n) if route("checkout", keys[i % m]).variant == 2)
            assert 0.2 < canary / n < 0.3, canary / n

        def sdk(n: int) -> None:
            get, m = of.get_string_value, len(contexts)
            canary = sum(1 for i in range(n) if get("checkout", "none", contexts[i % m]) == "v2")
            assert 0.2 < canary / n < 0.3, canary / n

        plain(100_000)
        sdk(20_000)
        for r in range(rounds):
            print(json.dumps({"case": "python local route", "round": r + 1, **local_bench.rate(plain, seconds)}), flush=True)
            print(json.dumps({"case": "python openfeature provider", "round": r + 1, **local_bench.rate(sdk, seconds)}), flush=True)
        api.shutdown()
        client.close()
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
