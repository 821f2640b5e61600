"""Giving class slots to concrete cases: swaps that mend a broken service capacity, and no
service capacity broken unnoticed."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
from conftest import cases_and_persons, family, muni, settings, tiny_tables

from allocator import build_problem
from allocator.aggregate import aggregate
from allocator.extract import _lighter_swap, choose_cases
from allocator.model import build_model
from allocator.solve import _hint_from_plan, complete_hint

# Two profiles of one class: q0 uses a school place, q1 does not.
USE = np.array([[1.0], [0.0]])
CLS = np.array([0, 0])


def counts(**placed: int) -> defaultdict:
    out = defaultdict(int)
    for key, n in placed.items():
        q, m = key[1:].split("m")
        out[(int(q), int(m))] = n
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


def test_a_tie_at_a_municipality_without_service_rows_cannot_break_a_capacity():
    # Three toddlers, one kindergarten place at their tie municipality A, whose services the
    # model does not count: the plan must not place them there unnoticed.
    cases, persons = cases_and_persons(family("T", [30, 2, 3, 4], days=100, tie_municipality_id="A"))
    munis = [muni("A", 10, capacity_kindergarten=1), muni("B", 10, capacity_kindergarten=5)]
    agg = aggregate(build_problem(tiny_tables(munis, cases, persons), settings()))
    model = build_model(agg, np.zeros(agg.n_municipalities, dtype=bool))  # classes everywhere
    values = complete_hint(model, _hint_from_plan(model, pd.DataFrame({"case_id": ["T"], "municipality_id": ["A"]})))
    assert values[model.blocks["a"]].sum() == 1  # the counts honour the tie at A
    found, broken = choose_cases(model, values)
    a = int(np.flatnonzero(agg.municipality_ids == "A")[0])
    assert a in broken.tolist() or found.get("T") != a
