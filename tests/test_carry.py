"""The probe's LP carried into the refined model: a vertex of the refined LP that reaches the
probe's optimum, which bounds the level; a carry that falls short is refused."""

from __future__ import annotations

import importlib
import logging
from dataclasses import replace

import numpy as np
import pytest
from conftest import fake_breaks, no_other_repair
from test_backend_errors import params_asked
from test_pack import keeps_every_row

from allocator import Settings, build_problem, solve, verify_plan, write_problem
from allocator.aggregate import aggregate
from allocator.backend import MathOptBackend
from allocator.carry import carry_lp
from allocator.demo import NAMED, demo_settings, generate_tables
from allocator.model import build_model
from allocator.probe import likely_binding_services, probe_services

solve_module = importlib.import_module("allocator.solve")  # the package exports the function solve
level_module = importlib.import_module("allocator.level")

URGENCY_ONLY = {"objective": {"priorities": [["urgency"]]}}


@pytest.fixture(scope="module")
def national_1k():
    # Seed 12: the probe models 13 more municipalities and its LP carries (seed 11's does not).
    tables = generate_tables(replace(NAMED["national-1k"], seed=12))
    settings = Settings.model_validate(demo_settings()).with_overrides(**URGENCY_ONLY)
    return tables, build_problem(tables, settings)


@pytest.fixture(scope="module")
def probed(national_1k):
    """The probe's model and LP, the refined model, its urgency program and objective."""
    _, problem = national_1k
    agg = aggregate(problem)
    backend = MathOptBackend("highs")
    coarse = build_model(agg, likely_binding_services(agg))
    probe = probe_services(coarse, backend, ["urgency"], problem.settings)
    assert probe.lp is not None and probe.more.any()  # the round needs the carry
    fine = build_model(agg, coarse.fine | probe.more)
    program, columns = fine.program(["urgency"])
    objective = fine.objective_terms()["urgency"][columns]
    return backend, coarse, probe.lp, fine, program, columns, objective


def test_the_carried_lp_is_a_point_of_the_refined_lp_at_the_probes_optimum(probed):
    backend, coarse, lp, fine, program, columns, objective = probed
    carried = carry_lp(backend, coarse, lp, fine, program, columns, objective, 10.0, 1e-4)
    assert carried is not None
    assert carried.objective == lp.objective  # the bound is the probe's
    assert keeps_every_row(program, carried.values)  # every row of the refined model, services too
    assert float(objective @ carried.values) >= lp.objective * (1 - 1e-5)
    # Outside the municipalities modelled anew, no count is below the probe's.
    y_in = np.searchsorted(columns, np.arange(fine.blocks["y"].start, fine.blocks["y"].stop))
    old = dict(zip(zip(coarse.y_unit.tolist(), coarse.y_muni.tolist()), lp.values[coarse.blocks["y"]]))
    kept = ~(fine.fine & ~coarse.fine)[fine.y_muni]
    got = carried.values[y_in][kept]
    want = [old[(u, m)] for u, m in zip(fine.y_unit[kept].tolist(), fine.y_muni[kept].tolist())]
    assert (got >= np.minimum(want, fine.upper[fine.blocks["y"]][kept]) - 1e-9).all()


def test_the_carried_lp_is_solved_by_simplex_to_a_vertex(probed, monkeypatch):
    # Most counts start at their lower bounds, a few pivots from the optimum: dual simplex. The
    # probe's own LP stays with the interior point method, whose vertex packs better.
    backend, coarse, lp, fine, program, columns, objective = probed
    asked = params_asked(monkeypatch)
    carried = carry_lp(backend, coarse, lp, fine, program, columns, objective, 10.0, 1e-4)
    assert [p.highs.string_options["solver"] for p in asked] == ["simplex"]
    # A basic solution: no more fractional values than rows.
    fractional = np.abs(carried.values - np.rint(carried.values)) > 1e-6
    assert fractional.sum() <= program.matrix.shape[0]
    asked.clear()
    probe_services(coarse, backend, ["urgency"], Settings.model_validate(demo_settings()))
    assert [p.highs.string_options["solver"] for p in asked] == ["ipm"]


def test_a_carry_short_of_the_probes_optimum_is_refused(probed):
    backend, coarse, lp, fine, program, columns, objective = probed
    # A probe claiming one point more than any carried point reaches: the whole LP is needed.
    higher = replace(lp, objective=lp.objective + 1.0)
    assert carry_lp(backend, coarse, higher, fine, program, columns, objective, 10.0, 1e-4) is None


