"""Packing the LP's cases: where the LP chose whole cases and a packing exists, the packer
places them with every model row kept and reaches the LP bound; where none exists, it gives up."""

from __future__ import annotations

import dataclasses
import logging
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import cases_and_persons, dwelling, family, muni, settings, single, tiny_tables

from allocator import Settings, build_problem, solve
from allocator.aggregate import aggregate
from allocator.backend import CP_SAT_FIRST_PLAN_OPTIONS, MathOptBackend
from allocator.demo import NAMED, demo_settings, generate_tables
from allocator.model import build_model
from allocator.pack import Packer, lp_pool_totals, pack_lp_totals, pack_with_ties
from allocator.plans import complete_hint
from allocator.probe import likely_binding_services


def urgency_lp(problem):
    """The urgency level's model, program, objective (full length) and LP optimum (full length)."""
    agg = aggregate(problem)
    model = build_model(agg, likely_binding_services(agg))
    program, columns = model.program(["urgency"])
    objective = model.objective_terms()["urgency"]
    lp = MathOptBackend("highs").solve(program, objective[columns], time_limit=30, relative_gap=0.0, relax=True)
    assert lp.status == "optimal"
    values = np.zeros(model.n_vars)
    values[columns] = lp.values
    return model, program, columns, objective, values


def keeps_every_row(program, x: np.ndarray) -> bool:
    activity = program.matrix @ x
    tol = 1e-6
    return bool((activity >= program.row_lower - tol).all() and (activity <= program.row_upper + tol).all()
                and (x >= program.lower - tol).all() and (x <= program.upper + tol).all())


@pytest.fixture(scope="module")
def national_1k():
    tables = generate_tables(NAMED["national-1k"])
    return build_problem(tables, Settings.model_validate(demo_settings()))


def test_packs_the_lp_cases_of_a_national_round_at_the_lp_bound(national_1k):
    model, program, columns, objective, lp = urgency_lp(national_1k)
    totals = lp_pool_totals(model, lp)
    assert totals.sum() > 0 and np.allclose(totals, np.rint(totals), atol=1e-6)  # whole cases
    y_lp = lp[model.blocks["y"]]
    assert np.abs(y_lp - np.rint(y_lp)).max() > 1e-6  # the LP's placement itself is fractional
    packing = pack_lp_totals(model, y_lp, totals, deadline=float("inf"), seed=0)
    assert packing.complete
    plan = complete_hint(model, packing.values)
    y = plan[model.blocks["y"]]
    assert np.array_equal(y, np.rint(y))
    assert keeps_every_row(program, plan[columns])
    assert float(objective @ plan) == pytest.approx(float(objective @ lp), rel=1e-9)


def test_gives_up_when_no_packing_exists(solve_verified):
    # Two singles, one dwelling: "both placed" cannot be packed, whatever the moves.
    cases, persons = cases_and_persons(single("A", 200), single("B", 100))
    tables = tiny_tables([muni("0001", 5)], cases, persons, [dwelling("D1", "0001", 1)])
    problem = build_problem(tables, settings())
    model, _, _, _, lp = urgency_lp(problem)
    totals = lp_pool_totals(model, lp)
    assert totals.tolist() == [1]  # one pool, one case chosen
    stalled = pack_lp_totals(model, lp[model.blocks["y"]], totals + 1, deadline=float("inf"))
    assert not stalled.complete
    assert stalled.neighbourhood.tolist() == [True]  # persons to spare there
    # The LP's own choice packs, also with a part case more (its whole part is packed).
    for chosen in (totals, totals + 0.5):
        packing = pack_lp_totals(model, lp[model.blocks["y"]], chosen, deadline=float("inf"))
        assert packing.complete and packing.values[model.blocks["y"]].sum() == 1
    result = solve_verified(tables)
    assert result.plan["case_id"].tolist() == ["A"]
    assert result.levels[0].status == "optimal"


