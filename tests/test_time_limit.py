"""The time limit: a level below the first starts only with time left for its search and for
making its plan, which took longer than the search it left room for (national-30k in 10 s)."""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import replace

import pytest

from allocator import Settings
from allocator.demo import NAMED, demo_settings, generate_tables
from conftest import cases_and_persons, fake_breaks, family, muni, no_other_repair, settings, single, tiny_tables

solve_module = importlib.import_module("allocator.solve")
level_module = importlib.import_module("allocator.level")


class Clock:
    """``solve()``'s clock (the levels' own steps keep the real one), moved ahead on request."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.first: float | None = None  # the first reading: ``solve()``'s start

    def perf_counter(self) -> float:
        now = time.perf_counter() + self.offset
        if self.first is None:
            self.first = now
        return now


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


def test_a_level_refined_with_no_time_to_solve_it_again_keeps_its_repaired_plan(solve_verified, monkeypatch):
    """Level 1's plan seems to take 3 s to make (so 1 s, a tenth of the limit, is kept for each
    plan to come), and the ties level's counts "break" a service capacity (faked) with 1.2 s of
    the 10 s left: under twice that, so the level is not solved again, and the plan repaired
    after the break is its answer. Before, the re-solve was set up, the loop found no time for it
    and the level ended out of time without a plan: the proposal kept level 1's."""
    clock = Clock()
    monkeypatch.setattr(solve_module, "time", clock)
    plan_frame = solve_module.plan_frame
    real_solve_level = solve_module.solve_level
    ties_solves: list[bool] = []
    faking: list[bool] = []

    def slow_first_plan(*args, **kwargs):
        if clock.offset == 0.0:
            clock.offset += 3.0
        return plan_frame(*args, **kwargs)

    def solve_level(*args, terms, **kwargs):
        outcome = real_solve_level(*args, terms=terms, **kwargs)
        faking[:] = ["ties" in terms and not ties_solves]  # the next plan chosen is this solve's
        if "ties" in terms:
            ties_solves.append(True)
            clock.offset += clock.first + 10.0 - 1.2 - clock.perf_counter()
            outcome = replace(outcome, status="feasible", bound=outcome.bound + 1)  # not proven
        return outcome

    monkeypatch.setattr(solve_module, "plan_frame", slow_first_plan)
    monkeypatch.setattr(solve_module, "solve_level", solve_level)
    fake_breaks(monkeypatch, faking)
    no_other_repair(monkeypatch)
    the_settings = Settings.model_validate(demo_settings()).with_overrides(solver__time_limit=10.0)
    result = solve_verified(generate_tables(replace(NAMED["small"], cases=60, seed=1)), the_settings)
    assert ties_solves == [True]  # not solved again
    ties = result.levels[1]
    assert ties.status == "feasible" and ties.objective is not None and ties.objective > 0
    assert result.kpis()["ties_honoured"] == ties.objective


@pytest.mark.parametrize("lp_fits", [True, False])
def test_a_middle_level_without_time_for_its_lp_takes_most_of_the_time_left(solve_verified, monkeypatch, lp_fits):
    """national-30k in 10 s: the ties level's LP (3.3-4.8 s) did not fit an equal share of the
    time after level 1 (about 3 s). Where a level between the first and the last is expected to
    need more than its LP's part of an equal share, it takes nine tenths of the time left, and
    the level below the rest; otherwise they share it equally."""
    clock = Clock()
    monkeypatch.setattr(solve_module, "time", clock)
    real_solve_level = solve_module.solve_level
    shares: list[float] = []  # per level: its budget over the time left when it started

    def solve_level(*args, budget, **kwargs):
        shares.append(budget / (clock.first + 6.0 - clock.perf_counter()))
        return real_solve_level(*args, budget=budget, **kwargs)

    monkeypatch.setattr(solve_module, "solve_level", solve_level)
    expected = None if lp_fits else 1e9  # seconds, for the LPs of the levels below the first
    monkeypatch.setattr(solve_module.MathOptBackend, "expected_lp_seconds",
                        lambda self, model, locks=None: expected if locks else None)
    tables = generate_tables(replace(NAMED["small"], cases=60, seed=1))
    result = solve_verified(tables, Settings.model_validate(demo_settings()).with_overrides(solver__time_limit=6.0))
    assert [level.status != "out_of_time" for level in result.levels] == [True, True, True]
    assert len(shares) == 3
    if lp_fits:
        assert 0.45 <= shares[1] <= 0.5
    else:
        assert 0.85 <= shares[1] <= 0.9


@pytest.mark.parametrize("lp_seconds, hurried", [(1.5, True), (0.3, False)])
def test_level_1_carries_the_probes_lp_where_the_next_levels_lp_would_not_fit_after_its_own(
        solve_verified, monkeypatch, caplog, lp_seconds, hurried):
    """national-30k in 10 s: level 1's own LP (2.5 s) and polish (0.6-1.2 s) left the ties level's
    LP no time. Where every LP is expected to take ``lp_seconds`` of the 5 s, level 1's own would
    fit its share, but the next level's, after it, not (1.5 s): level 1 then carries the probe's
    LP and does not polish its plan. With 0.3 s both fit, and it solves its own."""
    monkeypatch.setattr(solve_module.MathOptBackend, "expected_lp_seconds",
                        lambda self, model, locks=None: lp_seconds)
    tables = generate_tables(replace(NAMED["national-1k"], cases=400))
    settings_ = Settings.model_validate(demo_settings()).with_overrides(
        solver__time_limit=5.0, objective__priorities=[["urgency"], ["ties"], ["housing_fit", "spread"]])
    with caplog.at_level(logging.INFO, logger="allocator"):
        result = solve_verified(tables, settings_)
    messages = [record.getMessage() for record in caplog.records]
    assert any("level 1's plan not polished" in m for m in messages) == hurried
    assert any("the probe's LP carried" in m for m in messages) == hurried
    assert result.levels[0].status == "optimal"
