"""LaTeX answer -> sympy, exactly: decimals become rationals before parsing, so 0.1 is 1/10."""

from __future__ import annotations

import re
from functools import lru_cache

import sympy
from latex2sympy2_extended.latex2sympy2 import ConversionConfig, latex2sympy
from latex2sympy2_extended.math_normalization import NormalizationConfig

_NORMALIZATION = NormalizationConfig(
    basic_latex=True, units=True, malformed_operators=True, nits=True, boxed="none", equations=False
)
# X and x are different symbols; the TypeScript fast path keeps case too (docs/MATH_GRADER.md, "Letter case")
_CONVERSION = ConversionConfig(lowercase_symbols=False)
_COMPLEX = re.compile(r"\\mathbb\{C\}|\\imath\b|(?<![a-zA-Z\\])i(?![a-zA-Z])")
_DECIMAL = re.compile(r"(?<![\w.])(\d*)\.(\d+)(?![\d.])")
MAX_LATEX = 4000


class Unparsable(Exception):
    """The answer is not something sympy can read (or reads as nonsense such as 12:00 -> zoo)."""


def exact_decimals(latex: str) -> str:
    """12.5 -> {\\frac{125}{10}} so no Float (and no rounding) ever enters the comparison."""

    def repl(m: re.Match[str]) -> str:
        whole, frac = m.group(1) or "0", m.group(2)
        return "{\\frac{%d}{%d}}" % (int(whole + frac), 10 ** len(frac))

    return _DECIMAL.sub(repl, latex)


def _has_bad_values(expr) -> bool:
    try:
        if isinstance(expr, sympy.MatrixBase):
            return any(_has_bad_values(e) for e in expr)
        if isinstance(expr, sympy.Basic):
            return expr.has(sympy.zoo, sympy.nan, sympy.oo * sympy.I)
    except Exception:  # noqa: BLE001 - sympy raises many types on odd trees
        return False
    return False


@lru_cache(maxsize=2048)
def parse(latex: str):
    """Cached: sympy objects are immutable, and answers recur (k samples per reference, majority votes)."""
    if len(latex) > MAX_LATEX:
        raise Unparsable("answer too long")
    src = exact_decimals(latex.strip())
    try:
        expr = latex2sympy(
            src,
            is_real=not _COMPLEX.search(src),
            convert_degrees=False,
            normalization_config=_NORMALIZATION,
            conversion_config=_CONVERSION,
        )
    except (MemoryError, RecursionError):
        raise
    except Exception as e:  # noqa: BLE001 - the ANTLR parser raises plain Exception
        raise Unparsable(str(e)[:200]) from e
    if expr is None or _has_bad_values(expr):
        raise Unparsable("no value")
    return expr