def test_swaps_a_family_and_a_single_to_free_room(solve_verified):
    # A: 3 persons, one dwelling; B: 2 persons, two dwellings. Start from the family at B and
    # a single at A: the second single fits nowhere (A has no dwelling, B no persons) until the
    # family and the single change places.
    cases, persons = cases_and_persons(family("X", [40, 38], days=300), single("Y", 200), single("Z", 100))
    dwellings = [dwelling("DA", "A", 2), dwelling("DB1", "B", 2), dwelling("DB2", "B", 2)]
    problem = build_problem(tiny_tables([muni("A", 3), muni("B", 2)], cases, persons, dwellings), settings())
    model, _, _, _, _ = urgency_lp(problem)
    agg = model.agg
    pool = agg.free_cases["pool"]
    a, b = (int(np.flatnonzero(agg.municipality_ids == m)[0]) for m in ("A", "B"))

    def column(case: str, m: int) -> int:
        """The case's pool where services are modelled, else its class."""
        p = int(pool[case])
        u = p if model.fine[m] else len(agg.pools) + int(agg.pools["cls"].iat[p])
        return int(np.flatnonzero((model.y_unit == u) & (model.y_muni == m))[0])

    start = np.zeros(len(model.y_unit))
    start[column("X", b)] = start[column("Y", a)] = 1
    totals = np.bincount(pool.to_numpy(), minlength=len(agg.pools)).astype(float)  # everyone
    packer = Packer(model, start, totals.astype(int), np.random.default_rng(0))
    assert packer.run(deadline=float("inf"))
    assert packer.iteration == 1  # one step: the swap, nobody sent back to wait
    y = packer.y
    assert y[column("X", a)] == 1 and y[column("Y", b)] == 2
    assert y.sum() == 3


def test_national_round_level_one_is_proven_and_verified(national_1k, solve_verified):
    tables = generate_tables(NAMED["national-1k"])
    result = solve_verified(tables, Settings.model_validate(demo_settings()).with_overrides(
        objective__priorities=[["urgency"]]))
    level = result.levels[0]
    assert level.status == "optimal"
    assert level.bound - level.objective <= 1e-4 * level.bound


@pytest.mark.parametrize(("name", "seed", "cp_sat"), [("national-2k", 7, True), ("national-1k", 5, False)])
def test_a_stalled_packing_is_finished_by_cp_sat_or_else_by_highs(name, seed, cp_sat, solve_verified, caplog,
                                                                    monkeypatch):
    """national-2k seed 7: the packing leaves two singles waiting and CP-SAT finds a plan within
    a quarter of the gap; national-1k seed 5: the LP is not tight there, CP-SAT's best plan in
    the neighbourhood is short of the gap, and HiGHS's MIP, started from it, finishes. Either
    way the level is proven and the plan verified. (CP-SAT's time limit is lifted: on a slow
    machine it could otherwise run out first.)"""
    monkeypatch.setattr(sys.modules["allocator.level"], "FIND_PLAN_LP_TIMES", 1000.0)
    tables = generate_tables(dataclasses.replace(NAMED[name], seed=seed))
    with caplog.at_level(logging.INFO, logger="allocator"):
        result = solve_verified(tables, Settings.model_validate(demo_settings()).with_overrides(
            objective__priorities=[["urgency"]]))
    messages = [r.getMessage() for r in caplog.records]
    finished = [m for m in messages if "packing finished by a search" in m]
    assert len(finished) == 1 and ("CP-SAT: a plan at the target" in finished[0]) == cp_sat
    assert any("no plan within the gap in the packing's neighbourhood by CP-SAT" in m for m in messages) != cp_sat
    assert result.levels[0].status == "optimal"
    assert result.solver.endswith("+ CP-SAT")  # its plan finished the packing, or started HiGHS's search
    # Urgency is the only level: the first plan at the target is the answer, sought with these.
    assert result.provenance()["solver_parameters"]["cp_sat_options"] == CP_SAT_FIRST_PLAN_OPTIONS
    # Solved again, the same plan: CP-SAT runs one worker, whose search does not depend on timing.
    again = solve(build_problem(tables, result.settings))
    pd.testing.assert_frame_equal(again.plan, result.plan)


