"""Equivalence questions the fast path leaves open, answered with sympy.

Equal means mathematically equal: exact arithmetic, simplification of the difference to zero, or (for
constants only) agreement to 40 significant digits at 60-digit precision. A decimal stands for an exact
value only when it is that value rounded or truncated to the decimal's own digits. No step compares
floats at a fixed 6-digit rounding or with a relative tolerance like 1e-4.
"""

from __future__ import annotations

import re
from typing import Any

import mpmath
import sympy
from sympy import Basic, MatrixBase, Set
from sympy.core.function import AppliedUndef
from sympy.core.relational import Relational
from sympy.functions.elementary.trigonometric import TrigonometricFunction
from sympy.matrices.expressions import MatrixExpr

from .latex_to_sympy import Unparsable, parse

# identical to 40 significant digits at 60-digit precision counts as equal for constants; 1e-30 apart is
# certainly different
_EQUAL_DIGITS = 40
_WORK_DPS = 60

INVERSE = {
    sympy.StrictLessThan: sympy.StrictGreaterThan,
    sympy.StrictGreaterThan: sympy.StrictLessThan,
    sympy.LessThan: sympy.GreaterThan,
    sympy.GreaterThan: sympy.LessThan,
    sympy.Eq: sympy.Eq,
    sympy.Ne: sympy.Ne,
}


def _fatal(e: BaseException) -> None:
    """Running out of memory is not "not equal": let it reach the server, which replaces the worker."""
    if isinstance(e, (MemoryError, RecursionError)):
        raise e


def _compact(s: str) -> str:
    return re.sub(r"\s+", "", s)


def answer(q: dict[str, Any]) -> bool:
    """One query from the TypeScript comparer: {op, gold, pred, goldDec, predDec, precision, strict}."""
    try:
        # a bare decimal leaf is taken from its digits, exactly (the TypeScript side marks those)
        a = sympy.Rational(q["gold"].strip()) if q.get("goldDec") is not None else parse(q["gold"])
        b = sympy.Rational(q["pred"].strip()) if q.get("predDec") is not None else parse(q["pred"])
    except (Unparsable, TypeError, ValueError):
        g, p = _compact(q["gold"]), _compact(q["pred"])
        return g != "" and g == p
    if not q.get("strict", True):
        b = _rename_symbols(a, b)
    op = q["op"]
    if op == "expr":
        return _values_equal(a, b, q.get("goldDec"), q.get("predDec"), int(q.get("precision", 6)))
    if op == "rel":
        return _relations_equal(a, b)
    if op == "relset":
        return _relation_matches_set(a, b)
    if op == "set":
        return _sets_equal(_as_set(a), _as_set(b))
    raise ValueError(f"unknown op {op!r}")


def _rename_symbols(a: Any, b: Any) -> Any:
    """Non-strict mode: the prediction's variables are renamed to the reference's, in name order."""
    try:
        ga = sorted(a.free_symbols, key=lambda s: s.name)
        pb = sorted(b.free_symbols, key=lambda s: s.name)
        if len(ga) == len(pb) and ga:
            return b.subs(dict(zip(pb, ga)), simultaneous=True)
    except Exception as e:  # noqa: BLE001
        _fatal(e)
        pass
    return b


def _doit(x: Any) -> Any:
    try:
        return x.doit()
    except Exception as e:  # noqa: BLE001
        _fatal(e)
        return x


def _is_relation(x: Any) -> bool:
    if isinstance(x, Relational):
        return True
    return isinstance(x, sympy.And) and all(isinstance(r, Relational) for r in x.args)


def _values_equal(a: Any, b: Any, gdec: int | None, pdec: int | None, precision: int) -> bool:
    if isinstance(a, (MatrixBase, MatrixExpr)) or isinstance(b, (MatrixBase, MatrixExpr)):
        a, b = _doit(a), _doit(b)
        if not (isinstance(a, MatrixBase) and isinstance(b, MatrixBase)) or a.shape != b.shape:
            return False
        return all(_scalars_equal(x, y, None, None, precision) for x, y in zip(a, b))
    if _is_relation(a) and _is_relation(b):
        return _relations_equal(a, b)
    if _is_relation(a) or _is_relation(b):
        return False
    if isinstance(a, Set) or isinstance(b, Set):
        return _sets_equal(_as_set(a), _as_set(b))
    if isinstance(a, (sympy.Tuple, tuple)) or isinstance(b, (sympy.Tuple, tuple)):
        if not (isinstance(a, (sympy.Tuple, tuple)) and isinstance(b, (sympy.Tuple, tuple))) or len(a) != len(b):
            return False
        return all(_values_equal(x, y, None, None, precision) for x, y in zip(a, b))
    if not (isinstance(a, Basic) and isinstance(b, Basic)):
        return False
    return _scalars_equal(a, b, gdec, pdec, precision)


