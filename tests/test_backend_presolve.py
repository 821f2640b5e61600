"""HiGHS's MIPs over a whole model run without its "parallel rows and columns" presolve rule:
with it, HiGHS proved plans optimal that other plans beat (docs/model.md, "Proof"). LPs and
neighbourhoods (bounds given), whose bounds are never claimed, keep every rule.

``data/ties-level-400.npz`` is the ties level of ``InstanceSpec(cases=400, seed=1)`` as the
allocator built it (urgency locked at its optimum, 1,675.3409): with the rule HiGHS proves 29
ties "optimal"; SCIP, and HiGHS without the rule, prove 32, and SCIP's plan keeps every row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from test_backend_errors import knapsack, params_asked

from allocator.backend import UNSAFE_MIP_PRESOLVE_RULE, MathOptBackend, _highs_presolve_rule_bits, highs_mip_options
from allocator.model import LinearProgram

DATA = Path(__file__).parent / "data"


def test_this_highs_names_the_rule_and_a_mip_is_solved_without_it(monkeypatch):
    bit = _highs_presolve_rule_bits()[UNSAFE_MIP_PRESOLVE_RULE]
    assert highs_mip_options() == {"presolve_rule_off": bit}
    asked = params_asked(monkeypatch)
    out = MathOptBackend().solve(knapsack(), np.array([3.5, 2.0, 2.0]), time_limit=10.0, relative_gap=1e-4)
    assert [dict(p.highs.int_options) for p in asked] == [{"presolve_rule_off": bit}]
    assert out.status == "optimal" and out.objective == 4.0


def test_an_lp_and_a_neighbourhood_keep_every_presolve_rule(monkeypatch):
    # A neighbourhood's bound is never claimed: only its plans are used.
    asked = params_asked(monkeypatch)
    backend, objective = MathOptBackend(), np.array([3.5, 2.0, 2.0])
    backend.solve(knapsack(), objective, time_limit=10.0, relative_gap=0.0, relax=True)
    out = backend.solve(knapsack(), objective, time_limit=10.0, relative_gap=1e-4, upper=np.array([1.0, 1.0, 0.0]))
    assert [dict(p.highs.int_options) for p in asked] == [{}, {}]
    assert out.objective == 3.5


def test_the_ties_level_that_highs_got_wrong_is_proven_at_its_optimum():
    saved = np.load(DATA / "ties-level-400.npz")
    program = LinearProgram(saved["lower"], saved["upper"], saved["integer"],
                            sp.csr_matrix((saved["data"], saved["indices"], saved["indptr"]), shape=saved["shape"]),
                            saved["row_lower"], saved["row_upper"])
    out = MathOptBackend().solve(program, saved["objective"], time_limit=120.0, relative_gap=1e-4)
    assert out.status == "optimal"
    assert out.objective == pytest.approx(32.0) and out.bound == 32.0


def test_a_tiny_mip_skips_the_feasibility_jump_and_symmetry_detection(monkeypatch):
    # The case-moving search's steps: thousands of MIPs of a few dozen variables, where these
    # took longer than the solve itself.
    asked = params_asked(monkeypatch)
    backend, objective = MathOptBackend(), np.array([3.5, 2.0, 2.0])
    plain = backend.solve(knapsack(), objective, time_limit=10.0, relative_gap=1e-6, upper=np.ones(3))
    tiny = backend.solve(knapsack(), objective, time_limit=10.0, relative_gap=1e-6, upper=np.ones(3), tiny=True)
    skipped = {"mip_heuristic_run_feasibility_jump": False, "mip_detect_symmetry": False}
    assert [dict(p.highs.bool_options) for p in asked] == [{}, skipped]
    assert plain.objective == tiny.objective == 4.0


def test_a_model_infeasible_under_its_lock_is_asked_again_without_presolve_and_no_warning(monkeypatch, caplog):
    # The knapsack's optimum is 4: a lock asking for 5 leaves no plan. HiGHS's presolve has
    # called models with a plan infeasible, so the backend asks again without it; that the
    # model has none is then no reason for a warning (it came after every mend that missed a
    # lock).
    asked = params_asked(monkeypatch)
    with caplog.at_level("WARNING", logger="allocator"):
        out = MathOptBackend("highs").solve(knapsack(), np.array([3.0, 2.0, 2.0]), time_limit=5.0,
                                            relative_gap=0.0, locks=[(np.array([3.0, 2.0, 2.0]), 5.0)])
    assert out.status == "infeasible" and out.values is None
    assert len(asked) == 2 and asked[1].highs.string_options["presolve"] == "off"
    assert caplog.records == []
