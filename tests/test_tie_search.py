"""The ties level's search around the ties its LP honours and the plan does not
(allocator/tie_search.py): it changes only the municipalities short of the LP's ties and those
with persons to spare, keeps the urgency lock, and finds the chain of moves that honours them."""

from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np
import pandas as pd
from conftest import cases_and_persons, family, muni, settings, single, tiny_tables

from allocator import build_problem
from allocator.aggregate import aggregate
from allocator.backend import MathOptBackend
from allocator.extract import choose_cases
from allocator.model import build_model
from allocator.level import _search_ties
from allocator.plans import complete_hint, hint_from_plan
from allocator.tie_search import search_around_ties


def round_with_a_chain_to_the_ties(the_settings=None):
    """Seven places for six cases; the plan above honours none of the three ties (S1 and S2
    to A, S3 to B). Honouring them takes a chain: S4 leaves A for C, S5 leaves B for C, S2
    leaves C for A. E is full, with no tie to it: its count stays."""
    cases, persons = cases_and_persons(
        single("S1", 300, tie_municipality_id="A"), single("S2", 290, tie_municipality_id="A"),
        single("S3", 280, tie_municipality_id="B"), single("S4", 270), single("S5", 265), single("X", 260))
    tables = tiny_tables([muni("A", 2), muni("B", 2), muni("C", 2), muni("E", 1)], cases, persons)
    above = pd.DataFrame({"case_id": ["S1", "S2", "S3", "S4", "S5", "X"],
                          "municipality_id": ["B", "C", "A", "A", "B", "E"]})
    return tables, the_settings or settings(), above


class TiesLevel(NamedTuple):
    """The ties level of a round below the plan ``above``: its model, program, the plan above
    (a full vector), the urgency lock, the ties objective and the level's LP."""

    model: object
    program: object
    columns: np.ndarray
    plan: np.ndarray
    locks: list
    ties: np.ndarray
    lp: object


def ties_level(agg, above: pd.DataFrame, fine: np.ndarray) -> TiesLevel:
    model = build_model(agg, fine)
    program, columns = model.program(["urgency", "ties"])
    terms = model.objective_terms()
    plan = complete_hint(model, hint_from_plan(model, above))
    urgency, ties = terms["urgency"][columns], terms["ties"][columns]
    locks = [(urgency, float(urgency @ plan[columns]) - 1e-6)]
    lp = MathOptBackend().solve(program, ties, locks=locks, time_limit=10, relative_gap=0.0, relax=True)
    return TiesLevel(model, program, columns, plan, locks, ties, lp)


def test_the_search_honours_the_ties_by_a_chain_and_changes_only_its_neighbourhood():
    tables, the_settings, above = round_with_a_chain_to_the_ties()
    problem = build_problem(tables, the_settings)
    agg = aggregate(problem)
    model, program, columns, plan, locks, ties, lp = ties_level(agg, above, np.ones(agg.n_municipalities, dtype=bool))
    urgency = locks[0][0]
    backend = MathOptBackend()
    lp_full = np.zeros(model.n_vars)
    lp_full[columns] = lp.values
    assert float(ties @ plan[columns]) == 0 and lp.objective > 2.5

    found, near, short = search_around_ties(backend, model, program, columns, ties, lp_full, plan,
                                            target=np.floor(lp.objective + 1e-6), time_limit=10, locks=locks,
                                            seed=0)

    ids = list(agg.municipality_ids)
    assert [ids[m] for m in np.flatnonzero(near)] == ["A", "B", "C"]  # A, B short of the LP; C has room
    assert short == 2
    assert found.values is not None and found.objective == 3
    values = np.zeros(model.n_vars)
    values[columns] = found.values
    values = complete_hint(model, values)
    assert float(urgency @ values[columns]) >= locks[0][1]
    placed, broken = choose_cases(model, values)
    assert not len(broken)
    where = dict(zip(placed.index, agg.municipality_ids[placed.to_numpy()]))
    assert {c: where[c] for c in ("S1", "S2", "S3")} == {"S1": "A", "S2": "A", "S3": "B"}
    # The fixed municipality keeps its count (cases of one pool are interchangeable: which of
    # them is there is chosen after); every case is still placed.
    at_e = model.y_muni == ids.index("E")
    y = model.blocks["y"]
    assert values[y][at_e].sum() == plan[y][at_e].sum() == 1
    assert len(where) == 6 and list(where.values()).count("E") == 1
    used = pd.Series(problem.cases.loc[list(where), "size"].to_numpy(), index=list(where.values()))
    assert (used.groupby(level=0).sum() <= problem.municipalities["resolution_persons"]).all()


