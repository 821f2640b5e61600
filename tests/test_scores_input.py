"""scores.csv (long: one row per case and municipality) at scale: the checks work on distinct
values and codes, so they are pinned here cell by cell; the digest follows every cell, and the
fast grouping of score rows gives what numpy's gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator import ProblemValidationError, build_problem, read_problem, write_problem
from allocator.aggregate import aggregate, unique_rows
from conftest import cases_and_persons, muni, settings, single, tiny_tables


def scored_tables(scores: list[dict]) -> dict[str, pd.DataFrame]:
    cases, persons = cases_and_persons(single("A"), single("B"))
    return tiny_tables([muni("0001", 5), muni("0002", 5)], cases, persons, scores=scores)


def test_every_bad_score_row_is_reported_with_file_row_column_rule_and_message():
    rows = [
        {"case_id": "A", "municipality_id": "0001", "score": "0.5"},      # row 2: fine
        {"case_id": " A ", "municipality_id": "0001 ", "score": "0.7"},   # row 3: same pair
        {"case_id": "X", "municipality_id": "0001", "score": "1"},        # row 4: unknown case
        {"case_id": "B", "municipality_id": "9999", "score": "1"},        # row 5: unknown muni
        {"case_id": "B", "municipality_id": "0002", "score": "high"},     # row 6: not a number
        {"case_id": "", "municipality_id": "0002", "score": ""},          # row 7: empty
        {"case_id": "A", "municipality_id": "0002", "score": " -2.5 "},   # row 8: fine
    ]
    with pytest.raises(ProblemValidationError) as caught:
        build_problem(scored_tables(rows), settings())
    found = [(i.file, i.row, i.column, i.rule, i.message) for i in caught.value.issues]
    pair = "(case_id, municipality_id) pair"
    assert found == [
        ("scores.csv", 3, "case_id", "duplicate-id", f"{pair} for 'A' appears more than once"),
        ("scores.csv", 4, "case_id", "unknown-case", "'X' is not a known case"),
        ("scores.csv", 5, "municipality_id", "unknown-municipality", "'9999' is not a known municipality"),
        ("scores.csv", 6, "score", "not-a-number", "'high' is not a number"),
        ("scores.csv", 7, "case_id", "required", "a value is required"),
        ("scores.csv", 7, "score", "not-a-number", "'' is not a number"),
    ]


def test_missing_cells_and_padding_in_a_scores_file(tmp_path: Path):
    rows = [{"case_id": "A", "municipality_id": "0001", "score": "0.5"},
            {"case_id": "B", "municipality_id": "0002", "score": "0.25"}]
    folder = write_problem(scored_tables(rows), tmp_path / "p")
    # A short row (its score cell missing: the row is named, not guessed at) and a padded id.
    (folder / "scores.csv").write_text("case_id,municipality_id,score\nA,0001\nB , 0002,0.25\n")
    with pytest.raises(ProblemValidationError) as caught:
        read_problem(folder, settings())
    assert [(i.file, i.row, i.column, i.rule, i.message) for i in caught.value.issues] == [
        ("scores.csv", 2, None, "wrong-cell-count", "the row has 2 cells where the header has 3")]
    (folder / "scores.csv").write_text("case_id,municipality_id,score\nA,0001,1\nB , 0002,0.25\n")
    problem = read_problem(folder, settings())
    assert problem.scores.to_dict("list") == {"case_id": ["A", "B"], "municipality_id": ["0001", "0002"],
                                              "score": [1.0, 0.25]}
    assert problem.raw["scores.csv"].loc[1, "case_id"] == "B "  # as given, for the digest


def test_digest_follows_every_cell_and_row_order():
    rows = [{"case_id": c, "municipality_id": m, "score": s}
            for c, m, s in [("A", "0001", "0.5"), ("A", "0002", "1"), ("B", "0001", "-0")]]
    digest = build_problem(scored_tables(rows), settings()).digest
    assert build_problem(scored_tables([dict(r) for r in rows]), settings()).digest == digest
    changed = [dict(r) for r in rows]
    changed[2]["score"] = "0"
    swapped = [rows[1], rows[0], rows[2]]
    for other in (changed, swapped):
        assert build_problem(scored_tables(other), settings()).digest != digest
    assert build_problem(scored_tables(rows), settings(solver__seed=5)).digest != digest


def test_digest_from_codes_is_the_digest_of_the_text():
    """The digest hashes the columns as factorised when read; it must be the plain hash of the
    text tables, missing cells (as ``""``) and padding included."""
    from allocator.problem import _canonical_digest

    rows = [{"case_id": c, "municipality_id": m, "score": s}
            for c, m, s in [("A", "0001", "0.5"), (" A", "0002", "2 "), ("B", "0001", "-0")]]
    tables = scored_tables(rows)
    tables["cases.csv"]["tie_municipality_id"] = [None, "0002"]
    problem = build_problem(tables, settings())
    as_text = {name: table.fillna("").astype(str) for name, table in tables.items()}
    assert problem.digest == _canonical_digest(as_text, settings())
    tables["cases.csv"]["tie_municipality_id"] = ["0002", None]
    assert build_problem(tables, settings()).digest != problem.digest


def test_aggregation_of_distinct_score_vectors():
    rows = [{"case_id": c, "municipality_id": m, "score": s}
            for c, m, s in [("A", "0001", "0.5"), ("A", "0002", "1"), ("B", "0001", "-0")]]
    np.testing.assert_array_equal(aggregate(build_problem(scored_tables(rows), settings())).score_rows,
                                  [[0.0, 0.0], [0.5, 1.0]])


@pytest.mark.parametrize("distinct", [1, 3, 40, 200])
def test_unique_rows_is_numpy_unique(distinct: int):
    rng = np.random.default_rng(distinct)
    base = np.round(rng.random((distinct, 7)), 1)  # ties in every column
    matrix = base[rng.integers(0, distinct, 200)]
    matrix[rng.random(matrix.shape) < 0.1] = 0.0
    matrix[0, 0] = -0.0
    rows, inverse = unique_rows(matrix)
    expected_rows, expected_inverse = np.unique(matrix, axis=0, return_inverse=True)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(inverse, expected_inverse.reshape(-1))
    for empty in (np.zeros((0, 3)), np.zeros((4, 0))):
        got, at = unique_rows(empty)
        want, want_at = np.unique(empty, axis=0, return_inverse=True)
        assert got.shape == want.shape and np.array_equal(at, want_at.reshape(-1))


def test_scores_decide_where_interchangeable_cases_go_after_the_urgency_level(solve_verified):
    # Four single adults who differ only in their scores share one pool while urgency is
    # solved; the scores level must still send each to the one municipality it scores at.
    made = [single(f"C{i}", 100) for i in range(4)]
    cases, persons = cases_and_persons(*made)
    munis = [muni(f"M{j}", 1) for j in range(4)]
    scores = [{"case_id": f"C{i}", "municipality_id": f"M{j}", "score": "1" if j == (i + 1) % 4 else "0"}
              for i in range(4) for j in range(4)]
    problem = build_problem(tiny_tables(munis, cases, persons, scores=scores), settings())
    assert len(aggregate(problem, scores=False).pools) == 1 < len(aggregate(problem).pools)
    result = solve_verified(tiny_tables(munis, cases, persons, scores=scores))
    placed = dict(zip(result.plan["case_id"], result.plan["municipality_id"]))
    assert placed == {f"C{i}": f"M{(i + 1) % 4}" for i in range(4)}
    assert result.levels[1].objective == 4.0