def test_a_complete_packing_short_of_the_bound_is_finished_in_a_wider_neighbourhood(solve_verified, caplog,
                                                                                      mip_searches, monkeypatch):
    """national-2k seed 60, packed with seed 1: every case the LP chose whole is placed, and the LP
    chose part of a case. Around the packing, with one municipality for that pool, no plan
    reaches the LP bound; with ``PARTIAL_NEIGHBOURS`` one does, and the full model (3.5 s before)
    is not needed. The level is proven and the plan verified."""
    monkeypatch.setattr(sys.modules["allocator.level"], "FIND_PLAN_LP_TIMES", 1000.0)
    tables = generate_tables(dataclasses.replace(NAMED["national-2k"], seed=60))
    with caplog.at_level(logging.INFO, logger="allocator"):
        result = solve_verified(tables, Settings.model_validate(demo_settings()).with_overrides(
            objective__priorities=[["urgency"]], solver__seed=1))
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("  LP totals packed") for m in messages)  # complete, not "partly packed"
    finished = [m for m in messages if "packing finished by a search" in m]
    assert len(finished) == 2
    assert "CP-SAT: a plan at the target" not in finished[0] and "CP-SAT: a plan at the target" in finished[1]
    assert "full" not in mip_searches
    assert result.levels[0].status == "optimal"


def test_a_packing_stalled_with_many_waiting_is_finished_by_highs_in_a_wider_neighbourhood(
        solve_verified, caplog, mip_searches, monkeypatch):
    """national-2k seed 38: the packing stalls with 39 single adults waiting, more than CP-SAT's
    finish is for. HiGHS's MIP searches at once, with ``STALLED_NEIGHBOURS`` municipalities per
    waiting pool, and reaches the LP bound there: no rounding box, no full model (with one
    municipality per pool, after CP-SAT's 0.6 s, the search stopped at 8,434.8 of 8,451.9 and the
    rounding box took 1.7 s more). The level is proven and the plan verified."""
    calls = []
    real_find = MathOptBackend.find_plan
    monkeypatch.setattr(MathOptBackend, "find_plan", lambda self, *a, **k: calls.append(1) or real_find(self, *a, **k))
    tables = generate_tables(dataclasses.replace(NAMED["national-2k"], seed=38))
    with caplog.at_level(logging.INFO, logger="allocator"):
        result = solve_verified(tables, Settings.model_validate(demo_settings()).with_overrides(
            objective__priorities=[["urgency"]]))
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("  LP totals partly packed") for m in messages)
    finished = [m for m in messages if "packing finished by a search" in m]
    assert len(finished) == 1
    assert any("39 cases the LP chose wait" in m for m in messages)
    assert not calls  # CP-SAT's finish is not tried
    assert mip_searches == ["bounded"]  # the neighbourhood's search only: no rounding box, no full model
    level = result.levels[0]
    assert level.status == "optimal" and level.bound - level.objective <= 1e-4 * level.bound


def test_the_wider_neighbourhood_adds_municipalities_only_for_pools_chosen_in_part(national_1k):
    model, _, _, _, values = urgency_lp(national_1k)
    packer = Packer(model, values[model.blocks["y"]], np.floor(lp_pool_totals(model, values) + 1e-6).astype(int),
                    np.random.default_rng(0))
    packer.run(float("inf"))
    packer.waiting.clear()  # nothing waiting: only the pools passed as chosen in part count
    spare = packer.room.persons >= 1
    assert (packer.neighbourhood() == spare).all()
    # A pool that would fit but for persons at several municipalities without persons to spare:
    # the first of them, or the first three.
    where = {p: model.y_muni[packer._short_of_persons(packer._candidates(p))] for p in range(len(model.agg.pools))}
    pool, munis = next((p, m) for p, m in where.items() if len(m) >= 3 and not spare[m[:3]].any())
    one, three = (packer.neighbourhood(np.array([pool]), n) & ~spare for n in (1, 3))
    assert np.flatnonzero(one).tolist() == [munis[0]]
    assert sorted(np.flatnonzero(three).tolist()) == sorted(munis[:3].tolist())