def test_the_first_level_uses_the_carried_lp_and_its_plan_verifies(national_1k, tmp_path, caplog):
    tables, problem = national_1k
    with caplog.at_level(logging.INFO, logger="allocator"):
        result = solve(problem)
    assert any("(the probe's LP, carried into the model)" in r.getMessage() for r in caplog.records)
    level = result.levels[0]
    assert level.status == "optimal"
    assert level.objective <= level.bound * (1 + 1e-9)
    assert (level.bound - level.objective) <= 1e-4 * level.bound
    problem_dir = write_problem(tables, tmp_path / "problem", demo_settings())
    result.write(tmp_path / "out")
    assert verify_plan(problem_dir, tmp_path / "out" / "plan.csv") == []


def _solve_with_ties_to_follow(problem, caplog):
    """The round solved with urgency, then ties (5 s); its result and the log's messages."""
    settings = problem.settings.with_overrides(objective={"priorities": [["urgency"], ["ties"]]},
                                               solver={"time_limit": 5.0})
    with caplog.at_level(logging.INFO, logger="allocator"):
        result = solve(problem, settings)
    return result, [r.getMessage() for r in caplog.records]


def test_with_levels_to_follow_the_first_level_solves_the_refined_lp(national_1k, caplog):
    # The levels below start from level 1's plan: it keeps the refined LP's vertex.
    result, messages = _solve_with_ties_to_follow(national_1k[1], caplog)
    assert any("LP relaxation" in m for m in messages)
    assert not any("the probe's LP" in m for m in messages)
    assert result.levels[0].status == "optimal"


def test_without_time_for_its_own_lp_the_first_level_carries_the_probes(national_1k, caplog, monkeypatch):
    # As on a machine where the level's own LP would not finish in its share of the time (a
    # 10 s limit on national-30k once left level 1 the greedy plan, 7,212 cases fewer): with
    # levels to follow, the probe's LP is carried instead, and the level is proven by it.
    monkeypatch.setattr(MathOptBackend, "expected_lp_seconds", lambda self, model, locks=None: 1e6)
    result, messages = _solve_with_ties_to_follow(national_1k[1], caplog)
    assert any("the probe's LP carried" in m for m in messages)
    level = result.levels[0]
    assert level.status == "optimal"
    assert (level.bound - level.objective) <= 1e-4 * level.bound



def test_a_re_solve_after_a_refinement_starts_from_the_lp_of_the_solve_before(solve_verified, monkeypatch):
    # The ties level's counts "break" a service capacity (faked, at the first case's
    # municipality) and its plan is not proven, so the level is solved again in the finer
    # model. Its LP is the first solve's, carried (national-30k: 0.6 s where the whole LP took
    # 4.9 s again): a point of the finer program, with the first LP's optimum as its bound.
    real_solve_level = solve_module.solve_level
    solves: list[tuple[object, object, list]] = []  # the ties level's program, LP given, LPs solved
    faking: list[bool] = []

    def solve_level(backend, model, program, *args, terms, lp=None, on_lp=None, **kw):
        solved: list = []

        def seen(outcome):
            solved.append(outcome)
            on_lp(outcome)

        outcome = real_solve_level(backend, model, program, *args, terms=terms, lp=lp, on_lp=seen, **kw)
        faking[:] = ["ties" in terms and not solves]  # the next plan chosen is this solve's
        if "ties" in terms:
            solves.append((program, lp, solved))
            if len(solves) == 1:  # not proven: solved again
                outcome = replace(outcome, status="feasible", bound=outcome.bound + 1)
        return outcome

    monkeypatch.setattr(solve_module, "solve_level", solve_level)
    fake_breaks(monkeypatch, faking)
    no_other_repair(monkeypatch)
    settings = Settings.model_validate(demo_settings()).with_overrides(solver__time_limit=10.0)
    result = solve_verified(generate_tables(replace(NAMED["small"], cases=60, seed=1)), settings)
    assert len(solves) == 2
    (_, given_first, solved_first), (program, carried, solved_again) = solves
    assert given_first is None and len(solved_first) == 1  # the first solve solved its own LP
    assert carried is not None and carried.detail == "the LP before the refinement, carried into the model"
    assert carried.objective == solved_first[0].objective  # the first LP's optimum bounds the level
    assert keeps_every_row(program, carried.values)  # the finer model's service rows too
    assert solved_again == [carried]  # no LP of its own
    level = result.levels[1]
    assert level.bound is not None and level.objective <= level.bound <= carried.objective + 1e-9
