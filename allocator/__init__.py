"""Optimal, verified placement of settlement-ready refugees in municipalities.

>>> from allocator import read_problem, solve
>>> result = solve(read_problem("problem/"))      # doctest: +SKIP
>>> print(result.summary())                        # doctest: +SKIP
"""

from .backend import Progress, StopFlag
from .errors import InputIssue, ProblemValidationError
from .problem import Problem, build_problem
from .reading import read_problem, write_problem
from .result import Result
from .settings import Settings
from .solve import solve
from .verify import verify_plan

__all__ = [
    "InputIssue",
    "Problem",
    "ProblemValidationError",
    "Progress",
    "Result",
    "Settings",
    "StopFlag",
    "build_problem",
    "read_problem",
    "solve",
    "verify_plan",
    "write_problem",
]
