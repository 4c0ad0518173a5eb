"""The committed stubs in src/rollgate/v1 are what grpcio-tools makes of proto/rollgate/v1 today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "clients" / "python" / "src" / "rollgate" / "v1"


def tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "proto" / "rollgate" / "v1").glob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", "proto", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", *protos],
        cwd=ROOT,
        check=True,
    )
    want = tree(tmp_path / "rollgate" / "v1")
    got = tree(PACKAGE)
    assert want, "grpc_tools generated nothing"
    assert "__init__.py" in got
    got.pop("__init__.py")
    stale = sorted(name for name in want.keys() | got.keys() if want.get(name) != got.get(name))
    assert stale == [], "stale generated code: run scripts/generate-clients.sh"
