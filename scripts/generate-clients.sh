#!/usr/bin/env bash
# Regenerates the Go and Python clients' code from proto/rollgate/v1 (commit the result).
#
# Go: protoc-gen-go and protoc-gen-connect-go are installed into .cache/bin at the versions
# clients/go/go.mod pins, then buf runs with clients/go/buf.gen.yaml (local plugins only).
# Python: grpcio-tools (the version clients/python/pyproject.toml pins in its `dev` extra) runs
# protoc with its bundled well-known types into clients/python/src/rollgate/v1, so the
# generated `from rollgate.v1 import ...` lines resolve inside the rollgate package as they are.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bin="$root/.cache/bin"
mkdir -p "$bin"
export PATH="$bin:$PATH"

# --- Go ---------------------------------------------------------------------------------------
modver() { (cd clients/go && go list -m -f '{{.Version}}' "$1"); }
protobuf_ver="$(modver google.golang.org/protobuf)"
connect_ver="$(modver connectrpc.com/connect)"
GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$protobuf_ver"
GOBIN="$bin" go install "connectrpc.com/connect/cmd/protoc-gen-connect-go@$connect_ver"
buf="$root/node_modules/.bin/buf"
"$buf" generate --template clients/go/buf.gen.yaml --path proto/rollgate
(cd clients/go && gofmt -l gen)
echo "generated clients/go/gen (protoc-gen-go $protobuf_ver, protoc-gen-connect-go $connect_ver)"

# --- Python -----------------------------------------------------------------------------------
venv="$root/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
tools_req="$(sed -n 's/^ *"\(grpcio-tools==[^"]*\)".*/\1/p' clients/python/pyproject.toml | head -n 1)"
[ -n "$tools_req" ] || { echo "clients/python/pyproject.toml pins no grpcio-tools==X in its dev extra" >&2; exit 1; }
"$py" -m pip install --quiet "$tools_req"
out="clients/python/src/rollgate/v1"
rm -rf "$out"
mkdir -p "$out"
"$py" -m grpc_tools.protoc -I proto \
  --python_out=clients/python/src --pyi_out=clients/python/src --grpc_python_out=clients/python/src \
  proto/rollgate/v1/*.proto
printf '"""Generated from proto/rollgate/v1 by scripts/generate-clients.sh (%s). Do not edit."""\n' "$tools_req" > "$out/__init__.py"
echo "generated $out ($tools_req)"
