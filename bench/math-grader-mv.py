"""math-verify reference runner for bench/math-grader.ts (one process, calls math_verify.parse/verify).

Reads a JSONL of checks {gold, pred, expected, match_types?, precision?, strict?, allow_set_relation_comp?}
and prints one JSON line: {"checks", "seconds", "agree", "seconds_warm", "agree_warm"}. With --harness
the checks run the way math-verify's own tests do (compare_strings); otherwise with parse()/verify()
defaults, as a user would call them. Timing starts after imports and a one-check warm-up.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

logging.disable(logging.WARNING)


def targets(match_types: list[str]):
    out = []
    for m in match_types:
        if m == "latex":
            out.append(LatexExtractionConfig(boxed_match_priority=0))
        elif m == "latex_default":
            out.append(LatexExtractionConfig())
        elif m == "expr":
            out.append(ExprExtractionConfig())
    return out


def check(c: dict, harness: bool) -> bool:
    if harness:
        t = targets(c["match_types"])
        return verify(
            parse(c["gold"], t),
            parse(c["pred"], t),
            float_rounding=c["precision"],
            strict=c["strict"],
            allow_set_relation_comp=c["allow_set_relation_comp"],
        )
    return verify(parse(c["gold"]), parse(c["pred"]))


def one_pass(checks: list[dict], harness: bool) -> tuple[float, int]:
    t = time.perf_counter()
    agree = sum(1 for c in checks if check(c, harness) == c["expected"])
    return time.perf_counter() - t, agree


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--harness", action="store_true")
    args = ap.parse_args()
    checks = [json.loads(line) for line in open(args.data, encoding="utf8") if line.strip()]
    verify(parse("$\\frac{1}{2}$"), parse("$0.5$"))  # warm-up: imports and the ANTLR parser
    seconds, agree = one_pass(checks, args.harness)
    seconds_warm, agree_warm = one_pass(checks, args.harness)
    print(json.dumps({"checks": len(checks), "seconds": seconds, "agree": agree, "seconds_warm": seconds_warm, "agree_warm": agree_warm}))


if __name__ == "__main__":
    main()
