"""The ties level for the cases the plan above chose (allocator/same_cases.py): the choice of
cases (and so urgency) stays exactly as above, and where they go reaches the most ties those
cases allow, checked against every placement of them; whether the packing completes or a
search finishes it."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pandas as pd
import pytest
from conftest import cases_and_persons, family, muni, settings, single, tiny_tables

from allocator import build_problem
from allocator import same_cases as same_cases_module
from allocator.aggregate import aggregate
from allocator.backend import MathOptBackend, Outcome, _nonzeros
from allocator.extract import choose_cases
from allocator.model import build_model
from allocator.pack import Packing
from allocator.plans import complete_hint, hint_from_plan


def round_with_ties_away():
    """Four municipalities, nine persons of room for twelve; the plan above places its cases
    far from their ties (no tie honoured). The least urgent cases (L, G) are left out."""
    cases, persons = cases_and_persons(
        single("S1", 300, tie_municipality_id="A"), single("S2", 290, tie_municipality_id="A"),
        single("S3", 280, tie_municipality_id="B"), single("S4", 270),
        family("F1", [40, 38, 7], days=260, tie_municipality_id="C"),
        family("F2", [35, 5], days=250, tie_municipality_id="A"),
        single("L", 10, tie_municipality_id="D"), family("G", [30, 2], days=5, tie_municipality_id="D"),
    )
    problem = build_problem(tiny_tables([muni("A", 3), muni("B", 1), muni("C", 3), muni("D", 3)],
                                        cases, persons), settings())
    above = pd.DataFrame({"case_id": ["S1", "S2", "S3", "S4", "F1", "F2"],
                          "municipality_id": ["D", "C", "A", "B", "A", "C"]})
    return problem, above


def best_ties(problem, chosen: list[str]) -> int:
    """The most ties any placement of ``chosen`` within the resolutions honours (by trying all)."""
    cases = problem.cases.loc[chosen]
    room = problem.municipalities["resolution_persons"].to_dict()
    best = -1
    for where in itertools.product(list(room), repeat=len(chosen)):
        used = pd.Series(cases["size"].to_numpy(), index=list(where)).groupby(level=0).sum()
        if all(used[m] <= room[m] for m in used.index):
            best = max(best, int(sum(cases["tie_municipality_id"].to_numpy() == np.array(where))))
    return best


def ties_level(problem, above):
    """The model, the ties level's program and columns, the terms, the plan ``above`` (a full
    vector) and the lock on its urgency."""
    model = build_model(aggregate(problem), np.ones(len(problem.municipalities), dtype=bool))
    program, columns = model.program(["urgency", "ties"])
    terms = model.objective_terms()
    plan = complete_hint(model, hint_from_plan(model, above))
    return model, program, columns, terms, plan, [(terms["urgency"][columns], float(terms["urgency"] @ plan) - 1e-6)]


def place(problem, above, monkeypatch=None, stall: bool = False, around: bool = True):
    model, program, columns, terms, plan, locks = ties_level(problem, above)
    agg = model.agg
    if stall:
        # The packing stalls at once with nothing placed: the search places every case (with no
        # municipality around the packing, where no plan exists, the second search does, in
        # those within reach of the cases waiting).
        monkeypatch.setattr(same_cases_module, "pack_with_ties", lambda m, *a, **k: Packing(
            np.zeros(m.n_vars), False, np.full(m.agg.n_municipalities, around)))
    found = same_cases_module.place_same_cases(
        MathOptBackend(), model, program, columns, terms["ties"][columns], plan[columns],
        deadline=time.perf_counter() + 20, relative_gap=0.0, seed=0, locks=locks)
    assert found is not None and found.values is not None
    placed, broken = choose_cases(model, complete_hint(model, found.values))
    assert not len(broken)
    return model, plan, found, dict(zip(placed.index, agg.municipality_ids[placed.to_numpy()]))


@pytest.mark.parametrize("stall, around", [(False, True), (True, True), (True, False)],
                         ids=["packed", "searched", "searched-within-reach"])
def test_the_cases_above_reach_the_most_ties_they_allow(stall, around, monkeypatch):
    problem, above = round_with_ties_away()
    model, plan, found, placed = place(problem, above, monkeypatch, stall, around)
    # The same cases, so the same urgency; each municipality within its resolution.
    assert sorted(placed) == sorted(above["case_id"])
    urgency = model.objective_terms()["urgency"]
    assert float(urgency @ complete_hint(model, found.values)) == pytest.approx(float(urgency @ plan))
    size = problem.cases["size"]
    used = pd.Series({c: size[c] for c in placed}).groupby(pd.Series(placed)).sum()
    assert (used <= problem.municipalities["resolution_persons"].reindex(used.index)).all()
    # As many ties as the best placement of these cases (none in the plan above), and the LP
    # with the cases fixed bounds it.
    ties = sum(problem.cases.at[c, "tie_municipality_id"] == m for c, m in placed.items())
    best = best_ties(problem, list(above["case_id"]))
    assert ties == best >= 3
    assert found.lp.objective >= best - 1e-6
    assert not any(problem.cases.at[c, "tie_municipality_id"] == m
                   for c, m in zip(above["case_id"], above["municipality_id"]))


def test_within_reach_adds_where_a_waiting_case_lacks_only_one_thing():
    """K (a parent and a toddler) still waits. At P it lacks only persons (one left of two), at
    R nothing; at Q, where H (a parent and a toddler too) takes the one kindergarten place, it
    lacks persons and that place: a chain of moves could make room at P, not at Q in one step.
    The packing's own neighbourhood (here: none) is kept."""
    from allocator.pack import lp_pool_totals
    from allocator.same_cases import within_reach

    cases, persons = cases_and_persons(family("K", [30, 2], days=300), single("F", 200),
                                       family("H", [31, 3], days=100))
    munis = [muni("P", 2, capacity_kindergarten=5), muni("Q", 3, capacity_kindergarten=1),
             muni("R", 3, capacity_kindergarten=5)]
    problem = build_problem(tiny_tables(munis, cases, persons), settings())
    agg = aggregate(problem)
    model = build_model(agg, np.ones(agg.n_municipalities, dtype=bool))
    plan = pd.DataFrame({"case_id": ["F", "H"], "municipality_id": ["P", "Q"]})
    values = complete_hint(model, hint_from_plan(model, plan))
    totals = lp_pool_totals(model, values)
    totals[agg.free_cases.loc["K", "pool"]] += 1
    packing = Packing(values, False, np.zeros(agg.n_municipalities, dtype=bool))
    near = within_reach(model, packing, totals)
    assert [agg.municipality_ids[m] for m in np.flatnonzero(near)] == ["P", "R"]
    # With K placed nothing waits, and only the packing's neighbourhood is left.
    totals[agg.free_cases.loc["K", "pool"]] -= 1
    packing = Packing(values, False, np.array([False, True, False]))
    assert within_reach(model, packing, totals).tolist() == [False, True, False]


