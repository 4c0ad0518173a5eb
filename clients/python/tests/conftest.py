"""Test fixtures: a real rollgate server (node dist/src/cli/main.js serve) on port 0."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, TypeVar

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

import rollgate
from rollgate.v1 import rollout_pb2, rollout_service_pb2

ROOT = Path(__file__).resolve().parents[3]
"""The repository root (this file is clients/python/tests/conftest.py)."""

VECTOR_FILES = ["vectors/bucketing-v1.json", "vectors/reference/bucketing-v1-vectors.json"]
"""The project's bucketing vectors and the normative reference."""


class RollgateServer:
    """A rollgate server process, started on ``listen`` with the database ``db``."""

    def __init__(self, listen: str, db: Path, *extra: str) -> None:
        """Starts the server and waits until it logs "ready" (state loaded)."""
        main = ROOT / "dist" / "src" / "cli" / "main.js"
        if not main.exists():
            raise RuntimeError(f"{main} missing: build the server first (npx tsc -b at the repository root)")
        self.db = db
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            ["node", str(main), "serve", "--listen", listen, "--db", str(db), *extra],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env={**os.environ, "LOG_LEVEL": "info"},
            text=True,
        )
        self.port = 0
        listening = threading.Event()
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("msg") == "listening" and entry.get("port"):
                    self.port = int(entry["port"])
                    listening.set()
                elif entry.get("msg") == "ready":
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 30
        while not ready.is_set():
            if self.proc.poll() is not None:
                self.stderr.seek(0)
                raise RuntimeError(f"rollgate exited before ready: {self.stderr.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("rollgate did not log ready within 30 s")
            ready.wait(0.05)
        assert listening.is_set() and self.port > 0
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Shuts the server down gracefully (SIGTERM), killing it if that takes over 15 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


@pytest.fixture(scope="session")
def server() -> Iterator[RollgateServer]:
    """The server most tests share, one per test run."""
    tmp = Path(tempfile.mkdtemp(prefix="rollgate-py-client-"))
    s = RollgateServer("127.0.0.1:0", tmp / "rollgate.db")
    yield s
    s.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., RollgateServer]]:
    """Starts extra servers (own database under tmp_path unless given) stopped after the test."""
    started: List[RollgateServer] = []

    def start(*extra: str, listen: str = "127.0.0.1:0", db: Optional[Path] = None) -> RollgateServer:
        s = RollgateServer(listen, db or tmp_path / f"rollgate-{len(started)}.db", *extra)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def make_client() -> Iterator[Callable[..., rollgate.Client]]:
    """Creates clients closed after the test."""
    clients: List[rollgate.Client] = []

    def make(url: str, **kwargs: object) -> rollgate.Client:
        c = rollgate.Client(url, **kwargs)  # type: ignore[arg-type]
        clients.append(c)
        return c

    yield make
    for c in clients:
        try:
            c.close()
        except rollgate.OutcomeDeliveryError:
            pass


@pytest.fixture
def client(server: RollgateServer, make_client: Callable[..., rollgate.Client]) -> rollgate.Client:
    """A client of the shared server with default settings."""
    return make_client(server.url)


_names = itertools.count(1)


def unique_name(prefix: str) -> str:
    """Returns a rollout name unique within the test run."""
    return f"{re.sub(r'[^a-z0-9.-]', '-', prefix.lower())[:50]}-{next(_names)}"


def fast_analysis() -> rollout_pb2.Analysis:
    """Evaluates every second over a window long enough to hold a whole test."""
    return rollout_pb2.Analysis(interval=Duration(seconds=1), window=Duration(seconds=60))


def create_rollout(c: rollgate.Client, name: str, **fields: object) -> rollout_pb2.Rollout:
    """Creates a rollout with stable "v1" and canary "v2" unless told otherwise."""
    fields.setdefault("stable_version", "v1")
    fields.setdefault("canary_version", "v2")
    r = rollout_pb2.Rollout(name=name, **fields)  # type: ignore[arg-type]
    return c.rollouts.CreateRollout(rollout_service_pb2.CreateRolloutRequest(rollout=r, reason="python client test")).rollout


def set_weight(c: rollgate.Client, name: str, weight_bp: int) -> None:
    """Sets a rollout's canary weight by hand."""
    c.rollouts.SetWeight(rollout_service_pb2.SetWeightRequest(name=name, weight_bp=weight_bp, reason="python client test"))


T = TypeVar("T")


def eventually(what: str, check: Callable[[], Optional[T]], within: float = 30.0) -> T:
    """Polls ``check`` until it returns something truthy; fails after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def rpc_code(e: BaseException) -> Optional[grpc.StatusCode]:
    """Returns the status code of a grpc.RpcError, or None."""
    return e.code() if isinstance(e, grpc.RpcError) else None