def test_refill_after_a_service_broke_places_the_case_taken_out():
    # Both families have a school child; each municipality has one school place. A plan that
    # counted classes put both at A; the case taken out (F2) is packed again, at B.
    from allocator.plans import hint_from_plan
    from allocator.solve import _refill

    cases, persons = cases_and_persons(family("F1", [40, 9], days=300), family("F2", [40, 8], days=100))
    munis = [muni("A", 10, capacity_school=1), muni("B", 10, capacity_school=1)]
    problem = build_problem(tiny_tables(munis, cases, persons), settings())
    agg = aggregate(problem)
    model = build_model(agg, np.ones(agg.n_municipalities, dtype=bool))
    kept = complete_hint(model, hint_from_plan(model, pd.DataFrame({"case_id": ["F1"], "municipality_id": ["A"]})))
    totals = np.bincount(agg.free_cases["pool"].to_numpy(), minlength=len(agg.pools)).astype(float)
    objective = model.objective_terms()["urgency"]
    found, plan, value = _refill(model, kept, totals, objective, seed=0)
    assert dict(zip(found.index, agg.municipality_ids[found.to_numpy()])) == {"F1": "A", "F2": "B"}
    assert value == pytest.approx(float(objective @ plan)) and value > float(objective @ kept)


def test_packing_with_ties_never_moves_a_counted_tie():
    # A holds the singles T (tied to A) and S; the family F may only go to A (excluded at B)
    # and needs both seats. Without the tie, pushing both singles out to B packs everyone; with
    # T's tie counted at A, the packer may not take T's seat, so T stays honoured and F waits.
    cases, persons = cases_and_persons(single("T", 300, tie_municipality_id="A"), single("S", 100),
                                       family("F", [40, 38], days=30))
    tables = tiny_tables([muni("A", 2), muni("B", 2)], cases, persons,
                         exclusions=[{"case_id": "F", "municipality_id": "B", "reason": "declined"}])
    agg = aggregate(build_problem(tables, settings()))
    model = build_model(agg, np.ones(agg.n_municipalities, dtype=bool))
    pool = agg.free_cases["pool"]
    a = int(np.flatnonzero(agg.municipality_ids == "A")[0])
    singles = int(np.flatnonzero((model.y_unit == int(pool["T"])) & (model.y_muni == a))[0])
    start = np.zeros(len(model.y_unit))
    start[singles] = 2
    totals = np.bincount(pool.to_numpy(), minlength=len(agg.pools)).astype(float)  # everyone
    tie = (model.a_unit == int(pool["T"])) & (model.a_muni == a)

    free = pack_lp_totals(model, start, totals, deadline=float("inf"))
    assert free.complete and free.values[model.blocks["y"]][singles] == 0  # both singles moved

    a_lp = np.where(tie, 1.0, 0.0)
    tied = pack_with_ties(model, start, a_lp, totals, deadline=float("inf"))
    assert not tied.complete
    assert tied.values[model.blocks["y"]][singles] >= 1
    assert tied.values[model.blocks["a"]].sum() == 1  # T honoured at A


