"""Symbolic path of the math grader: exactness, decimals, relations, sets, and the worker protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from promptcot_grading.equivalence import answer
from promptcot_grading.latex_to_sympy import exact_decimals
from promptcot_grading.server import _warm_up


def q(gold: str, pred: str, op: str = "expr", **kw) -> bool:
    return answer({"op": op, "gold": gold, "pred": pred, "goldDec": None, "predDec": None, "precision": 6, "strict": True, **kw})


def test_decimals_become_exact_rationals():
    assert exact_decimals("0.25 + x^{1.5}") == "{\\frac{25}{100}} + x^{{\\frac{15}{10}}}"
    assert q("\\frac{1}{4}", "0.25")


@pytest.mark.parametrize(
    "gold,pred",
    [
        ("\\frac{1}{2^{99}}", "\\frac{1}{2^{98}}"),  # tiny but different: relative, not absolute, comparison
        ("\\frac{1}{2004!}", "\\frac{1}{2006!}"),
        ("10000", "10001"),  # no relative tolerance
        ("\\sqrt{2}", "1.41421356"),  # a decimal is not exact unless marked as an approximation
        ("1 - \\frac{1}{e}", "1 + \\frac{1}{e}"),
    ],
)
def test_known_false_positives_stay_false(gold, pred):
    assert not q(gold, pred)


def test_decimal_rounding_rule():
    assert q("\\sqrt{17}", "4.123105625617661", predDec=15)  # rounded to its 15 digits
    assert q("\\sqrt{2}", "1.414213", predDec=6)  # truncated
    assert not q("\\sqrt{2}", "1.414", predDec=3)  # fewer digits than the precision
    assert q("\\sqrt{2}", "1.414", predDec=3, precision=3)
    assert not q("\\sqrt{2}", "1.414215", predDec=6)
    assert q("1.41", "\\sqrt{2}", goldDec=2)  # a rounded reference accepts the exact value


@pytest.mark.parametrize(
    "gold,pred",
    [
        ("\\tan^2(y)+1", "\\sec^2(y)"),
        ("\\frac{1}{3\\sqrt[3]{x}^2}", "\\frac{1}{3x^{2/3}}"),
        ("\\frac{\\sqrt{\\sqrt{11}+\\sqrt{194}}}{15+2\\sqrt{33}}", "\\frac{\\sqrt{\\sqrt{11}+\\sqrt{194}}}{2\\sqrt{33}+15}"),
        ("\\begin{pmatrix}6 & 8 \\\\ 10 & 12\\end{pmatrix}", "\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix} + \\begin{pmatrix}5 & 6 \\\\ 7 & 8\\end{pmatrix}"),
        ("\\ln(e^2)", "2"),
    ],
)
def test_symbolic_equalities(gold, pred):
    assert q(gold, pred)


def test_relations_and_sets():
    assert q("2x+4y-3=0", "y=-\\frac{1}{2}x+\\frac{3}{4}", op="rel")
    assert q("x < 1", "-x > -1", op="rel")
    assert not q("x < 1", "x > -1", op="rel")
    assert q("1 \\le |z| \\le \\frac{3}{2}", "[-\\frac{3}{2}, -1] \\cup [1, \\frac{3}{2}]", op="relset")
    assert q("0<f(x)<1", "(0,1)", op="relset")
    assert q("[0,1) \\cup [1,2]", "[0,2]", op="set")


def test_variables_matter_unless_not_strict():
    assert not q("f(x)", "f(y)")
    assert q("f(x)", "f(y)", strict=False)


def test_unparsable_falls_back_to_identical_text():
    assert not q("12:00", "1:00")  # 12/0: no value
    assert q("12:00", "12:00")
    assert not q("", "")


def test_warm_up_runs_every_example_and_stops_when_asked():
    assert _warm_up() is True
    assert _warm_up(stop=lambda: True) is False


def _server(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen(
        [sys.executable, "-m", "promptcot_grading.server", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )


def _reply(p: subprocess.Popen) -> dict:
    """The next reply, skipping the worker's one-time {"warm": ...} notice."""
    while True:
        msg = json.loads(p.stdout.readline())
        if "warm" not in msg:
            return msg


def test_server_speaks_json_lines_and_survives_bad_requests():
    p = _server()
    try:
        assert json.loads(p.stdout.readline())["ready"] is True
        p.stdin.write("not json\n")
        p.stdin.write(json.dumps({"id": 5, "queries": [{"op": "expr", "gold": "\\frac{1}{2}", "pred": "0.5"}]}) + "\n")
        p.stdin.write(json.dumps({"id": 6, "queries": [{"op": "nope", "gold": "1", "pred": "1"}]}) + "\n")
        p.stdin.flush()
        assert _reply(p)["error"] == "bad request"
        assert _reply(p) == {"id": 5, "results": [True]}
        assert "error" in _reply(p)
    finally:
        p.stdin.close()
        assert p.wait(timeout=10) == 0  # EOF on stdin ends the worker


def test_server_memory_limit_ends_the_worker():
    p = _server("--memory-mb", "300")
    try:
        assert json.loads(p.stdout.readline())["ready"] is True
        p.stdin.write(json.dumps({"id": 1, "queries": [{"op": "expr", "gold": "2^{2^{31}}+1", "pred": "1"}]}) + "\n")
        p.stdin.flush()
        assert _reply(p) == {"id": 1, "error": "memory limit"}
        assert p.wait(timeout=10) == 3
    finally:
        p.kill()


def test_symbols_keep_their_case():
    # X and x are different symbols (docs/MATH_GRADER.md, "Letter case"); the same symbol still simplifies
    assert not q("X^{2} + 1", "x^{2} + 1")
    assert not q("\\sin(N)", "\\sin(n)")
    assert q("(X+1)^{2}", "X^{2} + 2X + 1")
    assert q("x = 2X", "x - 2X = 0", op="rel")
