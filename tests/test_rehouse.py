"""Moving the cases of a plan for housing fit and spread: the same cases stay placed, tied cases
at their tie stay there, the cost never rises, and the plan keeps every rule (checked by the
independent verifier)."""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pandas as pd
import pytest
from conftest import cases_and_persons, family, muni, settings, single, tiny_tables

from allocator import Settings, build_problem, solve, verify_plan, write_problem
from allocator.aggregate import aggregate
from allocator.backend import CP_SAT_FIRST_PLAN_OPTIONS, MathOptBackend
from allocator.demo import NAMED, demo_settings, generate_tables
from allocator.extract import choose_cases, choose_dwellings, over_capacity
from allocator.model import build_model
import allocator.rehouse as rehouse_module
from allocator.rehouse import Rehouser, _matched_group, _tie_group, mend_services, rehouse
from allocator.level import _concrete_or_mended
from allocator.plans import values_of


@pytest.fixture(scope="module")
def round_1k():
    tables = generate_tables(NAMED["national-1k"])
    raw = demo_settings()
    raw.setdefault("solver", {})["time_limit"] = 20.0
    raw.setdefault("objective", {})["priorities"] = [["urgency"], ["ties"]]
    settings = Settings.model_validate(raw)
    problem = build_problem(tables, settings)
    return tables, settings, problem, solve(problem)


def test_moving_cases_lowers_the_waste_and_keeps_every_rule(round_1k, tmp_path):
    tables, settings, problem, result = round_1k
    agg = aggregate(problem)
    model = build_model(agg)
    plan = result.plan[~result.plan["pinned"]]
    munis = pd.Index(agg.municipality_ids)
    start = pd.Series(munis.get_indexer(plan["municipality_id"]), index=plan["case_id"].to_numpy(), dtype=int)
    before = Rehouser(model, start, 1.0, 1.0)
    cost_before = sum(before.totals())

    moved, waste, spread = rehouse(model, start, 1.0, 1.0, time.perf_counter() + 5.0, seed=0)

    assert set(moved.index) == set(start.index)  # the same cases: urgency unchanged
    tie = agg.free_cases.loc[start.index, "tie"].to_numpy()
    at_tie = (tie >= 0) & (tie == start.to_numpy())
    assert np.array_equal(moved.to_numpy()[at_tie], start.to_numpy()[at_tie])  # ties kept
    assert waste + spread < cost_before  # national rounds always leave room to improve
    placed = pd.DataFrame({"municipality": moved, "dwelling_id": ""})
    dwellings = choose_dwellings(model, placed)
    out = pd.DataFrame({"case_id": moved.index, "municipality_id": agg.municipality_ids[moved.to_numpy()],
                        "dwelling_id": dwellings.reindex(moved.index).to_numpy(), "pinned": False})
    folder = write_problem(tables, tmp_path / "problem", settings.model_dump(mode="json"))
    out.to_csv(tmp_path / "plan.csv", index=False)
    assert verify_plan(folder, tmp_path / "plan.csv") == []


def _start(result, agg) -> pd.Series:
    plan = result.plan[~result.plan["pinned"]]
    munis = pd.Index(agg.municipality_ids)
    return pd.Series(munis.get_indexer(plan["municipality_id"]), index=plan["case_id"].to_numpy(), dtype=int)


def test_a_matched_neighbourhood_joins_a_surplus_to_the_shortage(round_1k):
    _, _, problem, result = round_1k
    agg = aggregate(problem)
    model = build_model(agg)
    search = Rehouser(model, _start(result, agg), 1.0, 1.0)
    m1, m2 = (int(m) for m in np.unique(search.at)[:2])
    r = int(search.req[np.flatnonzero(search.at == m1)[0]])
    target = search.count.astype(float)
    target[m1, r] -= 1  # m1 holds one case of r too many, m2 one too few
    target[m2, r] += 1
    active = np.arange(search.n_muni)
    weight = np.full(search.n_muni, 1e-6)
    weight[m1] = 1.0  # the neighbourhood starts at m1
    rng = np.random.default_rng(0)
    groups = [_matched_group(search, active, weight, target, 2, rng) for _ in range(20)]
    assert all(g[0] == m1 for g in groups)
    assert sum(g[1] == m2 for g in groups) >= 18  # the rest only by the floor that keeps all reachable


