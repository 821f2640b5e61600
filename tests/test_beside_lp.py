"""The search that moves cases runs beside its level's LP, on the threads the LP leaves."""

from __future__ import annotations

import importlib
import re
import time

import pytest

from allocator import Settings
from allocator.backend import MathOptBackend, StopFlag
from allocator.demo import NAMED, demo_settings, generate_tables
from allocator.level import _lp_beside_search

level_module = importlib.import_module("allocator.level")
MOVED = re.compile(r"cases moved for housing_fit and spread: (-?[\d.]+) -> (-?[\d.]+)")


def test_the_search_beside_the_lp_stops_when_the_lp_ends():
    steps = []

    def search(done: StopFlag) -> str:
        while not done.stopped:
            steps.append(time.perf_counter())
            time.sleep(0.005)
        return "moved"

    def lp() -> str:
        time.sleep(0.2)
        return "lp"

    started = time.perf_counter()
    assert _lp_beside_search(lp, search, None) == ("lp", "moved")
    assert len(steps) >= 5  # it ran while the LP did ...
    assert steps[-1] - started < 0.2 + 0.1  # ... and not much longer


def test_a_stop_of_the_round_stops_the_search_beside_the_lp_before_the_lp_ends():
    stop = StopFlag()
    stop.stop()
    seen = []
    assert _lp_beside_search(lambda: "lp", lambda done: seen.append(done.stopped) or "moved", stop) == ("lp", "moved")
    assert seen == [True]
    assert not StopFlag(parent=StopFlag()).stopped


def _level_3_messages(messages: list[str]) -> list[str]:
    start = max(i for i, m in enumerate(messages) if m.startswith("level 2 "))
    end = next(i for i, m in enumerate(messages) if m.startswith("level 3 "))
    return [m.strip() for m in messages[start + 1:end]]


@pytest.fixture
def slow_lps(monkeypatch):
    """Every LP relaxation a quarter of a second slower, as the backend expects: the search
    beside it has time."""
    real = MathOptBackend.solve

    def slow(self, *args, relax=False, **kwargs):
        outcome = real(self, *args, relax=relax, **kwargs)
        if relax:
            time.sleep(0.25)
        return outcome

    monkeypatch.setattr(MathOptBackend, "solve", slow)
    monkeypatch.setattr(MathOptBackend, "expected_lp_seconds", lambda self, *a, **k: 0.25)


@pytest.mark.parametrize("threads, share, beside", [(2, 0.0, True), (1, 0.0, False), (2, None, False)],
                         ids=["beside", "one-thread", "short-lp"])
def test_level_3_moves_cases_while_its_lp_is_solved_and_goes_on_from_there(
        threads, share, beside, slow_lps, solve_verified, caplog, monkeypatch):
    if share is not None:
        monkeypatch.setattr(level_module, "BESIDE_LP_SHARE", share)
    tables = generate_tables(NAMED["small"])
    settings = Settings.model_validate(demo_settings()).with_overrides(solver__time_limit=20.0,
                                                                       solver__threads=threads)
    with caplog.at_level("INFO", logger="allocator"):
        solve_verified(tables, settings)
    level_3 = _level_3_messages([r.getMessage() for r in caplog.records])
    moved = [(i, *map(float, MOVED.search(m).groups())) for i, m in enumerate(level_3) if MOVED.search(m)]
    lp = next(i for i, m in enumerate(level_3) if m.startswith("LP relaxation"))
    if not beside:
        # One thread asked for, or an LP short against the level's time (a quarter of a second
        # of several, under BESIDE_LP_SHARE): nothing runs beside it.
        assert moved and all(i > lp for i, _, _ in moved)
        return
    (first, start, reached), (guided, again, _) = moved[:2]
    assert first < lp < guided
    assert reached > start  # the search gained while the LP was solved ...
    assert again == reached  # ... and the search the LP guides starts from that plan


@pytest.mark.parametrize("margin", [1e9, 1.0])
def test_the_pace_margin_skips_only_the_lps_of_levels_with_the_search(margin, solve_verified, caplog, monkeypatch):
    # With a margin beyond any time, level 3 (which has the search that moves cases) skips its
    # LP; level 2 (ties and scores, no scores supplied: no such search) still solves its own.
    monkeypatch.setattr(MathOptBackend, "expected_lp_seconds", lambda self, *a, **k: 0.01)
    monkeypatch.setattr(level_module, "LP_PACE_MARGIN", margin)
    settings = Settings.model_validate(demo_settings()).with_overrides(solver__time_limit=20.0)
    with caplog.at_level("INFO", logger="allocator"):
        result = solve_verified(generate_tables(NAMED["small"]), settings)
    messages = [r.getMessage() for r in caplog.records]
    level_3 = _level_3_messages(messages)
    level_2 = messages[:messages.index(next(m for m in messages if m.startswith("level 2 ")))]
    assert any(m.strip().startswith("LP relaxation ") for m in level_2)
    skipped = any(m.startswith("LP relaxation skipped") for m in level_3)
    assert skipped == (margin > 1) and (result.levels[2].bound is None) == skipped


@pytest.mark.parametrize("expected, left, beside",
                         [(1.0, 20.0, False), (1.0, 3.5, True), (1.5, 3.5, False), (None, 3.0, False)],
                         ids=["time-after-the-lp", "none-after-it", "lp-too-slow-beside", "no-pace-yet"])
def test_the_cases_above_go_beside_the_lp_only_where_they_would_have_no_time_after_it(expected, left, beside):
    # national-5k in 7 s: level 2's LP took 1.2-1.5 s of 2.6 s, and the cases above were then
    # skipped ("1.1 s needed, 0.5 s for it"): 224 ties, where placed beside the LP 320.
    assert level_module._above_beside_lp(expected, left) is beside


def _level_2(messages: list[str]) -> list[str]:
    start = next(i for i, m in enumerate(messages) if m.startswith("level 1 "))
    end = next(i for i, m in enumerate(messages) if m.startswith("level 2 "))
    return [m.strip() for m in messages[start + 1:end]]


def test_the_cases_above_placed_beside_the_ties_levels_lp_are_placed_as_after_it(solve_verified, caplog, monkeypatch):
    monkeypatch.setattr(MathOptBackend, "expected_lp_seconds", lambda self, *a, **k: 0.01)  # a pace known
    tables = generate_tables(NAMED["small"])
    settings = Settings.model_validate(demo_settings()).with_overrides(solver__time_limit=20.0)
    ties, logs = {}, {}
    for beside in (False, True):
        monkeypatch.setattr(level_module, "_above_beside_lp", lambda expected, left, b=beside: b)
        caplog.clear()
        with caplog.at_level("INFO", logger="allocator"):
            result = solve_verified(tables, settings)
        ties[beside] = result.levels[1].objective
        logs[beside] = _level_2([r.getMessage() for r in caplog.records])
    for beside, level_2 in logs.items():
        assert any(m.startswith("the cases above placed: ") for m in level_2)
        assert any(m.startswith("the cases above are placed beside the LP") for m in level_2) is beside
    placed = {b: next(m for m in level_2 if m.startswith("the cases above placed: ")) for b, level_2 in logs.items()}
    assert placed[True] == placed[False]  # the same plan from the same cases, with or without the LP beside
    assert ties[True] == ties[False] > 0
