"""Reading CSV files: text only, the same problem and digest as the same tables given in memory,
and every unreadable file named."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from allocator import ProblemValidationError, build_problem, read_problem, solve, verify_plan, write_problem
from allocator.columns import TEXT
from allocator.reading import read_table
from conftest import cases_and_persons, dwelling, family, muni, settings, single, tiny_tables


def tables():
    cases, persons = cases_and_persons(single("A", 90), family("F", [40, 8], 30), single("B", 10))
    return tiny_tables([muni("0301", 6, capacity_school=3), muni("1101", 2, capacity_school=1)], cases, persons,
                       [dwelling("D1", "0301", 2), dwelling("D2", "1101", 1)],
                       scores=[{"case_id": c, "municipality_id": m, "score": s}
                               for c, m, s in [("A", "0301", "0.5"), ("A", "1101", "0.25"),
                                               ("F", "0301", "0.125"), ("B", "1101", "1")]])


def issues_of(folder: Path) -> set[tuple]:
    with pytest.raises(ProblemValidationError) as caught:
        read_problem(folder, settings())
    return {(i.file, i.row, i.column, i.rule) for i in caught.value.issues}


def test_columns_are_the_texts_as_written(tmp_path: Path):
    path = tmp_path / "t.csv"
    path.write_text("\ufeffid , municipality_id,score\nA,0301,0.50\nB,0301,\nA, 1101,7\n", encoding="utf-8")
    frame = read_table(path, "t.csv")
    assert list(frame.columns) == ["id", "municipality_id", "score"]
    assert frame.astype(str).to_numpy().tolist() == [["A", "0301", "0.50"], ["B", "0301", ""], ["A", " 1101", "7"]]
    assert read_table(path.read_bytes(), "t.csv").astype(str).equals(frame.astype(str))


def test_line_breaks_in_quoted_cells_of_a_large_file():
    """Over several of the reader's blocks (1 MB): split in parallel, a line may not end a row."""
    rows = "".join(f'C{i:06d},0301,"first line\nsecond, line {i}"\n' for i in range(40_000))
    frame = read_table(f"case_id,municipality_id,reason\n{rows}".encode(), "exclusions.csv")
    assert len(frame) == 40_000
    assert frame["reason"].iloc[-1] == "first line\nsecond, line 39999"


def test_folder_and_memory_give_the_same_problem_and_digest(tmp_path: Path):
    given = tables()
    in_memory = build_problem(given, settings())
    from_folder = read_problem(write_problem(given, tmp_path / "p"), settings())
    assert from_folder.digest == in_memory.digest
    pd.testing.assert_frame_equal(from_folder.cases, in_memory.cases)
    assert from_folder.score_matrix.tolist() == in_memory.score_matrix.tolist()
    changed = {**given, "scores.csv": given["scores.csv"].assign(score=["0.5", "0.25", "0.125", "0.9"])}
    assert read_problem(write_problem(changed, tmp_path / "q"), settings()).digest != in_memory.digest


def test_the_digest_does_not_depend_on_the_order_ids_first_appear():
    """Equal cells give equal digests however a reader numbered their distinct texts."""
    given = tables()
    scores = given["scores.csv"]
    as_categories = scores.assign(case_id=pd.Categorical(scores["case_id"], categories=["F", "B", "A", "Z"]))
    digest = build_problem(given, settings()).digest
    assert build_problem({**given, "scores.csv": as_categories}, settings()).digest == digest


def test_every_row_of_the_wrong_length_is_named(tmp_path: Path):
    folder = write_problem(tables(), tmp_path / "p")
    path = folder / "dwellings.csv"
    lines = path.read_text().splitlines()
    lines[1] += ",extra"  # D1: one cell too many
    lines[2] = ",".join(lines[2].split(",")[:2])  # D2 loses bedrooms and max_occupants
    path.write_text("\n".join(lines) + "\n")
    (folder / "scores.csv").write_text("case_id,municipality_id,score\nA,0301\n")
    assert issues_of(folder) == {("dwellings.csv", 2, None, "wrong-cell-count"),
                                 ("dwellings.csv", 3, None, "wrong-cell-count"),
                                 ("scores.csv", 2, None, "wrong-cell-count")}


@pytest.mark.parametrize("text, issue", [
    ("", ("scores.csv", None, None, "unreadable-csv")),
    ("case_id,municipality_id, case_id\nA,0301,A\n", ("scores.csv", 1, "case_id", "duplicate-column")),
    ("case_id,municipality_id,score\nA,0301,\xff\n", ("scores.csv", 2, None, "unreadable-csv")),
])
def test_unreadable_files_are_named(tmp_path: Path, text: str, issue: tuple):
    folder = write_problem(tables(), tmp_path / "p")
    (folder / "scores.csv").write_bytes(text.encode("latin-1"))
    assert issues_of(folder) == {issue}


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_rows_that_are_not_utf8_are_named_without_their_text(tmp_path: Path):
    """Arrow names such a cell by column only, or, in a row of the wrong length, quotes the row
    (whose cells may name a person), or cannot decode it for the invalid-row handler and reports
    an ignored exception: so rows are checked for UTF-8 before arrow reads them."""
    folder = write_problem(tables(), tmp_path / "p")
    (folder / "scores.csv").write_bytes("case_id,municipality_id,score\nA,0301,0.5\nØyvind Ås,0301,1,x\n"
                                        "F,0301,1\nB,1101,æ\n".encode("latin-1"))
    with pytest.raises(ProblemValidationError) as caught:
        read_problem(folder, settings())
    issues = caught.value.issues
    assert {(i.file, i.row, i.rule) for i in issues} == {("scores.csv", 3, "unreadable-csv"),
                                                         ("scores.csv", 5, "unreadable-csv")}
    assert not any("yvind" in i.message for i in issues)