def test_held_cases_stay_and_the_guided_search_keeps_every_rule(round_1k, monkeypatch):
    _, _, problem, result = round_1k
    agg = aggregate(problem)
    model = build_model(agg)
    start = _start(result, agg)
    search = Rehouser(model, start, 1.0, 1.0)
    group = np.unique(search.at)[:3]
    assert search.improve(group, hold=np.ones(len(search.at), dtype=bool)) == 0.0  # nothing may move
    assert np.array_equal(search.at, start.to_numpy())

    # Steer to counts the plan does not have (each municipality's shifted to the next), with
    # only 3 cases of a municipality movable a step: held cases stay, the cost still falls.
    monkeypatch.setattr(rehouse_module, "MAX_MOVABLE", 3)
    target = np.roll(search.count.astype(float), 1, axis=0)
    cost_before = sum(search.totals())
    moved, waste, spread = rehouse(model, start, 1.0, 1.0, time.perf_counter() + 3.0, seed=1, target=target)
    assert set(moved.index) == set(start.index)
    assert waste + spread < cost_before
    after = Rehouser(model, moved, 1.0, 1.0)
    assert after._keeps_rules(np.arange(agg.n_municipalities))
    tie = agg.free_cases.loc[start.index, "tie"].to_numpy()
    at_tie = (tie >= 0) & (tie == start.to_numpy())
    assert np.array_equal(moved.to_numpy()[at_tie], start.to_numpy()[at_tie])


def test_cases_move_to_municipalities_that_held_none():
    # 200 cases over 357 municipalities: spread is won by moving cases where there are none.
    raw = demo_settings()
    raw.setdefault("solver", {})["time_limit"] = 10.0
    raw.setdefault("objective", {})["priorities"] = [["urgency"], ["ties"]]
    settings = Settings.model_validate(raw)
    problem = build_problem(generate_tables(NAMED["small"]), settings)
    result = solve(problem)
    agg = aggregate(problem)
    model = build_model(agg)
    start = _start(result, agg)
    empty = np.setdiff1d(np.flatnonzero(agg.persons_left > 0), start.to_numpy())
    assert len(empty)
    cost_before = sum(Rehouser(model, start, 1.0, 1.0).totals())
    moved, waste, spread = rehouse(model, start, 1.0, 1.0, time.perf_counter() + 2.0, seed=0)
    assert waste + spread < cost_before
    assert np.isin(moved.to_numpy(), empty).any()


def test_without_dwellings_the_search_spreads_the_cases():
    # No dwellings.csv: housing is no rule and wastes nothing, so only spread counts. Four
    # single adults at one municipality fill its resolution (penalty 1.5); two and two cost 0.5.
    cases, persons = cases_and_persons(*[single(f"S{i}", 100) for i in range(4)])
    problem = build_problem(tiny_tables([muni("A", 4), muni("B", 4)], cases, persons), settings())
    model = build_model(aggregate(problem))
    start = pd.Series(0, index=[f"S{i}" for i in range(4)], dtype=int)
    assert sum(Rehouser(model, start, 1.0, 1.0).totals()) == 1.5

    moved, waste, spread = rehouse(model, start, 1.0, 1.0, time.perf_counter() + 5.0, seed=0)

    assert waste == 0.0 and spread == 0.5
    assert sorted(np.bincount(moved.to_numpy(), minlength=2)) == [2, 2]


def test_steps_in_flight_at_once_are_on_disjoint_groups(round_1k, monkeypatch):
    # With two threads, two steps' MIPs are solved at once; each must be on municipalities no
    # other step in flight holds (their moves are applied without re-reading the state).
    _, _, problem, result = round_1k
    agg = aggregate(problem)
    model = build_model(agg)
    start = _start(result, agg)
    in_flight: list[set[int]] = []
    overlaps, most = [], [0]
    lock = threading.Lock()
    solve_step = Rehouser.solve_step

    def recording(self, step, time_limit):
        mine = set(step.group.tolist())
        with lock:
            overlaps.extend(mine & other for other in in_flight if mine & other)
            in_flight.append(mine)
            most[0] = max(most[0], len(in_flight))
        try:
            time.sleep(0.002)  # hold the step in flight long enough for the other to start
            return solve_step(self, step, time_limit)
        finally:
            with lock:
                in_flight.remove(mine)

    monkeypatch.setattr(Rehouser, "solve_step", recording)
    cost_before = sum(Rehouser(model, start, 1.0, 1.0).totals())
    moved, waste, spread = rehouse(model, start, 1.0, 1.0, time.perf_counter() + 3.0, seed=0, threads=2)

    assert most[0] == 2 and overlaps == []
    assert set(moved.index) == set(start.index)
    assert waste + spread < cost_before
    assert Rehouser(model, moved, 1.0, 1.0)._keeps_rules(np.arange(agg.n_municipalities))



