"""Fixed work timed on every benchmark run, so that runs on hosts of different speed compare.

The same code's times differ from host to host and hour to hour (national-30k's level 1 alone:
3.81 s on one kernel build of the benchmark machine, 4.4-6.1 s on another), and the allocator's
rules that read the pace of its LPs then change the outcomes of short runs as well. Work that is
the same on every run, whatever the allocator's code, shows how fast the host was: an LP like
the allocator's (sparse, solved by HiGHS) and a plain Python loop (the packing and extraction are
Python).
"""

from __future__ import annotations

import time

import numpy as np
from ortools.math_opt.python import mathopt

#: Sources and sinks of the transportation LP (SIZE squared variables), steps of the Python loop,
#: and how often each is timed (the best time counts: other work only ever slows a run).
LP_SIZE, LOOP_STEPS, REPEATS = 150, 2_000_000, 3
#: Tries of each just before every row of a table (a quarter of a second): the host's pace can
#: change within minutes (the loop took 0.25 s and, two minutes later, 0.10 s).
ROW_REPEATS = 1


def transportation_lp(size: int = LP_SIZE, seed: int = 0) -> mathopt.Model:
    """A feasible transportation LP of ``size`` sources and sinks, the same for a seed."""
    rng = np.random.default_rng(seed)
    supply = rng.integers(50, 100, size).astype(float)
    demand = rng.integers(10, 50, size).astype(float)
    cost = rng.random((size, size))
    model = mathopt.Model(name="reference")
    x = [[model.add_variable(lb=0.0) for _ in range(size)] for _ in range(size)]
    for i in range(size):
        model.add_linear_constraint(mathopt.fast_sum(x[i]) <= supply[i])
    for j in range(size):
        model.add_linear_constraint(mathopt.fast_sum(x[i][j] for i in range(size)) >= demand[j])
    model.minimize(mathopt.fast_sum(cost[i, j] * x[i][j] for i in range(size) for j in range(size)))
    return model


def _loop(steps: int) -> int:
    total = 0
    for i in range(steps):
        total += i * i
    return total


def reference_timings(repeats: int = REPEATS) -> dict[str, float]:
    """Best seconds of ``repeats`` for the LP (``lp_s``, solve only) and the loop (``python_s``)."""
    model = transportation_lp()
    lp, loop = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        result = mathopt.solve(model, mathopt.SolverType.HIGHS)
        lp.append(time.perf_counter() - started)
        if result.termination.reason != mathopt.TerminationReason.OPTIMAL:
            raise RuntimeError(f"the reference LP ended {result.termination.reason}")
        started = time.perf_counter()
        _loop(LOOP_STEPS)
        loop.append(time.perf_counter() - started)
    return {"lp_s": round(min(lp), 3), "python_s": round(min(loop), 3)}


def reference_text(timings: dict[str, float]) -> str:
    return (f"reference work, best of {REPEATS}: a {LP_SIZE} x {LP_SIZE} transportation LP by HiGHS "
            f"{timings['lp_s']:.3f} s, a Python loop of {LOOP_STEPS:,} steps {timings['python_s']:.3f} s")


def row_pace() -> dict[str, float]:
    """The reference work's seconds just before a row's run (``ROW_REPEATS`` tries): the
    columns ``host_lp_s`` and ``host_loop_s`` of the tables."""
    timings = reference_timings(ROW_REPEATS)
    return {"host_lp_s": timings["lp_s"], "host_loop_s": timings["python_s"]}


#: How the tables explain those two columns.
ROW_PACE_TEXT = (f"`host LP s` and `host loop s` are the reference work's seconds (the LP and the loop of the header, "
                 f"{ROW_REPEATS} try each) just before the row's run: how fast the host was then.")
