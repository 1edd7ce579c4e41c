#!/usr/bin/env bash
# Generates the TypeScript client and the Python stubs from proto/ with one protoc (grpcio-tools').
# Usage: scripts/gen-proto.sh [OUT_ROOT]   (OUT_ROOT defaults to the repo; tests pass a temp dir to check staleness)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROMPTCOT_ROOT"
OUT="${1:-$PROMPTCOT_ROOT}"
PY="$(venv_python)"
TS_OUT="$OUT/src/rpc/gen"; PY_OUT="$OUT/python-workers/promptcot_worker/gen"
mkdir -p "$TS_OUT" "$PY_OUT"
"$PY" -m grpc_tools.protoc -I proto \
  --plugin=protoc-gen-ts_proto="$PROMPTCOT_ROOT/node_modules/.bin/protoc-gen-ts_proto" \
  --ts_proto_out="$TS_OUT" \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,env=node,forceLong=number,importSuffix=.js,useOptionals=messages \
  --python_out="$PY_OUT" --grpc_python_out="$PY_OUT" \
  proto/promptcot_worker.proto
# grpc's Python generator emits an absolute import; make it package-relative.
sed -i 's/^import promptcot_worker_pb2 as/from . import promptcot_worker_pb2 as/' "$PY_OUT/promptcot_worker_pb2_grpc.py"
touch "$PY_OUT/__init__.py"