def test_a_steps_mip_is_solved_as_a_tiny_one_to_the_plain_mips_optimum(round_1k, monkeypatch):
    # Without HiGHS's feasibility jump and symmetry detection (:meth:`MathOptBackend.solve`'s
    # ``tiny``): the same optimum, in a quarter of the time.
    _, _, problem, result = round_1k
    agg = aggregate(problem)
    search = Rehouser(build_model(agg), _start(result, agg), 1.0, 1.0)
    rng = np.random.default_rng(0)
    steps = [search.prepare(rng.choice(np.unique(search.at), 3, replace=False)) for _ in range(20)]
    steps = [step for step in steps if step is not None]
    assert len(steps) >= 10
    for step in steps:
        tiny, plain = (search.backend.solve(step.program, -step.cost, time_limit=5.0, relative_gap=1e-6, tiny=t)
                       for t in (True, False))
        assert tiny.status == plain.status == "optimal"
        assert tiny.objective == pytest.approx(plain.objective, abs=1e-6)
    asked = []
    solve = MathOptBackend.solve

    def recording(self, *args, **kwargs):
        asked.append(kwargs.get("tiny", False))
        return solve(self, *args, **kwargs)

    monkeypatch.setattr(MathOptBackend, "solve", recording)
    search.solve_step(steps[0], 5.0)
    assert asked == [True]


def test_without_growing_the_search_stops_at_its_first_stall(round_1k, monkeypatch):
    # With time kept for the full model, the search hands over to it at its first stall: no
    # step has more than three municipalities. Allowed to grow, the same search goes on with
    # larger neighbourhoods after the same stall.
    tables, settings, problem, result = round_1k
    agg = aggregate(problem)
    model = build_model(agg)
    start = _start(result, agg)
    monkeypatch.setattr(rehouse_module, "STALL_STEPS", 5)
    monkeypatch.setattr(rehouse_module, "STOP_STEPS", 10)
    sizes: list[int] = []
    solve_step = Rehouser.solve_step

    def recording(self, step, time_limit):
        sizes.append(len(step.group))
        return solve_step(self, step, time_limit)

    monkeypatch.setattr(Rehouser, "solve_step", recording)
    rehouse(model, start, 1.0, 1.0, time.perf_counter() + 60.0, seed=0, grow=False)
    assert sizes and set(sizes) == {rehouse_module.GROUP}

    sizes.clear()
    rehouse(model, start, 1.0, 1.0, time.perf_counter() + 60.0, seed=0)
    assert max(sizes) > rehouse_module.GROUP

def _two_municipalities(tables):
    problem = build_problem(tables, settings())
    agg = aggregate(problem)
    return agg, build_model(agg)


def test_priced_scores_move_cases_where_they_score_more():
    # Three single adults, each scoring 5 at one municipality and 1 elsewhere, start one place
    # round from where they score most (sum 3). One step's exact MIP with scores priced
    # puts each where it scores 5; with scores only locked, moving for spread never lowers it.
    cases, persons = cases_and_persons(single("S1", 100), single("S2", 100), single("S3", 100))
    best = {"S1": "A", "S2": "B", "S3": "C"}
    scores = [{"case_id": c, "municipality_id": m, "score": "5" if best[c] == m else "1"}
              for c in best for m in "ABC"]
    agg, model = _two_municipalities(tiny_tables([muni(m, 1) for m in "ABC"], cases, persons, scores=scores))
    start = pd.Series([1, 2, 0], index=["S1", "S2", "S3"], dtype=int)
    search = Rehouser(model, start, 0.0, 0.0, weight_scores=1.0)
    before = search.cost([0, 1, 2])

    gain = search.improve(np.arange(3))

    assert search.assignment().to_dict() == {"S1": 0, "S2": 1, "S3": 2}
    assert before == -3.0 and gain == 12.0
    locked = Rehouser(model, search.assignment(), 0.0, 1.0)
    assert locked.improve(np.arange(3)) == 0.0 and locked._score(np.arange(3)) == 15.0


