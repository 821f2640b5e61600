"""Refining where class counts broke a service capacity: which municipalities get service
rows, and mending the plan below the first level, where taking cases out would cost a lock."""

from __future__ import annotations

import numpy as np
import pytest
import pandas as pd
from conftest import cases_and_persons, family, muni, settings, single, tiny_tables

from allocator import build_problem
from allocator.aggregate import aggregate
from allocator.backend import MathOptBackend
from allocator.extract import over_capacity, services_used
from allocator.model import build_model
from allocator.level import _full_model_from_repair
from allocator.plans import plan_frame, values_of
from allocator.solve import _mend_around, too_small_for_a_case


def coarse_model(made, munis, fine=()):
    cases, persons = cases_and_persons(*made)
    agg = aggregate(build_problem(tiny_tables(munis, cases, persons), settings()))
    is_fine = np.zeros(agg.n_municipalities, dtype=bool)
    is_fine[list(fine)] = True
    return agg, build_model(agg, is_fine)


def test_a_case_too_heavy_for_small_municipalities_makes_them_all_modelled_at_once():
    # Three toddlers break A's one kindergarten place; B (2 places) could not take the family
    # either, so it is modelled at once; C and D (5 places) could. The other family (three at
    # school) shares A but breaks no school capacity there, so D's one school place is no reason.
    heavy = family("H", [30, 2, 3, 4], days=100)
    light = family("L", [30, 10, 11, 12], days=50)  # the same class: only service use differs
    agg, model = coarse_model([heavy, light], [muni("A", 10, capacity_kindergarten=1, capacity_school=5),
                                               muni("B", 10, capacity_kindergarten=2, capacity_school=5),
                                               muni("C", 10, capacity_kindergarten=5, capacity_school=5),
                                               muni("D", 10, capacity_kindergarten=5, capacity_school=1)])
    assert agg.pools["cls"].nunique() == 1
    at = pd.Series({"H": 0, "L": 0})
    broken = np.flatnonzero((services_used(agg, at) > agg.services_left).any(axis=1))
    assert broken.tolist() == [0]
    assert too_small_for_a_case(model, at, broken).tolist() == [True, True, False, False]


def test_a_plan_broken_below_the_first_level_is_mended_where_it_broke():
    # The urgency level placed the family with three toddlers at A, which has one kindergarten
    # place: taking it out costs urgency. With A modelled, the mend moves it to C (5 places)
    # and keeps urgency and B's tie.
    made = [family("H", [30, 2, 3, 4], days=300), single("S", 100, tie_municipality_id="B"),
            single("T", 50)]
    munis = [muni("A", 4, capacity_kindergarten=1), muni("B", 4, capacity_kindergarten=5),
             muni("C", 4, capacity_kindergarten=5)]
    agg, model = coarse_model(made, munis, fine=[0])
    broken_plan = pd.Series({"H": 0, "S": 1, "T": 1})
    assert over_capacity(agg, broken_plan).tolist() == [0]
    terms = model.objective_terms()
    weighted = [terms["urgency"], terms["ties"]]
    lock = float(weighted[0] @ values_of(model, broken_plan))
    kept = broken_plan.drop("H")
    assert weighted[0] @ values_of(model, kept) < lock - 1  # the plan without H misses the lock
    mended = _mend_around(MathOptBackend(), model, [["urgency"], ["ties"]], weighted, [lock - 1e-6], 1,
                          plan_frame(agg, kept), pd.Index(["H"]), np.array([0]), settings(), 10.0)
    assert mended is not None
    found, values, value = mended
    assert found["H"] == 2 and found["S"] == 1
    assert not len(over_capacity(agg, found))
    assert weighted[0] @ values >= lock - 1e-6 and value == 1.0


def test_a_repaired_plan_that_keeps_the_locks_but_lost_a_tie_is_mended():
    # The ties level's counts put the family with three toddlers at A (one kindergarten place)
    # and T at its tie B. Packed back with A modelled, the family went to B and pushed T to C:
    # every lock kept, but no tie. Mending around where cases were taken out or packed back
    # (A, B and C) moves the family to C and T back to B.
    made = [family("H", [30, 2, 3, 4], days=300), single("T", 100, tie_municipality_id="B")]
    munis = [muni("A", 4, capacity_kindergarten=1), muni("B", 4, capacity_kindergarten=5),
             muni("C", 4, capacity_kindergarten=5)]
    agg, model = coarse_model(made, munis, fine=[0])
    broken_plan, repaired = pd.Series({"H": 0, "T": 1}), pd.Series({"H": 1, "T": 2})
    terms = model.objective_terms()
    weighted = [terms["urgency"], terms["ties"]]
    lock = float(weighted[0] @ values_of(model, broken_plan))
    assert weighted[0] @ values_of(model, repaired) >= lock - 1e-6 and weighted[1] @ values_of(model, repaired) == 0
    mended = _mend_around(MathOptBackend(), model, [["urgency"], ["ties"]], weighted, [lock - 1e-6], 1,
                          plan_frame(agg, repaired), pd.Index(["H", "T"]), np.array([0, 1, 2]), settings(), 10.0)
    assert mended is not None
    found, values, value = mended
    assert found.to_dict() == {"H": 2, "T": 1} and value == 1.0
    assert not len(over_capacity(agg, found))


def test_a_re_solve_whose_plan_before_was_proven_goes_straight_to_the_full_model():
    # From the repaired plan (here the empty plan) with the bound of the solve before: the full
    # model's plan, and the lower of the two bounds. Without an LP pace to tell whether its root
    # fits in the time, or when it does not, the level is solved as usual (None).
    made = [family("H", [30, 2, 3, 4], days=300), single("S", 100, tie_municipality_id="B"),
            single("T", 50)]
    munis = [muni("A", 4, capacity_kindergarten=1), muni("B", 4, capacity_kindergarten=5),
             muni("C", 4, capacity_kindergarten=5)]
    agg, model = coarse_model(made, munis, fine=[0, 1, 2])
    program, columns = model.program(["urgency"])
    objective = model.objective_terms()["urgency"][columns]
    empty = np.zeros(program.n_vars)
    common = dict(locks=[], seed=0, threads=1, stop=None)
    backend = MathOptBackend()
    assert _full_model_from_repair(backend, program, objective, empty, 1e6, 10.0, 1e-4, None, common) is None
    backend.lp_pace = 1.0  # a second per nonzero: no root fits in 10 s
    assert _full_model_from_repair(backend, program, objective, empty, 1e6, 10.0, 1e-4, None, common) is None
    backend.lp_pace = 1e-9
    outcome = _full_model_from_repair(backend, program, objective, empty, 1e6, 10.0, 1e-4, None, common)
    assert outcome is not None and outcome.status == "optimal"
    assert outcome.objective > 0 and outcome.bound < 1e6  # the full model's bound, not the loose one
    assert outcome.objective == pytest.approx(float(objective @ outcome.values))
    tight = _full_model_from_repair(backend, program, objective, empty, outcome.objective, 10.0, 1e-4, None, common)
    assert tight.bound <= outcome.objective + 1e-9 and tight.status == "optimal"
