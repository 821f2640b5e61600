"""The time limit: a level below the first starts only with time left for its search and for
making its plan, which took longer than the search it left room for (national-30k in 10 s)."""

from __future__ import annotations

import importlib
import time

import pytest

from conftest import cases_and_persons, family, muni, settings, single, tiny_tables

solve_module = importlib.import_module("allocator.solve")


class Clock:
    """``solve()``'s clock (the levels' own steps keep the real one), moved ahead on request."""

    def __init__(self) -> None:
        self.offset = 0.0

    def perf_counter(self) -> float:
        return time.perf_counter() + self.offset


@pytest.mark.parametrize("jump, level_2_runs", [(8.5, False), (4.0, True)])
def test_a_level_without_time_for_its_plan_is_not_started(solve_verified, monkeypatch, jump, level_2_runs):
    """Making level 1's plan concrete seems to take ``jump`` of 10 s: at most a tenth of the
    limit (1 s) is then kept for each plan to come. With 8.5 s gone, about 1.4 s are left,
    under twice that: levels 2 and 3 are out of time and level 1's plan stands (before, level 2
    started with what was left). With 4 s gone, level 2 runs."""
    clock = Clock()
    monkeypatch.setattr(solve_module, "time", clock)
    plan_frame = solve_module.plan_frame
    made = []

    def slow_first_plan(*args, **kwargs):
        if not made:
            clock.offset += jump
        made.append(True)
        return plan_frame(*args, **kwargs)

    monkeypatch.setattr(solve_module, "plan_frame", slow_first_plan)
    cases, persons = cases_and_persons(single("A", 200, tie_municipality_id="0002"), single("B", 100),
                                       family("F", [40, 38, 8], 150))
    tables = tiny_tables([muni("0001", 4), muni("0002", 2)], cases, persons)
    result = solve_verified(tables, settings(solver__time_limit=10.0))
    statuses = [level.status for level in result.levels]
    assert statuses[0] == "optimal"
    if level_2_runs:
        assert "out_of_time" not in statuses[:2]
        assert result.levels[1].objective == 1.0  # A at its tie
    else:
        assert statuses[1:] == ["out_of_time", "out_of_time"]
    assert len(result.plan) == 3  # every case fits: level 1's plan places them all either way