def _scalars_equal(a: Basic, b: Basic, gdec: int | None, pdec: int | None, precision: int) -> bool:
    if gdec is not None and pdec is None:
        return _decimal_matches(a, gdec, b, pred_is_decimal=False, precision=precision)
    if pdec is not None and gdec is None:
        return _decimal_matches(b, pdec, a, pred_is_decimal=True, precision=precision)
    return _exactly_equal(a, b)


def _exactly_equal(a: Basic, b: Basic) -> bool:
    if a == b:
        return True
    a, b = _doit(a), _doit(b)
    if a == b:
        return True
    diff = a - b
    if diff == 0:
        return True
    if not diff.free_symbols:
        return _constants_equal(a, b)
    if _differs_somewhere(diff):
        return False
    # cheap rewrites first; simplify (slow) last
    simplifiers = [sympy.expand]
    if diff.has(TrigonometricFunction):
        simplifiers.append(sympy.trigsimp)
    simplifiers += [sympy.simplify, lambda e: sympy.simplify(sympy.expand_trig(e)), sympy.radsimp]
    for simplifier in simplifiers:
        try:
            if simplifier(diff) == 0:
                return True
        except Exception as e:  # noqa: BLE001
            _fatal(e)
            continue
    return False


# sample points for a cheap "certainly different" test before simplify (irrational-ish, inside (0, 3))
_PROBES = ((0.5377, 1.8336, 2.2588), (1.3371, 0.6173, 2.9013), (2.4611, 1.1219, 0.8347))


