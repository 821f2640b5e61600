"""The benchmark infrastructure: the per-pair baseline agrees with the allocator, the runner's table."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import statistics
import sys
from concurrent.futures import Executor, Future
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from allocator import read_problem, solve, verify_plan  # noqa: E402
from allocator.demo import NAMED, write_instance  # noqa: E402
from benchmarks.baseline import (  # noqa: E402
    build_baseline,
    extract_plan,
    model_size,
    plan_objective,
    relative_gap,
    solve_baseline,
)
from benchmarks.run import COLUMNS, EXTRA, cross_check, run_benchmark, speed_ratio  # noqa: E402
from benchmarks.second_solver import solve_round, verdicts  # noqa: E402
from benchmarks.recommend import main as recommend_main  # noqa: E402
from benchmarks.seeds import main as seeds_main  # noqa: E402
from benchmarks.service import main as service_main  # noqa: E402
from benchmarks.seeds import solve_seed, write_round  # noqa: E402
from benchmarks.seeds import summary as seeds_summary  # noqa: E402


def _with_pins_and_exclusions(folder: Path) -> None:
    """Pin two cases (one to a named dwelling) and exclude a case from the largest municipalities."""
    problem = read_problem(folder)
    cases, munis = problem.cases, problem.municipalities
    free = problem.free_dwellings
    order = munis.sort_values("resolution_persons", ascending=False).index
    pins, used = [], set()
    for case_id, case in cases[cases["minors"] == 0].iterrows():
        for m in order:
            if m in used or munis.at[m, "resolution_persons"] < case["size"]:
                continue
            if any(munis.at[m, f"capacity_{s}"] < case[f"use_{s}"] for s in problem.services):
                continue
            here = free[(free["municipality_id"] == m) & ~free["shared"]
                        & (free["bedrooms"] >= case["bedrooms"]) & (free["max_occupants"] >= case["size"])
                        & (free["step_free"] | (not case["needs_step_free"]))]
            if len(here):
                pins.append({"case_id": case_id, "municipality_id": m,
                             "dwelling_id": here.index[0] if not pins else ""})
                used.add(m)
                break
        if len(pins) == 2:
            break
    assert len(pins) == 2
    pd.DataFrame(pins).to_csv(folder / "pins.csv", index=False)
    excluded = [c for c in cases.index if c not in {p["case_id"] for p in pins}][0]
    pd.DataFrame({"case_id": excluded, "municipality_id": list(order[:40]), "reason": "test"}).to_csv(
        folder / "exclusions.csv", index=False)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    folder = write_instance(dataclasses.replace(NAMED["small"], cases=20), tmp_path_factory.mktemp("b") / "p")
    _with_pins_and_exclusions(folder)
    return folder


def test_baseline_agrees_with_allocator_level_1(tiny_folder, tmp_path):
    problem = read_problem(tiny_folder)
    assert len(problem.pins) == 2 and len(problem.exclusions) == 40

    model = build_baseline(problem)
    sizes = model.sizes()
    formula = model_size(problem)
    assert (sizes["x"], sizes["h"], sizes["constraints"]) == (formula["x"], formula["h"], formula["constraints_at_most"])
    outcome = solve_baseline(model, time_limit=30, relative_gap=0.0)
    assert outcome.status == "optimal"
    assert outcome.progress, "HiGHS log rows are recorded"
    assert outcome.seconds_to_gap(0.0, proven_target=True) <= outcome.seconds
    assert outcome.seconds_to_gap(-1.0) is None  # a gap below zero is never reached
    plan = extract_plan(model, outcome.values)
    plan.to_csv(tmp_path / "plan.csv", index=False)
    assert verify_plan(tiny_folder, tmp_path / "plan.csv") == []
    assert plan_objective(problem, plan) == pytest.approx(outcome.objective, rel=1e-9)
    assert set(problem.pins["case_id"]) <= set(plan["case_id"])

    # Level 1 (urgency) alone: the part the baseline solves.
    result = solve(problem, problem.settings.with_overrides(solver__time_limit=20,
                                                            objective__priorities=[["urgency"]]))
    level = result.levels[0]
    assert level.terms == ["urgency"]
    result.write(tmp_path / "out")
    assert verify_plan(tiny_folder, tmp_path / "out" / "plan.csv") == []
    # Both are exact: each plan is within the other's proven bound, and the optima agree.
    # Plans are compared by their urgency, pins included (the allocator's level-1 value may
    # leave the constant urgency of pins out; its bound moves by the same constant).
    allocator_urgency = plan_objective(problem, result.plan)
    shift = level.objective - allocator_urgency
    assert allocator_urgency <= outcome.bound + 1e-6
    assert outcome.objective <= level.bound - shift + 1e-6
    assert relative_gap(allocator_urgency, outcome.objective) <= 1e-4


def test_speed_ratio_marks_lower_bounds():
    alloc = {"level1_s": 2.0, "level1_objective": 10.0}
    reached = {"status": "optimal", "to_target_s": 50.0, "build_s": 1.0, "solve_s": 60.0}
    speed_ratio(alloc, reached)
    assert reached["speed_ratio"] == "25.0x" and reached["speed_ratio_lower_bound"] is False
    never = {"status": "feasible", "to_target_s": None, "build_s": 1.0, "solve_s": 119.0}
    speed_ratio(alloc, never)
    assert never["speed_ratio"].startswith("> 60.0x") and never["speed_ratio_lower_bound"] is True
    skipped = {"status": "skipped"}
    speed_ratio(alloc, skipped)
    assert skipped["speed_ratio"].startswith("n/a")


def test_cross_check_flags_a_plan_above_the_other_bound():
    alloc = {"solver": "allocator-l1", "level1_is_urgency": True, "level1_objective": 90.0, "level1_bound": 90.0,
             "plan_objective": 100.0}  # level 1 leaves 10 of pinned urgency out
    fine = {"level1_objective": 100.0, "level1_bound": 100.0, "plan_objective": 100.0}
    cross_check(alloc, fine)
    assert "INCONSISTENT" not in (fine.get("note") or "") and "pinned" in alloc["note"]
    wrong = {"level1_objective": 101.0, "level1_bound": 101.0, "plan_objective": 101.0}
    cross_check(alloc, wrong)
    assert "INCONSISTENT" in wrong["note"]


def _paces(header: str) -> list[tuple[float, float]]:
    """The seconds of the reference work (LP, Python loop) a results header gives, each positive."""
    found = re.findall(r"transportation LP by HiGHS ([\d.]+) s, a Python loop of [\d,]+ steps ([\d.]+) s", header)
    paces = [(float(lp), float(loop)) for lp, loop in found]
    assert all(lp > 0 and loop > 0 for lp, loop in paces)
    return paces


def test_runner_writes_the_table(tmp_path):
    folder = write_instance(dataclasses.replace(NAMED["small"], cases=20), tmp_path / "tiny")
    out = tmp_path / "results"
    text = io.StringIO()
    rows = run_benchmark([("tiny", folder)], time_limit=5, baseline_time_limit=30, out=out,
                         runs=tmp_path / "runs", console=Console(file=text, width=250))
    assert [r["solver"] for r in rows] == ["allocator", "allocator-l1", "baseline"]
    for row in rows:
        assert set(k for k, _ in COLUMNS) <= set(row)
        assert row["cases"] == 20
        assert row["status"] != "error", f"{row['solver']} failed: {row.get('note')} (see its run.log)"
        assert row["verified"] == "yes"
        assert row["peak_mib"] > 0 and row["variables"] > 0
        assert row["level1_objective"] is not None
        assert row["host_lp_s"] > 0 and row["host_loop_s"] > 0  # the host's pace just before the row
    allocator_row, first_row, baseline_row = rows
    assert first_row["level1_s"] > 0 and allocator_row["level1_s"] is None
    for row in (allocator_row, first_row):
        assert baseline_row["level1_objective"] == pytest.approx(row["plan_objective"], rel=2e-4)
    assert baseline_row["speed_ratio"].endswith("x") or baseline_row["speed_ratio"].startswith(">")
    assert "INCONSISTENT" not in (baseline_row.get("note") or "")

    with (out / f"results-{rows[0]['run_at'][:10]}.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == [k for k, _ in COLUMNS] + EXTRA
        assert len(list(reader)) == 3
    latest = (out / "latest.md").read_text()
    assert "| instance | cases | persons | solver |" in latest and "Machine:" in latest
    assert len(_paces(latest)) == 2  # the host's pace at the run's start and end
    assert "| host LP s | host loop s |" in latest and "host LP s" in text.getvalue()
    assert f"| {rows[0]['host_lp_s']:.3f} | {rows[0]['host_loop_s']:.3f} |" in latest
    assert "speed ratio" in text.getvalue()


def test_the_seeds_runner_solves_verifies_and_summarises_every_seed(tmp_path):
    out = tmp_path / "results"
    assert seeds_main(["--name", "small", "--seeds", "3", "--time-limit", "10", "--out", str(out)]) == 0
    [csv_path] = out.glob("seeds-small-*.csv")
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["seed"]) for r in rows] == [0, 1, 2]
    assert all(r["verified"] == "yes" and int(r["cases"]) == 200 and float(r["solve_s"]) > 0 for r in rows)
    assert all(float(r["host_lp_s"]) > 0 and float(r["host_loop_s"]) > 0 for r in rows)
    assert len({r["persons"] for r in rows}) > 1  # the seeds make different rounds
    latest = (out / "seeds-small-latest.md").read_text()
    median = statistics.median(float(r["solve_s"]) for r in rows)
    assert f"3 rounds: median {median:.2f} s" in latest and "Machine:" in latest
    assert len(_paces(latest)) == 2  # the host's pace at the run's start and end
    assert "| host LP s | host loop s |" in latest
    assert f"| {float(rows[2]['host_lp_s']):.3f} | {float(rows[2]['host_loop_s']):.3f} |" in latest
    # The process's peak so far, after each round: never less than before, and stated in the summary.
    peaks = [int(r["peak_mib"]) for r in rows]
    assert peaks == sorted(peaks) and peaks[0] > 0
    assert f"peak memory of the process {peaks[-1]:,} MiB" in latest


def test_a_seed_s_round_is_written_by_the_writer_it_is_given(tmp_path):
    """The runner hands the generator to a worker process (so that its memory is not the
    solver's); here a writer that runs in this process and records what it was given."""
    calls = []

    class Recording(Executor):
        def submit(self, fn, /, *args, **kwargs):
            calls.append((fn, args))
            future = Future()
            future.set_result(fn(*args, **kwargs))
            return future

    row = solve_seed(NAMED["small"], 1, 10.0, tmp_path, writer=Recording())
    assert calls == [(write_round, (NAMED["small"], 1, 10.0, tmp_path))]
    assert (tmp_path / "seed-1" / "cases.csv").exists() and row["verified"] == "yes" and row["seed"] == 1


def test_the_seeds_runner_solves_with_the_solver_seed_asked_for(tmp_path, monkeypatch):
    import allocator

    seeds_used = []
    real = allocator.solve

    def recording(problem, settings=None, **kwargs):
        seeds_used.append(settings.solver.seed)
        return real(problem, settings, **kwargs)

    monkeypatch.setattr(allocator, "solve", recording)
    out = tmp_path / "results"
    assert seeds_main(["--cases", "40", "--seeds", "2", "--solver-seed", "3", "--time-limit", "10",
                       "--out", str(out)]) == 0
    assert seeds_used == [3, 3, 3]  # the uncounted first solve and both rounds
    assert len(list(out.glob("seeds-40-cases-solver-seed-3-*.csv"))) == 1


def test_the_seeds_runner_reports_every_level_of_whole_proposals(tmp_path):
    out = tmp_path / "results"
    assert seeds_main(["--cases", "40", "--scores", "--all-levels", "--seeds", "2", "--time-limit", "10",
                       "--out", str(out)]) == 0
    [csv_path] = out.glob("seeds-40-cases-scores-all-levels-*.csv")
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["seed"]) for r in rows] == [0, 1]
    for r in rows:
        levels = r["levels"].split(" / ")
        assert len(levels) == 3 and int(r["cases"]) == 40 and r["verified"] == "yes"
        # The row's status is the worst level's: proven only when every level is.
        assert (r["status"] == "optimal") == all(level.startswith("proven ") for level in levels)
        for level in levels:  # each with its plan's value, and its gap unless proven
            status, value = level.split(" ")[:2]
            assert float(value.replace(",", "")) == float(value.replace(",", ""))  # a number, not NaN
            assert (status == "proven") == ("%" not in level)
            # What gave the bound, where there is one (a proven level has one).
            assert re.search(r" by (LP|MIP|ties count|trivial)\)?$", level) or "(-)" in level
    latest = (out / "seeds-40-cases-scores-all-levels-latest.md").read_text()
    assert "# Whole proposals over seeds of 40-cases-scores-all-levels" in latest