def test_priced_ties_move_a_tied_case_to_its_tie():
    # T1, T2, T3 are tied one municipality round from where they are; V is at its tie A. One
    # step with ties priced moves each T to its tie; V, honoured already, never moves.
    cases, persons = cases_and_persons(*(single(c, 100, tie_municipality_id=t)
                                         for c, t in (("T1", "B"), ("T2", "C"), ("T3", "A"), ("V", "A"))))
    agg, model = _two_municipalities(tiny_tables([muni("A", 2), muni("B", 1), muni("C", 1)], cases, persons))
    start = pd.Series([0, 1, 2, 0], index=["T1", "T2", "T3", "V"], dtype=int)
    search = Rehouser(model, start, 0.0, 0.0, weight_ties=1.0)

    assert search.improve(np.arange(3)) == 3.0

    assert search.assignment().to_dict() == {"T1": 1, "T2": 2, "T3": 0, "V": 0}
    assert search.cost([0, 1, 2]) == -4.0


def _three_tie_cycle(fillers: int = 30):
    """Municipalities A, B, C and ``fillers`` more, each with room for one person and holding one
    single: T1 at A tied to B, T2 at B tied to C, T3 at C tied to A, an untied single at each
    filler. Every municipality is full, so no move or swap of two honours a tie without moving
    one away from its tie: the three ties are honoured together, by a cycle of three moves."""
    names = ["A", "B", "C"] + [f"F{i}" for i in range(fillers)]
    cases, persons = cases_and_persons(
        single("T1", 100, tie_municipality_id="B"), single("T2", 100, tie_municipality_id="C"),
        single("T3", 100, tie_municipality_id="A"), *(single(f"S{i}", 100) for i in range(fillers)))
    agg, model = _two_municipalities(tiny_tables([muni(m, 1) for m in names], cases, persons))
    start = pd.Series(range(len(names)), index=["T1", "T2", "T3"] + [f"S{i}" for i in range(fillers)], dtype=int)
    return model, start


def test_a_ties_neighbourhood_holds_a_tie_the_case_away_from_it_and_a_linked_municipality(monkeypatch):
    monkeypatch.setattr(rehouse_module, "LINKED_SHARE", 1.0)
    model, start = _three_tie_cycle()
    search = Rehouser(model, start, 0.0, 0.0, weight_ties=1.0)
    active = np.arange(search.n_muni)
    weight = np.ones(len(active))
    for seed in range(5):
        group = _tie_group(search, active, weight, np.zeros(len(active), dtype=bool), 3, np.random.default_rng(seed))
        assert group.tolist() == [0, 1, 2]  # A, B, C: each case there is tied to another of them
    # A municipality taken by a step in flight is in no other group: with B taken, T3's pair (C
    # and its tie A) and one more drawn by weight; with A and C taken, every tied case has its
    # municipality or its tie taken.
    busy = np.zeros(len(active), dtype=bool)
    busy[1] = True
    group = _tie_group(search, active, weight, busy, 3, np.random.default_rng(0))
    assert {0, 2} < set(group.tolist()) and 1 not in group and len(group) == 3
    busy[[0, 2]] = True
    assert _tie_group(search, active, weight, busy, 3, np.random.default_rng(0)) is None


