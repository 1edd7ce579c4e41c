"""Grader worker: JSON lines over stdin/stdout.

    -> {"id": 7, "queries": [{"op": "expr", "gold": "...", "pred": "...", ...}, ...]}
    <- {"id": 7, "results": [true, false, ...]}          (or {"id": 7, "error": "..."})

The parent (TypeScript) bounds each request in time and kills this process when it overruns, so there is
no timeout logic here (math-verify's SIGALRM timeouts do not work off the main thread anyway). Memory is
bounded with RLIMIT_AS; on MemoryError the worker answers with an error and exits so it is replaced with
a clean one. When the parent dies the worker dies too (PR_SET_PDEATHSIG, and EOF on stdin).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import signal
import sys


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the parent is already gone
            os._exit(0)
    except OSError:
        pass  # not Linux: EOF on stdin still ends the loop


def _limit_memory(mb: int) -> None:
    if mb <= 0:
        return
    limit = mb * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


# One of each construct the parser and the checks meet: the first use of a grammar rule (ANTLR builds its
# DFA lazily) and of sympy's simplify/solve caches costs tens of milliseconds, which a long-lived worker
# pays once, while idle after start, instead of inside a timed request.
_WARM_UP = [
    ("expr", "\\frac{1}{2}+x", "x+0.5"),
    ("expr", "\\tan^2(y)+1", "\\sec^2(y)"),
    ("expr", "\\frac{1}{3\\sqrt[3]{x}^2}", "\\frac{\\sqrt{2}}{3x^{2/3}}"),
    ("expr", "\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}", "\\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix} \\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}"),
    ("expr", "\\sum_{k=0}^{n-1} F_k F_{n-k-1}", "\\log_2 8 + \\ln(e) + \\sin x \\cos x"),
    ("expr", "f(x)", "|x| + 10^{\\frac{-5+\\sqrt{13}}{6}}"),
    ("expr", "[0,1) \\cup (2, \\infty)", "\\{1, 2\\}"),
    ("rel", "2x+4y-3=0", "y=-\\frac{1}{2}x+\\frac{3}{4}"),
    ("relset", "1 \\le |z| \\le \\frac{3}{2}", "[-\\frac{3}{2}, -1] \\cup [1, \\frac{3}{2}]"),
    ("relset", "0<f(x)<1", "(0,1)"),
]


def _warm_up(stop=lambda: False) -> bool:
    """Runs the warm-up examples until done or until stop() says a request is waiting. Returns done."""
    from .equivalence import answer
    from .latex_to_sympy import parse

    done = True
    for op, gold, pred in _WARM_UP:
        if stop():
            done = False
            break
        try:
            answer({"op": op, "gold": gold, "pred": pred, "goldDec": None, "predDec": None, "strict": True})
        except Exception as e:  # noqa: BLE001 - a warm-up miss only costs speed; say so and go on
            print(f"warm-up {op} {gold!r}: {type(e).__name__}: {e}", file=sys.stderr)
    parse.cache_clear()  # warm the machinery, not the answers
    return done


def _request_waiting() -> bool:
    try:
        return bool(select.select([sys.stdin], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def serve(stdin, stdout) -> None:
    from .equivalence import answer

    for line in stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            rid = req.get("id")
        except (ValueError, AttributeError):
            stdout.write(json.dumps({"id": None, "error": "bad request"}) + "\n")
            stdout.flush()
            continue
        try:
            results = [bool(answer(q)) for q in req.get("queries", [])]
            reply = {"id": rid, "results": results}
        except MemoryError:
            stdout.write(json.dumps({"id": rid, "error": "memory limit"}) + "\n")
            stdout.flush()
            os._exit(3)
        except RecursionError:
            reply = {"id": rid, "error": "expression too deep"}
        except Exception as e:  # noqa: BLE001 - one bad query must not end the worker
            reply = {"id": rid, "error": f"{type(e).__name__}: {str(e)[:200]}"}
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="promptcot math grader worker")
    ap.add_argument("--memory-mb", type=int, default=2048)
    args = ap.parse_args(argv)
    _die_with_parent()
    _limit_memory(args.memory_mb)
    sys.setrecursionlimit(10_000)
    from . import equivalence  # noqa: F401 - imports sympy and the parser before "ready"

    sys.stdout.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    # warm up while idle; a request that arrives meanwhile is served at once
    complete = _warm_up(stop=_request_waiting)
    sys.stdout.write(json.dumps({"warm": True, "complete": complete}) + "\n")
    sys.stdout.flush()
    serve(sys.stdin, sys.stdout)


if __name__ == "__main__":
    main()