def _differs_somewhere(diff: Basic) -> bool:
    """True when diff is clearly non-zero at a sample point (so the expressions cannot be identical)."""
    symbols = sorted(diff.free_symbols, key=lambda s: s.name)
    if len(symbols) > 6:
        return False
    for probe in _PROBES:
        point = {s: sympy.Rational(str(probe[i % 3] + 0.1 * (i // 3))) for i, s in enumerate(symbols)}
        try:
            v = sympy.N(diff.xreplace(point), 30)
        except Exception as e:  # noqa: BLE001
            _fatal(e)
            continue
        if v.is_number and v.is_real and not v.has(sympy.zoo, sympy.nan) and abs(v) > sympy.Float("1e-12"):
            return True
    return False


def _numeric(x: Basic) -> mpmath.mpc | None:
    try:
        v = sympy.N(x, _WORK_DPS)
    except Exception as e:  # noqa: BLE001
        _fatal(e)
        return None
    if not v.is_number or v.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        return None
    try:
        re_, im_ = v.as_real_imag()
        return mpmath.mpc(mpmath.mpf(str(sympy.N(re_, _WORK_DPS))), mpmath.mpf(str(sympy.N(im_, _WORK_DPS))))
    except Exception as e:  # noqa: BLE001
        _fatal(e)
        return None


def _constants_equal(a: Basic, b: Basic) -> bool:
    with mpmath.workdps(_WORK_DPS):
        va, vb = _numeric(a), _numeric(b)
        if va is None or vb is None:
            return False
        scale = max(abs(va), abs(vb))
        if scale == 0:
            return True
        # relative difference: 1/2^99 vs 1/2^98 differ by half, however small both are
        return abs(va - vb) <= scale * mpmath.mpf(10) ** (-_EQUAL_DIGITS)


def _decimal_matches(d: Basic, k: int, x: Basic, pred_is_decimal: bool, precision: int) -> bool:
    """d is a decimal with k digits after the point (already an exact rational); x is exact.

    A decimal stands for x only when x has no finite decimal expansion and d is x rounded or truncated to
    k digits; a decimal prediction must also show at least `precision` digits.
    """
    if not isinstance(d, sympy.Rational):
        return _exactly_equal(d, x)
    if getattr(x, "free_symbols", None):
        return False
    if _exactly_equal(d, x):
        return True
    if isinstance(x, sympy.Rational) and _terminates(x):
        return False  # 49/20 is exactly 2.45; it is not "2.5 rounded"
    if pred_is_decimal and k < precision:
        return False
    with mpmath.workdps(k + 30):
        v = _numeric(x)
        if v is None or abs(v.imag) > mpmath.mpf(10) ** (-(k + 20)):
            return False
        xv = v.real
        dv = mpmath.mpf(d.p) / d.q
        unit = mpmath.mpf(10) ** (-k)
        if dv == 0:
            return abs(xv) < unit
        if dv < 0:
            xv, dv = -xv, -dv
        # rounded (within half a unit below) or truncated (within a unit above) to k digits
        return dv - unit / 2 <= xv < dv + unit


def _terminates(q: sympy.Rational) -> bool:
    d = int(q.q)
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def _relation_list(x: Any) -> list[Relational]:
    if isinstance(x, sympy.And):
        args = getattr(x, "_unsorted_args", None) or x.args
        return list(args)
    return [x]


def _relations_equal(a: Any, b: Any) -> bool:
    ra, rb = _relation_list(a), _relation_list(b)
    if len(ra) == len(rb):
        if all(_relation_pair(x, y) for x, y in zip(ra, rb)):
            return True
        if all(_relation_pair(x, _flip(y)) for x, y in zip(ra, reversed(rb))):
            return True
    # univariate relations: compare their solution sets
    try:
        return _sets_equal(_solution_set(a), _solution_set(b))
    except Exception as e:  # noqa: BLE001
        _fatal(e)
        return False


def _flip(r: Relational) -> Relational:
    return INVERSE[type(r)](r.rhs, r.lhs, evaluate=False)


def _relation_pair(x: Relational, y: Relational) -> bool:
    if isinstance(x.rhs, Set) or isinstance(y.rhs, Set):
        # membership written as x = [a, b]
        return (
            type(x) is type(y)
            and _exactly_equal(x.lhs, y.lhs)
            and _sets_equal(_as_set(x.rhs), _as_set(y.rhs))
        )
    d1 = x.lhs - x.rhs
    d2 = y.lhs - y.rhs
    try:
        k = sympy.simplify(d1 / d2)
    except Exception as e:  # noqa: BLE001
        _fatal(e)
        return False
    if k.free_symbols or k == 0 or not k.is_finite:
        return False
    if isinstance(x, (sympy.Eq, sympy.Ne)):
        return type(x) is type(y)
    if type(x) is type(y):
        return bool(k.is_positive)
    if INVERSE.get(type(x)) is type(y):
        return bool(k.is_negative)
    return False


def _unwrap_functions(expr: Any) -> Any:
    """f(x) -> symbol f_x, so a relation in f(x) has a solution set in that 'variable'."""
    try:
        calls = expr.atoms(AppliedUndef)
    except Exception as e:  # noqa: BLE001
        _fatal(e)
        return expr
    if not calls:
        return expr
    return expr.xreplace({c: sympy.Symbol(f"{c.func.__name__}_{'_'.join(map(str, c.args))}", real=True) for c in calls})


def _solution_set(rel: Any) -> Set:
    rel = _unwrap_functions(rel)
    if isinstance(rel, sympy.Eq) and isinstance(rel.rhs, Set):
        return rel.rhs
    symbols = rel.free_symbols
    if len(symbols) != 1:
        raise ValueError("not univariate")
    parts = _relation_list(rel)
    return sympy.And(*parts).as_set() if len(parts) > 1 else parts[0].as_set()


def _relation_matches_set(rel: Any, st: Any) -> bool:
    try:
        return _sets_equal(_solution_set(rel), _as_set(st))
    except Exception as e:  # noqa: BLE001
        _fatal(e)
        return False


def _as_set(x: Any) -> Set:
    if isinstance(x, sympy.Eq) and isinstance(x.rhs, Set):
        return x.rhs
    if isinstance(x, Set):
        return x
    if isinstance(x, (sympy.Tuple, tuple)) and len(x) == 2:
        return sympy.Interval.open(x[0], x[1])
    return sympy.FiniteSet(x)


def _sets_equal(a: Set, b: Set) -> bool:
    if a == b:
        return True
    try:
        return bool(a.symmetric_difference(b).is_empty)
    except Exception as e:  # noqa: BLE001
        _fatal(e)
        return False