def test_the_seeds_summary_counts_what_it_says():
    rows = [{"solve_s": s, "status": st, "verified": v, "peak_mib": m} for s, st, v, m in [
        (0.5, "optimal", "yes", 200), (0.9, "optimal", "yes", 250), (1.0, "feasible", "yes", 250),
        (2.0, "optimal", "no (1)", 260)]]
    total = seeds_summary(rows, under=1.0)
    assert total == {"rounds": 4, "median_s": 0.95, "p90_s": 2.0, "max_s": 2.0, "under": 2, "proven": 3,
                     "verified": 3, "peak_mib": 260}


def test_a_plan_above_the_other_solvers_bound_is_a_contradiction():
    proven = ("optimal", 10.0, 10.0)
    levels = {"highs": [proven, ("optimal", 5.0, 5.0), ("feasible", -3.0, -1.0)],
              "scip": [proven, ("feasible", 5.5, 6.0), ("feasible", -2.0, -1.0)]}
    # Level 2: SCIP's plan (5.5) beats HiGHS's "proof" (5.0); level 3 is then not comparable.
    assert verdicts(levels) == ["agree", "CONTRADICTION", "locks differ"]
    levels["scip"][1] = ("feasible", 5.0, 6.0)
    assert verdicts(levels) == ["agree", "consistent", "consistent"]