def test_the_ties_search_closes_a_cycle_of_three_moves_in_its_first_step(monkeypatch):
    # 33 municipalities: a group of three drawn by weight holds A, B and C once in 5,456 draws.
    # Drawn around a tie, the first step's group is the cycle, and its MIP honours all three.
    monkeypatch.setattr(rehouse_module, "GUIDED_SHARE", 1.0)
    monkeypatch.setattr(rehouse_module, "LINKED_SHARE", 1.0)
    steps = []
    real = Rehouser.solve_step

    def counted(self, step, *args, **kwargs):
        steps.append(step)
        return real(self, step, *args, **kwargs)

    monkeypatch.setattr(Rehouser, "solve_step", counted)
    model, start = _three_tie_cycle()

    moved, _, _ = rehouse(model, start, 0.0, 0.0, time.perf_counter() + 30.0, weight_ties=1.0, enough_gain=3.0)

    assert moved[["T1", "T2", "T3"]].tolist() == [1, 2, 0]  # each at its tie
    assert (moved.drop(["T1", "T2", "T3"]) == start.drop(["T1", "T2", "T3"])).all()
    assert len(steps) == 1 and steps[0].group.tolist() == [0, 1, 2]


def _bank_round():
    # Four municipalities of resolution 4. A holds S1 and W; B two cases tied there; C S2 and
    # three cases tied there; D holds V. S1 scores 1 at B, S2 1 at C, both 0 elsewhere. With
    # scores locked, S1 to B costs 0.25 of spread for a score of 1, and S2 to D then gains 0.5
    # of spread for it.
    tied = [single(c, 100, tie_municipality_id=m) for c, m in
            (("Y1", "B"), ("Y2", "B"), ("Z1", "C"), ("Z2", "C"), ("Z3", "C"))]
    cases, persons = cases_and_persons(single("S1", 100), single("S2", 100), single("W", 100), single("V", 100),
                                       *tied)
    scores = [{"case_id": c, "municipality_id": m, "score": "1" if (c, m) in (("S1", "B"), ("S2", "C")) else "0"}
              for c in ("S1", "S2") for m in "ABCD"]
    agg, model = _two_municipalities(tiny_tables([muni(m, 4) for m in "ABCD"], cases, persons, scores=scores))
    start = pd.Series([0, 2, 0, 3, 1, 1, 2, 2, 2], index=["S1", "S2", "W", "V", "Y1", "Y2", "Z1", "Z2", "Z3"],
                      dtype=int)
    return model, start


def test_priced_locked_scores_are_gained_in_one_step_and_spent_in_another():
    model, start = _bank_round()
    unpriced = Rehouser(model, start, 0.0, 1.0)
    assert unpriced.improve(np.array([0, 1])) == 0.0  # spread only rises
    assert unpriced.improve(np.array([2, 3])) == 0.0  # the scores would fall

    # Priced between what a unit of score costs on {A, B} and what it buys on {C, D}.
    search = Rehouser(model, start, 0.0, 1.0, score_price=0.4)
    spread_before = search.totals()[1]
    assert search.improve(np.array([2, 3])) == 0.0  # nothing gained yet to spend
    assert search.improve(np.array([0, 1])) == pytest.approx(0.15)  # 1 of score for 0.25 of spread
    assert search.surplus() == pytest.approx(1.0)
    assert search.improve(np.array([2, 3])) == pytest.approx(0.1)  # 0.5 of spread for it

    assert search.assignment()[["S1", "S2"]].tolist() == [1, 3]
    assert search.surplus() == pytest.approx(0.0)  # the scores' sum is where it started
    assert search.totals()[1] == pytest.approx(spread_before - 0.25)


def test_the_search_returns_its_best_plan_by_the_cost_without_the_price(monkeypatch):
    # Steps on {A, B} only: priced high, S1 moves to B (spread +0.25), which the level's own
    # cost calls worse; the plan returned is the start.
    model, start = _bank_round()
    monkeypatch.setattr(rehouse_module, "_draw_group", lambda *args: np.array([0, 1]))
    moved, _, spread = rehouse(model, start, 0.0, 1.0, time.perf_counter() + 0.5, score_price=10.0)
    assert moved.equals(start)
    assert spread == pytest.approx(Rehouser(model, start, 0.0, 1.0).totals()[1])


