"""The greedy fill: the most urgent cases first, each to the first column with room, until no
case left fits anywhere."""

from __future__ import annotations

import dataclasses

import numpy as np

from allocator import Settings, build_problem
from allocator.aggregate import aggregate
from allocator.demo import NAMED, demo_settings, generate_tables
from allocator.fill import Filler
from allocator.model import build_model
from allocator.probe import likely_binding_services


def test_the_fill_leaves_no_case_that_would_still_fit():
    # national-2k: more cases than places, so pools are left with cases (1,903 of 2,000 fit).
    for seed in range(2):
        tables = generate_tables(dataclasses.replace(NAMED["national-2k"], seed=seed))
        agg = aggregate(build_problem(tables, Settings.model_validate(demo_settings())))
        model = build_model(agg, likely_binding_services(agg))
        filler = Filler(model, np.zeros(len(model.y_unit)))
        filler.fill()
        assert filler.room.holds()  # every capacity kept
        placed, left_over = 0, 0
        for c, members in filler.members.items():
            taken = filler.taken(c)
            for p in members:
                placed += taken[p]
                if taken[p] == len(filler.urgency[p]):
                    continue  # every case of the pool is in
                left_over += 1
                open_ = filler.open_columns(filler.columns_of(p))
                if filler.fine_count[p] >= len(filler.urgency[p]):
                    open_ = open_[model.y_unit[open_] >= filler.n_pools]
                assert not len(open_), (seed, p)  # a case left, and room for it: not maximal
        assert placed > 0 and left_over > 0


def test_an_lp_zero_a_little_below_zero_counts_no_case():
    """HiGHS returns zeros as -3.3e-8 now and then (within its tolerance). Rounded down they were
    -1 cases, and the ties packing then had more class slots than cases to fill them
    (IndexError in the cases' extraction, found on a 60-case round)."""
    tables = generate_tables(dataclasses.replace(NAMED["small"], cases=60, seed=5))
    agg = aggregate(build_problem(tables, Settings.model_validate(demo_settings())))
    model = build_model(agg, likely_binding_services(agg))
    y_lp = np.full(len(model.y_unit), -3.3e-8)
    filler = Filler(model, y_lp)
    assert (filler.y == 0).all() and (filler.class_total == 0).all()
    lower, _ = model.rounding_box(y_lp)
    assert (lower >= 0).all()
