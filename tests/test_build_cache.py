"""What a solve takes once and shares: a problem's dwelling types (aggregating, choosing the
concrete dwellings and explaining the plan all need them), and an aggregation's housing classes
and Hall rows (the model is built again with more municipalities' services, mostly over the same
demands). Shared results must be the ones taken afresh, and read-only."""

from __future__ import annotations

import numpy as np
import pytest

import allocator.aggregate as aggregate_module
import allocator.model as model_module
from allocator import build_problem
from allocator.aggregate import aggregate, dwelling_type_of
from allocator.demo import NAMED, demo_settings, generate_tables
from allocator.model import build_model
from allocator.settings import Settings


@pytest.fixture(scope="module")
def problem():
    return build_problem(generate_tables(NAMED["small"]), Settings.model_validate(demo_settings()))


def counting(monkeypatch, module, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_a_problems_dwelling_types_are_taken_once(problem, monkeypatch):
    fresh = problem.with_settings(problem.settings)  # the same round, not yet aggregated
    calls = counting(monkeypatch, aggregate_module, "_types_of_dwellings")
    agg = aggregate(fresh)
    type_of = dwelling_type_of(fresh)
    aggregate(fresh, scores=False)
    assert len(calls) == 1
    types, taken = aggregate_module._types_of_dwellings(fresh)
    assert agg.dwelling_types.equals(types) and type_of.equals(taken)
    dwelling_type_of(fresh.with_settings(fresh.settings))  # another problem: its own types
    assert len(calls) == 3


def test_a_rebuilt_model_shares_the_housing_of_the_same_demands(problem, monkeypatch):
    agg = aggregate(problem)
    calls = counting(monkeypatch, model_module, "_hall_rows")
    coarse = np.zeros(agg.n_municipalities, dtype=bool)
    first = build_model(agg, coarse)
    again = build_model(agg, coarse)
    assert len(calls) == 1
    assert again.hall_row is first.hall_row and not first.hall_row.flags.writeable
    # Every service modelled: other possible demands, so the housing is taken for them.
    fine = build_model(agg, ~coarse)
    assert len(calls) == 2
    # Shared or taken afresh, the same model.
    model_module._HOUSING.clear()
    afresh = build_model(agg, coarse)
    assert len(calls) == 3
    assert (afresh.matrix != first.matrix).nnz == 0
    assert np.array_equal(afresh.row_upper, first.row_upper) and np.array_equal(afresh.upper, first.upper)
    assert fine.n_vars != first.n_vars
