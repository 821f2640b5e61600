"""The CLI end to end on the bundled demo data, and the verifier on broken plans."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from allocator import read_problem, verify_plan
from allocator.cli import main
from allocator.demo import NAMED, generate_tables, write_instance


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--name", "small", "--dir", str(base / "p"), "--out", str(base / "o"),
                 "--time-limit", "30"])
    assert code == 0
    return base / "p", base / "o"


def test_demo_writes_all_outputs(demo_run):
    problem_dir, out = demo_run
    plan = pd.read_csv(out / "plan.csv", dtype=str, keep_default_na=False)
    unplaced = pd.read_csv(out / "unplaced.csv", dtype=str, keep_default_na=False)
    summary = json.loads((out / "summary.json").read_text())
    problem = read_problem(problem_dir)
    # Every case is either placed or unplaced with a reason, never both, never dropped.
    assert set(plan["case_id"]).isdisjoint(unplaced["case_id"])
    assert len(plan) + len(unplaced) == len(problem.cases)
    assert (unplaced["reason"].str.len() > 10).all()
    assert summary["status"] in {"optimal", "feasible"}
    assert summary["input_digest"] == problem.digest
    for key in ("objective", "bound", "gap", "solver", "settings", "seed", "kpis", "seconds"):
        assert key in summary
    assert summary["kpis"]["cases_placed"] == len(plan)
    munis = pd.read_csv(out / "municipalities.csv", dtype={"municipality_id": str})
    assert len(munis) == 357
    assert (munis["placed_persons"] <= munis["resolution_persons"]).all()


def test_demo_plan_verifies_via_cli(demo_run, capsys):
    problem_dir, out = demo_run
    assert main(["verify", str(problem_dir), str(out / "plan.csv")]) == 0
    assert "keeps every hard rule" in capsys.readouterr().out


def test_verify_names_each_violation(demo_run, tmp_path):
    problem_dir, out = demo_run
    plan = pd.read_csv(out / "plan.csv", dtype=str, keep_default_na=False)
    broken = plan.copy()
    broken = pd.concat([broken, broken.iloc[[0]]])  # a case placed twice
    broken.iloc[1, broken.columns.get_loc("dwelling_id")] = "D999999"  # unknown dwelling
    broken.iloc[2, broken.columns.get_loc("municipality_id")] = "0301"  # dwelling elsewhere
    path = tmp_path / "broken.csv"
    broken.to_csv(path, index=False)
    problems = verify_plan(problem_dir, path)
    text = "\n".join(problems)
    assert f"case {plan.iloc[0]['case_id']} is placed 2 times" in text
    assert "unknown dwelling 'D999999'" in text
    assert main(["verify", str(problem_dir), str(path)]) == 1


def test_verify_reads_a_plan_as_the_reader_reads_a_table(demo_run, tmp_path):
    """A BOM, spaces around names and cells, blank lines and cells beyond the header change
    nothing; a row that stops short has its missing cells empty."""
    problem_dir, out = demo_run
    plan = pd.read_csv(out / "plan.csv", dtype=str, keep_default_na=False)[["case_id", "municipality_id",
                                                                           "dwelling_id"]]
    lines = ["\ufeff case_id , municipality_id ,dwelling_id"]
    for i, (case, muni, dwelling) in enumerate(plan.itertuples(index=False)):
        lines += ["", f" {case} ,{muni}, {dwelling} ,extra"] if i % 2 else [f"{case},{muni},{dwelling}"]
    path = tmp_path / "plan.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert verify_plan(problem_dir, path) == []
    case, muni, _ = plan.iloc[0]
    lines[1] = f"{case},{muni}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert verify_plan(problem_dir, path) == [f"case {case} in {muni} has no dwelling"]


@pytest.mark.parametrize("content, says", [
    (None, "does not exist"),
    (b"", "has no column case_id, municipality_id"),
    (b"case_id,dwelling_id\nC1,D1\n", "has no column municipality_id"),
    (b"case_id,municipality_id\nC1,\xff\n", "cannot be read"),
])
def test_a_plan_that_cannot_be_read_is_no_plan_that_keeps_the_rules(demo_run, tmp_path, capsys, content, says):
    """Before, a missing or empty plan file 'kept every hard rule', and one not in UTF-8 raised."""
    problem_dir, _ = demo_run
    path = tmp_path / "plan.csv"
    if content is not None:
        path.write_bytes(content)
    assert [says in line for line in verify_plan(problem_dir, path)] == [True]
    assert main(["verify", str(problem_dir), str(path)]) == 1
    assert says in " ".join(capsys.readouterr().out.split())  # as printed, lines wrapped


def test_verify_reports_the_input_errors_of_a_broken_folder(demo_run, tmp_path, capsys):
    import shutil

    problem_dir, out = demo_run
    broken = shutil.copytree(problem_dir, tmp_path / "p")
    persons = (broken / "persons.csv").read_text().splitlines()
    persons[1] = ",".join(persons[1].split(",")[:2] + ["x"] + persons[1].split(",")[3:])  # its age
    (broken / "persons.csv").write_text("\n".join(persons) + "\n")
    assert main(["verify", str(broken), str(out / "plan.csv")]) == 2
    assert "persons.csv, row 2, column age" in " ".join(capsys.readouterr().out.split())


def test_verify_catches_capacity_breaches(tmp_path):
    from conftest import cases_and_persons, family, muni, single, tiny_tables
    from allocator import write_problem

    cases, persons = cases_and_persons(single("A"), family("F", [40, 8, 9]))
    folder = write_problem(tiny_tables([muni("0001", 2, capacity_school=1)], cases, persons), tmp_path / "p",
                           {"as_of": "2026-01-15"})
    pd.DataFrame({"case_id": ["A", "F"], "municipality_id": ["0001", "0001"], "dwelling_id": ["", ""]}).to_csv(
        tmp_path / "plan.csv", index=False)
    problems = verify_plan(folder, tmp_path / "plan.csv")
    assert "0001 gets 4 persons; its resolution is 2" in problems
    assert "0001 gets 2 users of school; capacity is 1" in problems


def test_named_demo_sets_are_seeded():
    a = generate_tables(NAMED["small"])
    b = generate_tables(NAMED["small"])
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert len(a["municipalities.csv"]) == 357
    assert len(a["cases.csv"]) == NAMED["small"].cases


def test_demo_with_scores_is_valid(tmp_path):
    from dataclasses import replace

    folder = write_instance(replace(NAMED["demo-scores"], cases=60), tmp_path / "p")
    problem = read_problem(folder)
    assert problem.has_scores
    assert len(problem.scores) == 60 * 357


def test_lower_levels_never_cost_level_one(tmp_path):
    """Ties and spread come after urgency: the full solve keeps level 1's optimum (within the
    gap), also when a refinement of service municipalities happens on a lower level."""
    from dataclasses import replace

    from allocator import solve

    for n in (20, 60):
        folder = write_instance(replace(NAMED["small"], cases=n), tmp_path / f"p{n}")
        problem = read_problem(folder)
        alone = solve(problem, problem.settings.with_overrides(solver__time_limit=20,
                                                               objective={"priorities": [["urgency"]]}))
        full = solve(problem, problem.settings.with_overrides(solver__time_limit=20))
        assert alone.status == "optimal"
        assert full.levels[0].objective >= alone.levels[0].objective * (1 - 2e-4)
        full.write(tmp_path / f"o{n}")
        assert verify_plan(folder, tmp_path / f"o{n}" / "plan.csv") == []
