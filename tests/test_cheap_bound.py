"""The ties level's bound without an LP (allocator/cheap_bound.py): the tied cases that fit
where they are tied, by persons and by places for minors. It must hold for every plan, so it is
checked against proven optima; and where a plan reaches it, the level is proven without an LP."""

from __future__ import annotations

import pytest
from conftest import cases_and_persons, family, muni, settings, single, tiny_tables
from test_all_levels import skip_every_lp_with_a_lock

from allocator import build_problem, solve
from allocator.aggregate import aggregate
from allocator.cheap_bound import level_bound, ties_bound
from allocator.demo import InstanceSpec, demo_settings, generate_tables
from allocator.model import build_model
from allocator.settings import Settings


def model_of(tables, the_settings=None):
    agg = aggregate(build_problem(tables, the_settings or settings()))
    return build_model(agg)


def test_ties_that_do_not_fit_together_where_they_are_tied_are_not_counted():
    # A has room for 2 persons: the single and one of the families of two tied there fit one at
    # a time. B takes one unaccompanied minor: of the two tied there (one needs step-free
    # housing, so they are counted apart), one. C's tied single is excluded there: it cannot
    # count. D has room for all three tied to it.
    cases, persons = cases_and_persons(
        family("F1", [35, 36], tie_municipality_id="A"), family("F2", [40, 41], tie_municipality_id="A"),
        single("S1", tie_municipality_id="A"),
        single("M1", category="unaccompanied_minor", tie_municipality_id="B"),
        single("M2", category="unaccompanied_minor", needs_step_free="true", tie_municipality_id="B"),
        single("S2", tie_municipality_id="C"), single("S3"),
        single("S4", tie_municipality_id="D"), family("F3", [30, 31], tie_municipality_id="D"),
        family("F4", [30, 31, 2], tie_municipality_id="D"))
    for person in persons:
        if person["case_id"] in ("M1", "M2"):
            person["age"] = "16"
    tables = tiny_tables([muni("A", 2), muni("B", 10, 1), muni("C", 5), muni("D", 6)], cases, persons,
                         exclusions=[{"case_id": "S2", "municipality_id": "C", "reason": "test"}])
    model = model_of(tables)
    assert model.upper[model.blocks["a"]].sum() == 2 + 2 + 3  # each tie alone fits where it is tied
    assert ties_bound(model) == 1 + 1 + 3


def test_the_bound_is_only_for_a_level_of_ties():
    cases, persons = cases_and_persons(single("S1", tie_municipality_id="A"), single("S2"))
    model = model_of(tiny_tables([muni("A", 3)], cases, persons))
    terms = model.objective_terms()
    program, columns = model.program(["ties", "urgency"])
    assert level_bound(model, columns, 2.0 * terms["ties"][columns]) == 2.0
    assert level_bound(model, columns, (terms["ties"] + terms["urgency"])[columns]) is None
    assert level_bound(model, columns, terms["urgency"][columns]) is None


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_bound_holds_above_the_proven_ties(seed):
    tables = generate_tables(InstanceSpec(cases=60, seed=seed))
    the_settings = Settings.model_validate(demo_settings()).with_overrides(
        solver__time_limit=30.0, objective__priorities=[["urgency"], ["ties"]])
    result = solve(build_problem(tables, the_settings))
    ties = result.levels[1]
    assert ties.status == "optimal"
    assert ties.objective <= ties_bound(model_of(tables, the_settings)) + 1e-9


def test_a_plan_at_the_bound_proves_the_ties_level_without_an_lp(solve_verified, monkeypatch):
    # Room for everyone: every tie can be honoured, the moves honour them all, and the bound
    # (the tied cases that fit) proves it, with no LP below level 1.
    cases, persons = cases_and_persons(
        single("S1", 200, tie_municipality_id="B"), single("S2", 100, tie_municipality_id="B"),
        family("F1", [30, 31], 150, tie_municipality_id="A"), single("S3", 50))
    started = skip_every_lp_with_a_lock(monkeypatch)
    result = solve_verified(tiny_tables([muni("A", 4), muni("B", 4)], cases, persons),
                            settings(objective__priorities=[["urgency"], ["ties"]]))
    assert not started
    ties = result.levels[1]
    assert ties.objective == ties.bound == 3.0 and ties.status == "optimal"