def test_packing_with_ties_fills_the_room_left_only_when_asked():
    # T (tied to A) is packed; S fits in the room left at B and is the most urgent case left.
    cases, persons = cases_and_persons(single("T", 300, tie_municipality_id="A"), single("S", 100))
    agg = aggregate(build_problem(tiny_tables([muni("A", 1), muni("B", 1)], cases, persons), settings()))
    model = build_model(agg, np.ones(agg.n_municipalities, dtype=bool))
    pool = agg.free_cases["pool"]
    a = int(np.flatnonzero(agg.municipality_ids == "A")[0])
    at_a = int(np.flatnonzero((model.y_unit == int(pool["T"])) & (model.y_muni == a))[0])
    start = np.zeros(len(model.y_unit))
    start[at_a] = 1
    totals = np.zeros(len(agg.pools))
    totals[int(pool["T"])] = 1  # one case of the singles' pool: T, the most urgent
    a_lp = np.where((model.a_unit == int(pool["T"])) & (model.a_muni == a), 1.0, 0.0)

    plain = pack_with_ties(model, start, a_lp, totals, deadline=float("inf"))
    filled = pack_with_ties(model, start, a_lp, totals, deadline=float("inf"), fill=True)
    assert plain.complete and filled.complete
    assert plain.values[model.blocks["y"]].sum() == 1 and filled.values[model.blocks["y"]].sum() == 2
    assert filled.values[model.blocks["y"]][at_a] == 1 and filled.values[model.blocks["a"]].sum() == 1


def test_packing_with_ties_fills_the_room_left_where_a_few_cases_wait():
    # A has room for one: the tied T, kept there. W (single) is excluded at B, so it waits. S
    # and R are families of two of one pool; S, the more urgent and in the totals, is packed at
    # B. Asked to fill, the packing with one case waiting still places R in B's room left (the
    # caller checks the locks); not asked, it leaves the room empty.
    cases, persons = cases_and_persons(single("T", 300, tie_municipality_id="A"), single("W", 200),
                                       family("S", [40, 38], days=100), family("R", [41, 39], days=10))
    tables = tiny_tables([muni("A", 1), muni("B", 4)], cases, persons,
                         exclusions=[{"case_id": "W", "municipality_id": "B", "reason": "declined"}])
    agg = aggregate(build_problem(tables, settings()))
    model = build_model(agg, np.ones(agg.n_municipalities, dtype=bool))
    pool = agg.free_cases["pool"]
    assert pool["S"] == pool["R"]
    a = int(np.flatnonzero(agg.municipality_ids == "A")[0])
    start = np.zeros(len(model.y_unit))
    start[int(np.flatnonzero((model.y_unit == int(pool["T"])) & (model.y_muni == a))[0])] = 1
    totals = np.bincount(pool[["T", "W", "S"]].to_numpy(), minlength=len(agg.pools)).astype(float)
    a_lp = np.where((model.a_unit == int(pool["T"])) & (model.a_muni == a), 1.0, 0.0)

    plain = pack_with_ties(model, start, a_lp, totals, deadline=float("inf"))
    filled = pack_with_ties(model, start, a_lp, totals, deadline=float("inf"), fill=True)
    assert not plain.complete and not filled.complete and plain.waiting == filled.waiting == 1
    assert plain.values[model.blocks["y"]].sum() == 2  # T at A, S at B
    assert filled.values[model.blocks["y"]].sum() == 3  # and R at B, beside S
    assert filled.values[model.blocks["a"]].sum() == 1  # T still honoured at A


def test_pricing_stops_early_only_where_the_choice_is_the_same(national_1k):
    """``Packer._cost`` skips finding where units have room once a move costs more than the best
    so far: the packing must be the very one of pricing every move in full."""
    model, program, columns, objective, lp = urgency_lp(national_1k)
    totals = lp_pool_totals(model, lp)
    y_lp = lp[model.blocks["y"]]

    class PricingInFull(Packer):
        priced_in_full = 0

        def _cost(self, plan, open_at, noise, best):
            PricingInFull.priced_in_full += 1
            return super()._cost(plan, open_at, noise, None)

    packings = []
    for packer_class in (Packer, PricingInFull):
        packer = packer_class(model, y_lp, np.floor(totals + 1e-6).astype(int), np.random.default_rng(3))
        packer.run(float("inf"))
        packings.append(packer.values())
    assert PricingInFull.priced_in_full > 100  # the packing made way for cases many times
    assert np.array_equal(packings[0], packings[1])