def test_where_the_moves_leave_the_ties_away_the_level_is_proven_by_the_search(solve_verified, mip_searches,
                                                                               monkeypatch):
    """The ties level of the same round, with its packings finding nothing and its moves
    leaving every tie away: the search reaches the LP bound, so no full model runs."""
    level_module = sys.modules["allocator.level"]
    tables, the_settings, above = round_with_a_chain_to_the_ties(
        settings(objective__priorities=[["urgency"], ["ties"]]))
    def ties_away(model, columns, objective, hint, locks, deadline):
        return complete_hint(model, hint_from_plan(model, above))[columns]

    monkeypatch.setattr(level_module, "_pack_ties", lambda *a, **k: (None, False))
    monkeypatch.setattr(level_module, "_same_cases", lambda *a, **k: (None, False))
    monkeypatch.setattr(level_module, "_move_ties", ties_away)
    result = solve_verified(tables, the_settings)
    level = result.levels[1]
    assert level.status == "optimal" and level.objective == level.bound == 3
    assert mip_searches == []
    assert dict(zip(result.plan["case_id"], result.plan["municipality_id"])).items() >= \
        {"S1": "A", "S2": "A", "S3": "B"}.items()


def test_a_search_plan_that_breaks_a_service_capacity_goes_back_as_counts():
    """The chain to the three ties must send K (a parent and a toddler) to C, which has no
    kindergarten place. Where C's services are not modelled (class slots there), the search's
    counts honour all three ties and break that capacity: they go back flagged, for the caller
    to model C and solve again, not as a plan."""
    cases, persons = cases_and_persons(
        single("S1", 300, tie_municipality_id="A"), single("S2", 290, tie_municipality_id="A"),
        single("S3", 280, tie_municipality_id="B"), family("K", [30, 2], days=270), single("S5", 265),
        single("X", 260))
    munis = [muni("A", 3, capacity_kindergarten=5), muni("B", 2, capacity_kindergarten=5),
             muni("C", 3, capacity_kindergarten=0), muni("E", 1, capacity_kindergarten=5)]
    problem = build_problem(tiny_tables(munis, cases, persons), settings())
    above = pd.DataFrame({"case_id": ["S1", "S2", "S3", "K", "S5", "X"],
                          "municipality_id": ["B", "C", "A", "A", "B", "E"]})
    agg = aggregate(problem)
    model, program, columns, plan, locks, ties, lp = ties_level(agg, above, np.array(
        [m != "C" for m in agg.municipality_ids]))
    backend = MathOptBackend()

    found, breaks = _search_ties(backend, model, program, columns, ties, lp.values, plan[columns], locks,
                                 lp.objective, 10.0, 0, None)

    assert breaks and float(ties @ found) == 3
    values = np.zeros(model.n_vars)
    values[columns] = found
    _, broken = choose_cases(model, complete_hint(model, values))
    assert [agg.municipality_ids[m] for m in broken] == ["C"]
    # Modelled everywhere, the same search keeps C's capacity and so honours fewer ties.
    model, program, columns, plan, locks, ties, lp = ties_level(agg, above, np.ones(agg.n_municipalities, dtype=bool))
    found, breaks = _search_ties(backend, model, program, columns, ties, lp.values, plan[columns], locks,
                                 lp.objective, 10.0, 0, None)
    assert not breaks and found is not None and float(ties @ found) == 2