def test_an_lp_that_would_not_finish_in_its_time_is_not_started(monkeypatch):
    # national-30k, 60 s: the LP with the cases fixed failed after 2.5 s (and 1.6 s on the
    # level's second solve), time the packings after it use; the LPs before set the pace.
    model, program, columns, terms, plan, locks = ties_level(*round_with_ties_away())
    calls = []
    backend = MathOptBackend()
    monkeypatch.setattr(backend, "solve", lambda *a, **k: calls.append(k) or Outcome(
        "no_solution", None, None, None, 0.0, 0, "recorded"))

    def place_with_pace(seconds_for_the_lp: float):
        backend.lp_pace = seconds_for_the_lp / _nonzeros(program, locks)
        return same_cases_module.place_same_cases(
            backend, model, program, columns, terms["ties"][columns], plan[columns],
            deadline=time.perf_counter() + 10, relative_gap=0.0, seed=0, locks=locks)

    # With the cases fixed the LP takes FIXED_CASES_PACE of the level's own at most; it may have
    # LP_SHARE of the 10 s.
    fits = same_cases_module.LP_SHARE * 10 / same_cases_module.FIXED_CASES_PACE  # the level's LP's seconds
    assert place_with_pace(1.1 * fits) is None and calls == []  # would not do
    assert place_with_pace(0.9 * fits) is None and len(calls) == 1 and calls[0]["relax"]  # started
