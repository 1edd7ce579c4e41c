#!/usr/bin/env bash
# The whole test suite: vitest and pytest, then one plain line "N passed, N failed" for both together.
# Runs bootstrap first, so it works on a fresh clone with nothing else run before.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROMPTCOT_ROOT"
bash scripts/bootstrap.sh || { echo "bootstrap failed"; echo "0 passed, 1 failed"; exit 1; }
PY="$(venv_python)"
# llama.cpp's llama-server, for the llama_cpp rollout engine's test against a real server. Built here, not in
# the bootstrap, because the quickstart does not use it; cached outside the clone, so only a fresh machine
# pays the build (~8 min on 2 cores).
bash scripts/llama-server.sh >/dev/null || { echo "llama-server build failed (scripts/llama-server.sh)"; echo "0 passed, 1 failed"; exit 1; }
OUT="$(mktemp -d)"

CI=true npx vitest run --reporter=default --reporter=json --outputFile.json="$OUT/vitest.json"
vitest_rc=$?

PYTHONPATH=python-workers "$PY" -m pytest python-workers/tests -q -p no:cacheprovider --junitxml="$OUT/pytest.xml"
pytest_rc=$?

read -r vp vf < <(node -e '
  const fs = require("fs"); let p = 0, f = 0;
  try { const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); p = r.numPassedTests; f = r.numFailedTests + (r.numRuntimeErrorTestSuites || 0); } catch { f = 1; }
  console.log(p, f);' "$OUT/vitest.json")
read -r pp pf < <("$PY" - "$OUT/pytest.xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    t = sum(int(s.get("tests", 0)) for s in suites); bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    sk = sum(int(s.get("skipped", 0)) for s in suites)
    print(t - bad - sk, bad)
except Exception:
    print(0, 1)
PYEOF
)
# pytest exit 5 = no tests collected: that is a failure here, never a silent pass.
[ "$pytest_rc" = 5 ] && pf=$((pf + 1))
passed=$((vp + pp)); failed=$((vf + pf))
[ "$vitest_rc" != 0 ] && [ "$vf" = 0 ] && failed=$((failed + 1))
[ "$pytest_rc" != 0 ] && [ "$pf" = 0 ] && failed=$((failed + 1))
echo "vitest: $vp passed, $vf failed (exit $vitest_rc); pytest: $pp passed, $pf failed (exit $pytest_rc)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
