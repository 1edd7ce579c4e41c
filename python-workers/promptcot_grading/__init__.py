"""Symbolic path of the promptcot math grader.

Long-lived worker processes (``python -m promptcot_grading.server``) answer equivalence questions the
TypeScript fast path cannot settle, using sympy and latex2sympy2_extended (the parser math-verify uses).
The TypeScript side bounds every request in time and kills the process when it overruns.
"""
