# Shared shell helpers. Sourced, not run.
# The virtualenv lives outside the clone, keyed by the lock file, so fresh clones (CI) reuse it.
PROMPTCOT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROMPTCOT_CACHE="${PROMPTCOT_CACHE:-$HOME/.cache/promptcot}"
venv_key() { cat "$PROMPTCOT_ROOT/python-workers/requirements.lock" "$PROMPTCOT_ROOT/python-workers/requirements-special.txt" | sha256sum | cut -c1-12; }
venv_dir() { echo "$PROMPTCOT_CACHE/venv-$(venv_key)"; }
venv_python() { echo "${PROMPTCOT_PYTHON:-$(venv_dir)/bin/python}"; }