def test_numbers_that_are_not_finite_or_too_large_are_named(tmp_path: Path):
    given = tables()
    given["municipalities.csv"] = given["municipalities.csv"].assign(
        resolution_persons=["1e400", "18446744073709551615"], capacity_school=["inf", "3"])
    given["scores.csv"] = given["scores.csv"].assign(score=["nan", "inf", "-1e400", "1"])
    assert issues_of(write_problem(given, tmp_path / "p")) == {
        ("municipalities.csv", 2, "resolution_persons", "not-an-integer"),
        ("municipalities.csv", 3, "resolution_persons", "above-maximum"),
        ("municipalities.csv", 2, "capacity_school", "not-an-integer"),
        ("scores.csv", 2, "score", "not-a-number"),
        ("scores.csv", 3, "score", "not-a-number"),
        ("scores.csv", 4, "score", "not-a-number")}


@pytest.mark.parametrize("field", ["solver.time_limit", "objective.weights.urgency", "urgency.base"])
def test_settings_that_are_not_finite_are_named(tmp_path: Path, field: str):
    folder = write_problem(tables(), tmp_path / "p")
    section, _, name = field.rpartition(".")
    (folder / "settings.toml").write_text(f"[{section}]\n{name} = inf\n")
    with pytest.raises(ProblemValidationError) as caught:
        read_problem(folder)
    assert {(i.file, i.column, i.rule) for i in caught.value.issues} == {("settings.toml", field, "invalid-setting")}


def test_ids_are_python_text_whatever_pandas_makes_by_default(tmp_path: Path):
    """The solver looks ids up all the time, faster in Python strings than in arrow's."""
    with pd.option_context("mode.string_storage", "pyarrow"):
        given = {name: frame.astype("str") for name, frame in tables().items()}
        problem = read_problem(write_problem(given, tmp_path / "p"), settings())
        for built in (problem, build_problem(given, settings())):
            assert built.cases.index.dtype == TEXT
            assert built.municipalities.index.dtype == TEXT
        result = solve(problem, settings(objective={"priorities": [["urgency"]]}))
        assert pd.options.mode.string_storage == "pyarrow"  # restored after the solve
    assert result.levels[0].status == "optimal"
    assert set(result.plan["case_id"]) == {"A", "F"}  # two dwellings: B waited least


def test_files_with_a_byte_order_mark_are_read_and_verified(tmp_path: Path):
    folder = write_problem(tables(), tmp_path / "p")
    for path in folder.glob("*.csv"):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    problem = read_problem(folder, settings())
    assert problem.digest == build_problem(tables(), settings()).digest
    result = solve(problem, settings(objective={"priorities": [["urgency"]]}))
    result.write(tmp_path / "out")
    assert verify_plan(folder, tmp_path / "out" / "plan.csv") == []
    pd.DataFrame({"case_id": ["A", "F"], "municipality_id": ["1101", "1101"], "dwelling_id": ["", "D2"]}).to_csv(
        tmp_path / "over.csv", index=False)
    assert "1101 gets 3 persons; its resolution is 2" in verify_plan(folder, tmp_path / "over.csv")


#: Bytes that break CSV files in the ways seen: quotes, line ends, NUL, not UTF-8, numbers no
#: count can be, empty cells, other separators.
NOISE = st.sampled_from([b",", b'"', b"\n", b"\r", b"\x00", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"inf", b"-1",
                         b"1e400", b"nan", b"99999999999999999999", b"0.5", b" ", b"", b";", b"2026-02-30"])


@hsettings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(edits=st.lists(st.tuples(st.sampled_from(["municipalities.csv", "cases.csv", "persons.csv", "dwellings.csv",
                                                 "scores.csv"]), st.booleans(), st.integers(0, 10**6),
                                st.integers(0, 4), NOISE), min_size=1, max_size=4))
def test_damaged_files_give_named_issues_and_nothing_else(tmp_path_factory, edits):
    """Whatever the bytes, reading gives a problem or issues that name their file: never another
    exception (before: an age of '1e400' raised OverflowError, a capacity of 20 digits TypeError).
    An edit replaces one cell, or ``cut`` bytes anywhere."""
    folder = write_problem(tables(), tmp_path_factory.mktemp("p"))
    for name, whole_cell, where, cut, noise in edits:
        data = (folder / name).read_bytes()
        if whole_cell:
            lines = data.split(b"\n")
            row = 1 + where % max(len(lines) - 2, 1)
            cells = lines[row].split(b",")
            cells[where % len(cells)] = noise
            lines[row] = b",".join(cells)
            data = b"\n".join(lines)
        else:
            at = where % (len(data) + 1)
            data = data[:at] + noise + data[at + cut:]
        (folder / name).write_bytes(data)
    try:
        read_problem(folder, settings())
    except ProblemValidationError as exc:
        assert exc.issues and all(i.file for i in exc.issues)