def test_a_search_stuck_at_its_price_goes_on_at_a_lower_one(monkeypatch):
    # Priced at 2.5, S1 moves to B for its score, but no spread buys S2's score at C. Once the
    # steps stall, the price halves; at 0.3125 moving S2 to D for 0.5 of spread pays, and moving
    # S1 back for 0.25 does not: the plan is 0.25 of spread better with the same sum of scores.
    model, start = _bank_round()
    groups = itertools.cycle([np.array([0, 1]), np.array([2, 3])])
    monkeypatch.setattr(rehouse_module, "_draw_group", lambda *args: next(groups))
    monkeypatch.setattr(rehouse_module, "STALL_STEPS", 3)
    monkeypatch.setattr(rehouse_module, "STOP_STEPS", 6)
    moved, _, spread = rehouse(model, start, 0.0, 1.0, time.perf_counter() + 20.0, score_price=2.5)
    assert moved[["S1", "S2"]].tolist() == [1, 3]
    assert spread == pytest.approx(Rehouser(model, start, 0.0, 1.0).totals()[1] - 0.25)


def _credit_round():
    # Three municipalities of resolution 4. A holds T1-T3, all tied there (spread 0 + 1/4 + 2/4);
    # B holds S, who scores 1 at C and 0 elsewhere; C is empty. With ties and scores locked
    # together, T1 may leave its tie for B if S moves to C and scores 1 (0.5 of spread gained).
    tied = [single(c, 100, tie_municipality_id="A") for c in ("T1", "T2", "T3")]
    cases, persons = cases_and_persons(single("S", 100), *tied)
    scores = [{"case_id": "S", "municipality_id": m, "score": "1" if m == "C" else "0"} for m in "ABC"]
    agg, model = _two_municipalities(tiny_tables([muni(m, 4) for m in "ABC"], cases, persons, scores=scores))
    start = pd.Series([1, 0, 0, 0], index=["S", "T1", "T2", "T3"], dtype=int)
    return model, start


def test_ties_locked_with_scores_leave_their_tie_where_scores_make_up_for_it():
    model, start = _credit_round()
    assert Rehouser(model, start, 0.0, 1.0).improve(np.arange(3)) == 0.0  # tied cases held

    search = Rehouser(model, start, 0.0, 1.0, tie_credit=1.0)
    locked_before = search.scores_at.sum()
    assert locked_before == 3.0  # three ties honoured, no score

    assert search.improve(np.arange(3)) == pytest.approx(0.5)

    moved = search.assignment()
    assert moved["S"] == 2 and sorted(moved[["T1", "T2", "T3"]].tolist()) == [0, 0, 1]
    assert search.scores_at.sum() == pytest.approx(3.0)  # two ties and a score of 1: the lock holds

    # Where a tie is worth two units of score, the score of 1 does not make up for it.
    assert Rehouser(model, start, 0.0, 1.0, tie_credit=2.0).improve(np.arange(3)) == 0.0


def test_the_tie_credit_is_the_ties_weight_in_units_of_score_where_they_are_locked_together():
    from allocator.settings import ObjectiveSettings
    from allocator.level import _tie_credit

    default = ObjectiveSettings()
    assert _tie_credit(default, ["housing_fit", "spread"]) == 1.0
    assert _tie_credit(default, ["ties", "scores"]) == 0.0  # the level itself prices them
    weighted = ObjectiveSettings(weights={"ties": 3.0, "scores": 2.0})
    assert _tie_credit(weighted, ["housing_fit", "spread"]) == 1.5
    apart = ObjectiveSettings(priorities=[["urgency"], ["ties"], ["scores"], ["housing_fit", "spread"]])
    assert _tie_credit(apart, ["housing_fit", "spread"]) == 0.0
    with_spread = ObjectiveSettings(priorities=[["urgency"], ["ties", "scores", "spread"], ["housing_fit"]])
    assert _tie_credit(with_spread, ["housing_fit"]) == 0.0
    assert _tie_credit(default, ["spread"]) == 0.0  # not a level of these settings


def _broken_round(kindergarten_at_b: int):
    # F1 (three persons, a child of 3: one kindergarten place) at A, which has none; F3 (four
    # adults) at B, which has kindergarten_at_b places. Either fits either's resolution.
    munis = [muni(m, 4, capacity_school=5, capacity_kindergarten=k, capacity_introduction=5)
             for m, k in (("A", 0), ("B", kindergarten_at_b))]
    cases, persons = cases_and_persons(family("F1", [30, 3, 8]), family("F3", [30, 30, 30, 30]))
    problem = build_problem(tiny_tables(munis, cases, persons), settings())
    agg = aggregate(problem)
    return agg, pd.Series([0, 1], index=["F1", "F3"], dtype=int)


