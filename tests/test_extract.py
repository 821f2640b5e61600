"""Giving class slots to concrete cases: swaps that mend a broken service capacity, and no
service capacity broken unnoticed."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np
import pandas as pd
from conftest import cases_and_persons, family, muni, settings, single, tiny_tables
from test_backend_errors import params_asked

from allocator import build_problem
from allocator.aggregate import aggregate
from allocator.backend import MathOptBackend, Outcome
from allocator.extract import (ClassSlots, _distribute_unsafe, _distribution_program, _lighter_swap,
                               _mend_distribution, choose_cases)
from allocator.model import build_model
from allocator.plans import complete_hint, hint_from_plan

# Two profiles of one class: q0 uses a school place, q1 does not.
USE = np.array([[1.0], [0.0]])
CLS = np.array([0, 0])


def counts(**placed: int) -> np.ndarray:
    """Cases per profile and municipality (two of each), from ``q0m1=n`` style arguments."""
    out = np.zeros((2, 2), dtype=int)
    for key, n in placed.items():
        q, m = key[1:].split("m")
        out[int(q), int(m)] = n
    return out


def test_swaps_with_a_lighter_case_at_a_municipality_with_room():
    left = np.array([[-1.0], [2.0]])  # municipality 0 is one school place over
    swap = _lighter_swap(0, 0, counts(q0m0=1, q1m1=1), np.zeros(2, dtype=int), left, USE, CLS)
    assert swap == (1, 1)


def test_swaps_with_an_unassigned_lighter_case():
    left = np.array([[-1.0], [0.0]])
    swap = _lighter_swap(0, 0, counts(q0m0=1), np.array([0, 1]), left, USE, CLS)
    assert swap == (1, None)


def test_no_swap_that_would_break_the_other_municipality():
    left = np.array([[-1.0], [0.0]])  # municipality 1 has no school place for the heavier case
    assert _lighter_swap(0, 0, counts(q0m0=1, q1m1=1), np.zeros(2, dtype=int), left, USE, CLS) is None


def coarse_model(made, munis):
    """The model with classes counted everywhere (no service rows)."""
    cases, persons = cases_and_persons(*made)
    agg = aggregate(build_problem(tiny_tables(munis, cases, persons), settings()))
    return agg, build_model(agg, np.zeros(agg.n_municipalities, dtype=bool))


def test_no_tie_counted_where_the_case_itself_cannot_go():
    # Three toddlers; one kindergarten place at the tie municipality.
    agg, model = coarse_model([family("T", [30, 2, 3, 4], days=100, tie_municipality_id="A")],
                              [muni("A", 10, capacity_kindergarten=1), muni("B", 10, capacity_kindergarten=5)])
    assert len(model.a_unit) == 0


def test_ties_at_a_municipality_without_service_rows_cannot_break_a_capacity():
    # Two families with a toddler each, both tied to A, one kindergarten place there, whose
    # services the model does not count: the plan must not place both there unnoticed.
    made = [family(c, [30, 2], days=100, tie_municipality_id="A") for c in ("T1", "T2")]
    agg, model = coarse_model(made, [muni("A", 10, capacity_kindergarten=1), muni("B", 10, capacity_kindergarten=5)])
    plan = pd.DataFrame({"case_id": ["T1", "T2"], "municipality_id": ["A", "A"]})
    values = complete_hint(model, hint_from_plan(model, plan))
    assert values[model.blocks["a"]].sum() == 2  # the counts honour both ties at A
    found, broken = choose_cases(model, values)
    a = int(np.flatnonzero(agg.municipality_ids == "A")[0])
    assert a in broken.tolist() or (found == a).sum() <= 1


def test_without_the_solver_the_class_slots_still_go_to_cases_and_breaks_are_reported(monkeypatch):
    # As above, with every solver call failing: the greedy's counts stand, and the capacity they
    # break is reported (the level then models it), not an error that loses the round.
    made = [family(c, [30, 2], days=100, tie_municipality_id="A") for c in ("T1", "T2")]
    agg, model = coarse_model(made, [muni("A", 10, capacity_kindergarten=1), muni("B", 10, capacity_kindergarten=5)])
    values = complete_hint(model, hint_from_plan(model, pd.DataFrame(
        {"case_id": ["T1", "T2"], "municipality_id": ["A", "A"]})))
    monkeypatch.setattr(MathOptBackend, "solve", lambda self, *a, **k: Outcome(
        "no_solution", None, None, None, 0.0, 0, "solver error (test)"))
    found, broken = choose_cases(model, values)
    a = int(np.flatnonzero(agg.municipality_ids == "A")[0])
    assert sorted(found.index) == ["T1", "T2"] and (found == a).all()
    assert broken.tolist() == [a]


def test_a_class_tie_is_not_counted_for_a_case_its_pool_needs_elsewhere(solve_verified):
    # X and Y (60, no service) fill F, whose introduction capacity keeps Z (30) out; Z takes
    # C, the municipality X is tied to. X at C would leave Z nowhere: no plan honours the tie,
    # and the bound must say so (X's class has a slot at C, but only Z can fill it).
    made = [single("X", 100, tie_municipality_id="C"), single("Y", 100), single("Z", 100)]
    for case in made:
        case[1][0]["age"] = "60" if case[0]["case_id"] != "Z" else "30"
    cases, persons = cases_and_persons(*made)
    result = solve_verified(tiny_tables([muni("F", 2, capacity_introduction=0), muni("C", 1, capacity_introduction=5)],
                                        cases, persons))
    placed = dict(zip(result.plan["case_id"], result.plan["municipality_id"]))
    assert placed == {"X": "F", "Y": "F", "Z": "C"}
    ties = result.levels[1]
    assert ties.objective == 0 and ties.bound == 0 and ties.status == "optimal"


def random_slots(rng: np.random.Generator):
    """Class slots at a few municipalities and profiles of service use, with capacities that a
    hidden assignment keeps exactly (so one that breaks none exists)."""
    n_cls, n_muni, n_services = 2, 6, 2
    prof_use = rng.integers(0, 3, size=(8, n_services)).astype(float)
    profile_cls = rng.integers(0, n_cls, size=8)
    available = rng.integers(1, 6, size=8)
    placed = np.zeros((8, n_muni), dtype=int)
    for q in range(8):
        for _ in range(rng.integers(0, available[q] + 1)):
            placed[q, rng.integers(n_muni)] += 1
    cap = placed.T @ prof_use  # municipality x service: exactly what the hidden plan uses
    keys = sorted({(int(profile_cls[q]), m) for q in range(8) for m in range(n_muni) if placed[q, m]})
    slot_n = np.array([placed[profile_cls == c, m].sum() for c, m in keys], dtype=float)
    profiles = pd.DataFrame({"cls": profile_cls, "n": available})
    return ClassSlots(profiles, prof_use, cap, np.array([c for c, _ in keys]), np.array([m for _, m in keys]), slot_n)


def test_class_slots_keep_every_capacity_that_some_assignment_keeps():
    for seed in range(40):
        slots = random_slots(np.random.default_rng(seed))
        profiles, prof_use, cap, slot_cls, slot_m, slot_n = slots.unpacked()
        counts, broken = _distribute_unsafe(slots)
        assert len(broken) == 0, seed
        given = np.zeros(len(profiles), dtype=int)
        used = np.zeros_like(cap)
        filled = defaultdict(int)
        for q, m in zip(*np.nonzero(counts)):
            n = counts[q, m]
            given[q] += n
            used[m] += n * prof_use[q]
            filled[(int(profiles["cls"].iat[q]), m)] += n
        assert (given <= profiles["n"].to_numpy()).all(), seed
        assert (used <= cap + 1e-9).all(), seed
        assert {k: v for k, v in filled.items() if v} == {(int(c), int(m)): int(n)
                                                          for c, m, n in zip(slot_cls, slot_m, slot_n)}, seed



def test_the_distributions_lp_is_solved_by_simplex(monkeypatch):
    # A transportation with a few side rows: simplex's basic solutions are whole on the
    # transportation part, and it is faster than the interior point method on these small LPs.
    asked = params_asked(monkeypatch)
    counts, broken = _distribute_unsafe(random_slots(np.random.default_rng(0)))
    assert asked[0].highs.string_options["solver"] == "simplex"
    assert len(broken) == 0 and counts.sum() > 0


def test_where_no_distribution_keeps_every_capacity_the_breaks_are_reported_without_a_search(monkeypatch):
    # national-2k seed 12: even the distribution's LP breaks a capacity, so every distribution
    # does, and the level models those municipalities whichever break. No search for the fewest
    # breaks then (0.5 s there): every slot is still filled, and every break reported.
    real = MathOptBackend.solve
    searches: list[int] = []

    def record(self, program, objective, **kw):
        searches.extend([] if kw.get("relax") else [1])
        return real(self, program, objective, **kw)

    monkeypatch.setattr(MathOptBackend, "solve", record)
    searched = 0
    for seed in range(40):
        hidden = random_slots(np.random.default_rng(seed))
        slots = replace(hidden, cap=np.floor(hidden.cap * 0.6))  # below what the slots need
        profiles, prof_use, cap, slot_cls, slot_m, slot_n = slots.unpacked()
        before = len(searches)
        counts, broken = _distribute_unsafe(slots)
        over = np.flatnonzero((counts.T @ prof_use > cap + 1e-9).any(axis=1))
        assert broken.tolist() == over.tolist(), seed
        filled = [counts[profiles["cls"].to_numpy() == c, m].sum() for c, m in zip(slot_cls, slot_m)]
        assert filled == slot_n.astype(int).tolist(), seed
        assert (counts.sum(axis=1) <= profiles["n"].to_numpy()).all(), seed
        searched += len(searches) > before
    assert searched == 0  # without the shortcut, 18 of these 40 searched


def heaviest_first(slots: ClassSlots) -> np.ndarray:
    """Cases per profile and municipality filling every slot, heaviest service users first and
    capacities ignored: a start that breaks them."""
    profiles, prof_use, cap, slot_cls, slot_m, slot_n = slots.unpacked()
    counts = np.zeros((len(profiles), len(cap)), dtype=int)
    available = profiles["n"].to_numpy().copy()
    for k in range(len(slot_cls)):
        for q in np.argsort(-prof_use.sum(axis=1), kind="stable"):
            if profiles["cls"].iat[q] == slot_cls[k]:
                n = min(available[q], int(slot_n[k]) - counts[profiles["cls"].to_numpy() == slot_cls[k], slot_m[k]].sum())
                counts[q, slot_m[k]] += n
                available[q] -= n
    return counts


def test_a_broken_distribution_is_mended_around_its_broken_municipalities():
    mended_to_none = 0
    for seed in range(40):
        slots = random_slots(np.random.default_rng(seed))
        profiles, prof_use, cap, slot_cls, slot_m, slot_n = slots.unpacked()
        start = heaviest_first(slots)
        overflow = np.maximum(start.T @ prof_use - cap, 0).sum()
        if overflow == 0:
            continue
        program, objective, pq, pk, munis = _distribution_program(slots)
        out = _mend_distribution(MathOptBackend(), slots, program, objective, start, pq, pk, munis)
        n = np.rint(out.values[:len(pq)]).astype(int)
        counts = np.zeros_like(start)
        np.add.at(counts, (pq, slot_m[pk]), n)
        assert (np.bincount(pk, weights=n, minlength=len(slot_n)) == slot_n).all(), seed  # every slot filled
        assert (counts.sum(axis=1) <= profiles["n"].to_numpy()).all(), seed
        left = np.maximum(counts.T @ prof_use - cap, 0).sum()
        assert left == -out.objective and left <= overflow, seed  # the slack is the overflow, never more
        mended_to_none += left == 0
    assert mended_to_none >= 10


def test_the_search_around_the_fractional_pairs_is_the_answer_even_where_it_breaks_a_capacity(monkeypatch):
    # Capacities a little below what the hidden plan uses: the distribution's LP keeps them all,
    # but no whole distribution near it does. The search around its fractional pairs gives the
    # answer, breaks reported (the caller moves cases where they hold); no whole MIP after it.
    real = MathOptBackend.solve
    searches: list[str] = []

    def record(self, program, objective, **kw):
        if not kw.get("relax"):
            searches.append("around" if kw.get("lower") is not None else "whole")
        return real(self, program, objective, **kw)

    monkeypatch.setattr(MathOptBackend, "solve", record)
    hidden = random_slots(np.random.default_rng(10))
    slots = replace(hidden, cap=np.floor(hidden.cap * 0.8))
    profiles, prof_use, cap, slot_cls, slot_m, slot_n = slots.unpacked()
    counts, broken = _distribute_unsafe(slots)
    assert searches == ["around", "around"]  # the mend of the greedy's breaks, then the search
    over = np.flatnonzero((counts.T @ prof_use > cap + 1e-9).any(axis=1))
    assert len(broken) and broken.tolist() == over.tolist()
    filled = [counts[profiles["cls"].to_numpy() == c, m].sum() for c, m in zip(slot_cls, slot_m)]
    assert filled == slot_n.astype(int).tolist()
    assert (counts.sum(axis=1) <= profiles["n"].to_numpy()).all()