def test_both_solvers_prove_the_same_optima_on_a_small_round(tmp_path):
    rows = solve_round(30, 1, False, 30.0, tmp_path)
    assert [r["verdict"] for r in rows] == ["agree"] * 3
    assert all(r["highs_verified"] and r["scip_verified"] for r in rows)
    assert rows[0]["highs_objective"] == pytest.approx(rows[0]["scip_objective"], rel=1e-4)


def test_the_recommend_runner_times_both_calls_and_verifies_every_candidate(tmp_path):
    out = tmp_path / "results"
    assert recommend_main(["--names", "small", "--instances", str(tmp_path / "instances"), "--cases", "1",
                           "--plan-time-limit", "2", "--time-limit", "2", "--out", str(out)]) == 0
    [csv_path] = out.glob("recommend-*.csv")
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    # The first placed case and the first unplaced one, each with both calls timed.
    assert [r["status"] for r in rows] == ["placed", "unplaced"]
    for r in rows:
        assert r["instance"] == "small" and int(r["considered"]) > 0 and r["verified"] == "yes"
        assert 0 < float(r["local_s"]) and 0 < float(r["timed_s"]) and float(r["time_limit"]) == 2
        assert sum(int(part.split()[1]) for part in r["methods"].split(", ")) == min(5, int(r["considered"]))
        assert float(r["host_lp_s"]) > 0 and float(r["host_loop_s"]) > 0
    latest = (out / "recommend-latest.md").read_text()
    assert "| instance | case | status | candidates | local s |" in latest and "Machine:" in latest
    assert f"| small | {rows[0]['case_id']} | placed | {rows[0]['considered']} |" in latest


def test_the_service_runner_follows_rounds_through_http_and_saves_the_table(tmp_path):
    out = tmp_path / "results"
    assert service_main(["--names", "small", "--instances", str(tmp_path / "instances"), "--repeats", "2",
                         "--time-limit", "2", "--urgency", "--recommend-time-limit", "0", "--out", str(out)]) == 0
    [csv_path] = out.glob("service-urgency-*.csv")
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for r in rows:
        assert r["instance"] == "small" and r["levels"] == "urgency" and r["verified"] == "yes"
        assert r["status"] == "optimal" and int(r["placed"]) > 0 and float(r["result_mb"]) > 0
        # Each step took time, and the run left the queue before it ended.
        steps = ["upload_s", "start_s", "to_running_s", "job_s", "result_s", "explain_s", "recommend_s"]
        assert all(float(r[k]) > 0 for k in steps)
        assert float(r["to_running_s"]) <= float(r["job_s"])
    latest = (out / "service-urgency-latest.md").read_text()
    assert "| instance | levels | time limit | upload s |" in latest and "Machine:" in latest