def test_a_plan_that_breaks_a_service_is_mended_by_moving_its_cases():
    agg, broken_plan = _broken_round(kindergarten_at_b=2)
    model = build_model(agg, np.zeros(agg.n_municipalities, dtype=bool))  # services counted nowhere
    assert list(over_capacity(agg, broken_plan)) == [0]

    mended = mend_services(model, broken_plan, np.array([0]), 1.0, 1.0)

    assert mended is not None and dict(mended) == {"F1": 1, "F3": 0}
    assert len(over_capacity(agg, mended)) == 0
    # A lone case (F3 not placed) moves to where its service has room.
    alone = mend_services(model, broken_plan.drop("F3"), np.array([0]), 1.0, 1.0)
    assert alone is not None and dict(alone) == {"F1": 1}


def test_a_mend_with_nothing_to_price_takes_cp_sat_s_first_plan(monkeypatch):
    # At a level of urgency alone the mend's steps price nothing: any plan that keeps the
    # capacities will do, and CP-SAT's first one comes sooner than HiGHS's proof of optimality.
    agg, broken_plan = _broken_round(kindergarten_at_b=2)
    model = build_model(agg, np.zeros(agg.n_municipalities, dtype=bool))
    asked: list[str] = []
    for name in ("solve", "find_plan"):
        def recording(self, *args, _real=getattr(MathOptBackend, name), _name=name, **kwargs):
            asked.append(_name if _name == "solve" else f"find_plan first_plan={kwargs.get('first_plan')}")
            return _real(self, *args, **kwargs)
        monkeypatch.setattr(MathOptBackend, name, recording)

    solves = MathOptBackend()  # the solve's backend: its result records the CP-SAT it used
    mended = mend_services(model, broken_plan, np.array([0]), 0.0, 0.0, backend=solves)
    assert mended is not None and dict(mended) == {"F1": 1, "F3": 0}
    assert asked and set(asked) == {"find_plan first_plan=True"}
    assert solves.used_cp_sat and solves.cp_sat_options == CP_SAT_FIRST_PLAN_OPTIONS
    asked.clear()
    assert mend_services(model, broken_plan, np.array([0]), 1.0, 1.0) is not None  # bedrooms and spread priced
    assert asked and set(asked) == {"solve"}


def test_no_mending_step_starts_after_the_deadline():
    agg, broken_plan = _broken_round(kindergarten_at_b=2)
    model = build_model(agg, np.zeros(agg.n_municipalities, dtype=bool))
    assert mend_services(model, broken_plan, np.array([0]), 1.0, 1.0, deadline=time.perf_counter() - 1.0) is None
    assert mend_services(model, broken_plan, np.array([0]), 1.0, 1.0, deadline=time.perf_counter() + 10.0) is not None


def test_a_plan_no_move_can_mend_is_not_mended():
    agg, broken_plan = _broken_round(kindergarten_at_b=0)
    model = build_model(agg, np.zeros(agg.n_municipalities, dtype=bool))
    assert mend_services(model, broken_plan, over_capacity(agg, broken_plan), 1.0, 1.0) is None


def test_counts_whose_class_slots_break_a_service_give_a_mended_concrete_plan():
    # The level's full model counts classes at A and B, not services: its counts put F1's class
    # (F1 alone: no case of the class to put there instead) at A. The concrete plan of those
    # counts is mended, not dropped.
    agg, broken_plan = _broken_round(kindergarten_at_b=2)
    model = build_model(agg, np.zeros(agg.n_municipalities, dtype=bool))
    counts = values_of(model, broken_plan)
    assert len(choose_cases(model, counts)[1])
    objective = model.objective_terms()["spread"]
    the_settings = settings(objective__priorities=[["urgency"], ["housing_fit", "spread"]])
    columns = np.arange(model.n_vars)

    found = _concrete_or_mended(model, columns, objective, counts, [], the_settings, ["housing_fit", "spread"],
                                time.perf_counter() + 10.0)

    assert found is not None and dict(found[0]) == {"F1": 1, "F3": 0}
    assert found[1] == pytest.approx(float(objective @ values_of(model, found[0])))
