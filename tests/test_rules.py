"""One small instance per hard rule, where a plan that ignored the rule would look better."""

from __future__ import annotations

from conftest import cases_and_persons, dwelling, family, muni, settings, single, tiny_tables


def placed(result) -> dict[str, str]:
    return dict(zip(result.plan["case_id"], result.plan["municipality_id"]))


def test_case_goes_whole_within_resolution(solve_verified):
    # A family of 4 and a resolution of 3: without the whole-case rule, 3 of them would go.
    cases, persons = cases_and_persons(family("F", [35, 33, 5, 3], days=400))
    result = solve_verified(tiny_tables([muni("0001", 3)], cases, persons))
    assert result.plan.empty
    assert result.unplaced.loc[0, "rule"] == "resolution"
    assert "4 persons of resolution" in result.unplaced.loc[0, "reason"]


def test_resolution_limits_persons(solve_verified):
    cases, persons = cases_and_persons(single("A", 200), single("B", 100), single("C", 10))
    result = solve_verified(tiny_tables([muni("0001", 2)], cases, persons))
    assert sorted(placed(result)) == ["A", "B"]  # the two longest-waiting


def test_minors_only_where_resolved(solve_verified):
    em = {"case_id": "EM", "residence_date": "2025-06-01", "category": "unaccompanied_minor"}
    persons = [{"person_id": "EM-1", "case_id": "EM", "age": "16"}]
    result = solve_verified(tiny_tables([muni("0001", 10, minors=0), muni("0002", 10, minors=1)], [em], persons))
    assert placed(result) == {"EM": "0002"}


def test_minors_within_their_count(solve_verified):
    made = [({"case_id": f"EM{i}", "residence_date": "2025-06-01", "category": "unaccompanied_minor"},
             [{"person_id": f"EM{i}-1", "case_id": f"EM{i}", "age": "16"}]) for i in range(3)]
    cases, persons = cases_and_persons(*made)
    result = solve_verified(tiny_tables([muni("0001", 10, minors=2)], cases, persons))
    assert len(result.plan) == 2
    assert result.unplaced["rule"].tolist() == ["minors"]


def test_dwelling_bedrooms_and_occupancy(solve_verified):
    # A family needing 3 bedrooms; the only free dwelling has 2 (the 3-bedroom one is not free yet).
    cases, persons = cases_and_persons(family("F", [40, 38, 12, 10, 8, 6], days=300), single("S", 10))
    dw = [dwelling("D1", "0001", 2, 4), dwelling("D9", "0001", 3, 6, available_from="2026-06-01")]
    result = solve_verified(tiny_tables([muni("0001", 20)], cases, persons, dw))
    assert placed(result) == {"S": "0001"}
    reason = result.unplaced.set_index("case_id").loc["F"]
    assert reason["rule"] == "housing" and "3 bedrooms" in reason["reason"]


def test_occupancy_limits_a_dwelling(solve_verified):
    # Enough bedrooms but too few occupants allowed.
    cases, persons = cases_and_persons(family("F", [40, 38, 12, 10], days=300))
    dw = [dwelling("D1", "0001", 3, 3), dwelling("D2", "0001", 4, 5)]
    result = solve_verified(tiny_tables([muni("0001", 20)], cases, persons, dw))
    assert result.plan.loc[0, "dwelling_id"] == "D2"


def test_one_case_per_private_dwelling(solve_verified):
    cases, persons = cases_and_persons(single("A", 100), single("B", 50))
    dw = [dwelling("D1", "0001", 3, 6)]
    result = solve_verified(tiny_tables([muni("0001", 10)], cases, persons, dw))
    assert list(result.plan["case_id"]) == ["A"]


def test_shared_dwelling_only_single_adults_up_to_occupancy(solve_verified):
    cases, persons = cases_and_persons(single("A", 100), single("B", 90), single("C", 80),
                                       family("F", [30, 2], days=500))
    dw = [dwelling("D1", "0001", 3, 2, shared="true"), dwelling("D9", "0001", 2, 4, available_from="2026-06-01")]
    result = solve_verified(tiny_tables([muni("0001", 10)], cases, persons, dw))
    assert sorted(result.plan["case_id"]) == ["A", "B"]
    assert set(result.plan["dwelling_id"]) == {"D1"}


def test_step_free_needs_step_free_dwelling(solve_verified):
    cases, persons = cases_and_persons(single("A", 300, needs_step_free="true"), single("B", 10))
    dw = [dwelling("D1", "0001", 1, 2, step_free="false"), dwelling("D2", "0002", 1, 2, step_free="true")]
    result = solve_verified(tiny_tables([muni("0001", 1), muni("0002", 1)], cases, persons, dw))
    assert placed(result) == {"A": "0002", "B": "0001"}


def test_dwelling_free_by_as_of(solve_verified):
    cases, persons = cases_and_persons(single("A", 100))
    dw = [dwelling("D1", "0001", 1, 2, available_from="2026-03-01"),
          dwelling("D2", "0001", 1, 2, available_from="2026-01-01")]
    result = solve_verified(tiny_tables([muni("0001", 5)], cases, persons, dw))
    assert result.plan.loc[0, "dwelling_id"] == "D2"


def test_service_capacity(solve_verified):
    # Two families with a school child each; school capacity 1.
    cases, persons = cases_and_persons(family("F1", [40, 9], days=300), family("F2", [40, 8], days=100))
    result = solve_verified(tiny_tables([muni("0001", 10, capacity_school=1)], cases, persons))
    assert list(result.plan["case_id"]) == ["F1"]
    assert result.unplaced.loc[0, "rule"] == "capacity_school"


def test_exclusions_never(solve_verified):
    cases, persons = cases_and_persons(single("A", 100))
    tables = tiny_tables([muni("0001", 5), muni("0002", 5)], cases, persons,
                         exclusions=[{"case_id": "A", "municipality_id": "0001", "reason": "declined"}])
    result = solve_verified(tables, settings(objective={"priorities": [["urgency"]]}))
    assert placed(result) == {"A": "0002"}


def test_pins_always(solve_verified):
    # The pin takes the only dwelling though another case waited longer.
    cases, persons = cases_and_persons(single("A", 400), single("B", 5))
    dw = [dwelling("D1", "0001", 1, 2)]
    tables = tiny_tables([muni("0001", 5)], cases, persons, dw,
                         pins=[{"case_id": "B", "municipality_id": "0001", "dwelling_id": ""}])
    result = solve_verified(tables)
    assert placed(result) == {"B": "0001"}
    assert bool(result.plan.set_index("case_id").loc["B", "pinned"])


def test_ties_prefer_tie_municipality(solve_verified):
    cases, persons = cases_and_persons(single("A", 100, tie_municipality_id="0002"))
    result = solve_verified(tiny_tables([muni("0001", 5), muni("0002", 5)], cases, persons))
    assert placed(result) == {"A": "0002"}


def test_scores_only_is_classic_outcome_maximisation(solve_verified):
    cases, persons = cases_and_persons(single("A"), single("B"))
    scores = [{"case_id": c, "municipality_id": m, "score": s}
              for c, m, s in [("A", "0001", 0.9), ("A", "0002", 0.5), ("B", "0001", 0.8), ("B", "0002", 0.1)]]
    tables = tiny_tables([muni("0001", 1), muni("0002", 1)], cases, persons, scores=scores)
    result = solve_verified(tables, settings(objective={"priorities": [["scores"]]}))
    assert placed(result) == {"A": "0002", "B": "0001"}  # 1.3 beats 1.0
    assert abs(result.levels[0].objective - 1.3) < 1e-6
