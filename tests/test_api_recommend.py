"""allocator.recommend: plan scoring agrees with the solver, and recommendations rank by change."""

from __future__ import annotations

import pytest

import pandas as pd

from allocator import verify_plan, write_problem
from allocator.recommend import recommend
from allocator.scoring import level_values, plan_terms, spread_cost
from conftest import cases_and_persons, dwelling, muni, settings, single, tiny_tables
from test_api_support import tiny_round


def assert_verified(problem, candidate, case_id, folder):
    """A candidate's plan keeps every hard rule, with the case where it was recommended."""
    tables = problem.raw_tables()
    settings_data = problem.settings.model_dump(mode="json")
    problem_dir = write_problem(tables, folder / "problem", settings_data)
    plan = pd.DataFrame(candidate["plan"])
    plan.to_csv(folder / "plan.csv", index=False)
    assert verify_plan(problem_dir, folder / "plan.csv") == []
    assert dict(zip(plan["case_id"], plan["municipality_id"]))[case_id] == candidate["municipality_id"]


def test_spread_cost_by_quarters():
    assert spread_cost(4, 0) == 0
    assert spread_cost(4, 1) == 0  # the first quarter is free
    assert spread_cost(4, 2) == pytest.approx(0.25)
    assert spread_cost(4, 4) == pytest.approx(0.25 + 0.5 + 0.75)
    assert spread_cost(4, 6) == pytest.approx(1.5 + 2 * 0.75)  # rounding slack: top segment


def test_plan_terms_equal_the_solvers_term_values(solve_verified):
    result = solve_verified(tiny_round(), settings(solver__time_limit=10))
    terms = plan_terms(result.problem, result.plan)
    for name, value in result.term_values.items():
        assert terms[name] == pytest.approx(value, abs=1e-6), name
    assert level_values(result.settings, terms) == pytest.approx(result.objective, abs=1e-6)


def test_a_move_into_free_room_is_priced_exactly(solve_verified, tmp_path):
    # Room for everyone: B may move to 0002 at no cost but spread and housing; ties pull A home.
    made = [single("A", 100, tie_municipality_id="0001"), single("B", 50)]
    cases, persons = cases_and_persons(*made)
    tables = tiny_tables([muni("0001", 4), muni("0002", 4)], cases, persons,
                         [dwelling("d1", "0001", 1), dwelling("d2", "0001", 1), dwelling("d3", "0002", 2)])
    result = solve_verified(tables)
    rec = recommend(result.problem, result.plan, "A", time_limit=0, with_plans=True)
    assert rec["status"] == "placed" and rec["current_municipality_id"] == "0001"
    [other] = rec["candidates"]
    assert other["municipality_id"] == "0002" and other["method"] in {"move", "displace"}
    assert other["change"][0] == pytest.approx(0.0)       # urgency: A stays placed
    assert other["change"][1] == pytest.approx(-1.0)      # the tie is lost
    moved = result.plan.copy()
    moved.loc[moved["case_id"] == "A", ["municipality_id", "dwelling_id"]] = ["0002", other["dwelling_id"]]
    expected = level_values(result.settings, plan_terms(result.problem, moved))
    assert other["levels"] == pytest.approx(expected)
    assert_verified(result.problem, other, "A", tmp_path)


def test_recommendations_for_an_unplaced_case_are_ranked(solve_verified, tmp_path):
    result = solve_verified(tiny_round(), settings(solver__time_limit=10))
    assert "H" in set(result.unplaced["case_id"])
    rec = recommend(result.problem, result.plan, "H", limit=5, time_limit=4, with_plans=True)
    assert rec["status"] == "unplaced" and rec["considered"] == 2 and rec["resolved"] >= 1
    keys = [tuple(c["change"]) for c in rec["candidates"]]
    assert keys == sorted(keys, reverse=True)
    for c in rec["candidates"]:
        assert c["terms_change"]["urgency"] == pytest.approx(c["change"][0])
        assert c["displaced"] or c["change"][0] > 0
    for c in rec["candidates"]:
        assert_verified(result.problem, c, "H", tmp_path / c["municipality_id"])
    with pytest.raises(KeyError):
        recommend(result.problem, result.plan, "NOPE")




def test_excluded_and_impossible_municipalities_are_not_candidates(solve_verified, tmp_path):
    tables = tiny_round()
    tables["exclusions.csv"] = pd.DataFrame([{"case_id": "H", "municipality_id": "0301", "reason": "safety"}])
    result = solve_verified(tables)
    rec = recommend(result.problem, result.plan, "H", time_limit=0, with_plans=True)
    assert rec["considered"] == 1  # 5001 resolved nothing, 0301 is excluded
    assert [c["municipality_id"] for c in rec["candidates"]] == ["1103"]
    assert_verified(result.problem, rec["candidates"][0], "H", tmp_path / "h")
    minor = recommend(result.problem, result.plan, "M", time_limit=0)
    assert minor["considered"] == 0 and minor["candidates"] == []  # only 1103 takes minors, and M is there
