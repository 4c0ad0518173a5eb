"""The local router against routing spec v1 as data (vectors/routing-v1.json), and its hot path's shape."""

from __future__ import annotations

import json
import threading
import tracemalloc
from typing import Any, Iterator, List

from google.protobuf import json_format

import rollgate
from conftest import ROOT
from rollgate._local import LocalRouter
from rollgate._outcomes import OutcomeBuffer
from rollgate.v1 import decision_service_pb2 as pb


class _Quiet:
    """A stream that never delivers anything (the tests apply messages themselves)."""

    def __init__(self) -> None:
        self._done = threading.Event()

    def __iter__(self) -> Iterator[Any]:
        self._done.wait()
        return iter(())

    def cancel(self) -> None:
        self._done.set()


def quiet_router() -> LocalRouter:
    """A router whose stream stays silent: the test installs states with _apply."""
    outcomes = OutcomeBuffer(lambda *a: pb.RecordOutcomeResponse(), 1.0, 500, 1000, None)
    return LocalRouter(
        lambda req: _Quiet(),
        outcomes,
        lambda r: None,
        rollouts=(),
        startup_timeout=0,
        fallback=rollgate.Variant.STABLE,
        state_file=None,
        stale_after=30,
        idle_timeout=30,
        backoff=rollgate.Backoff(),
    )


def read_routing_vectors() -> List[dict]:
    with open(ROOT / "vectors" / "routing-v1.json", encoding="utf-8") as f:
        vectors = json.load(f)["vectors"]
    assert vectors, "routing-v1.json holds no vectors"
    return vectors


def test_local_route_matches_routing_vectors() -> None:
    router = quiet_router()
    mismatches = []
    for i, v in enumerate(read_routing_vectors()):
        state = json_format.ParseDict(v["state"], pb.RouteState())
        want = json_format.ParseDict(v["want"], pb.RouteResponse())
        router._apply(pb.WatchRoutesResponse(revision=i + 1, reset=True, routes=[state]))
        got = router.route(state.rollout, v["key"])
        expected = rollgate.RouteResult(
            variant=rollgate.Variant(want.variant),
            version=want.version,
            bucket=want.bucket,
            weight_bp=want.weight_bp,
            features=tuple(want.features),
            reason=rollgate.RouteReason(want.reason),
            rollout_version=want.rollout_version,
        )
        if got != expected or type(got.variant) is not rollgate.Variant or type(got.reason) is not rollgate.RouteReason:
            mismatches.append((i, state.rollout, v["key"][:40], got, expected))
    router.close()
    assert mismatches == []


def test_local_route_allocates_only_its_result() -> None:
    router = quiet_router()
    state = pb.RouteState(rollout="r", rollout_version=1, stage=1, weight_bp=5000, salt="r", stable_version="v1", canary_version="v2", features={"a": True}, overrides={"vip": 2})
    router._apply(pb.WatchRoutesResponse(revision=1, reset=True, routes=[state]))
    keys = [f"user-{i}" for i in range(1000)]
    for k in keys:
        router.route("r", k)
    tracemalloc.start()
    kept = [router.route("r", k) for k in keys]
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # What stays allocated is the results themselves (object + its __dict__), nothing per call besides.
    assert current / len(kept) < 600, f"{current / len(kept):.0f} bytes held per result"
    assert kept[0] == router.route("r", "user-0")
    router.close()
