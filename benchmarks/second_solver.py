"""The allocator's proofs checked against a second solver: each round is solved twice, with HiGHS
(the default) and with SCIP (``solver.backend = "scip"``), every level of the default priorities,
and each plan verified by ``allocator.verify_plan``.

Level by level, while the levels above reached the same value with both (so the same locks hold
below), a plan may not score above the other solver's bound. Where both prove a level, their
optima must agree; where a plan beats the other's bound, that bound is wrong, and the run
says CONTRADICTION and exits 1. HiGHS claimed such proofs with one of its presolve rules, now off
(docs/model.md, "Proof"); this is how it was found, on a 400-case round.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from .report import command_line, markdown_table, print_table, save
from .run import DEFAULT_OUT, git_commit, machine, machine_text

SOLVERS = ("highs", "scip")
#: Relative difference between two values that is only the last bits.
TOLERANCE = 1e-6


def _above(value: float | None, bound: float | None) -> bool:
    """Whether a plan's ``value`` lies above a (maximisation) ``bound`` by more than noise."""
    return value is not None and bound is not None and value > bound + TOLERANCE * max(1.0, abs(bound))


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= TOLERANCE * max(1.0, abs(a))


def verdicts(levels: dict[str, list[tuple[str, float | None, float | None]]]) -> list[str]:
    """One verdict per level from each solver's (status, objective, bound).

    ``CONTRADICTION``: a plan above the other's bound, which is therefore wrong; ``agree``: both
    proved the level (so within the gap of each other); ``consistent``: each plan within the
    other's bound; ``locks differ``: a level above ended at different values, so from there on
    the two solved different problems.
    """
    out: list[str] = []
    comparable = True
    for (s1, v1, b1), (s2, v2, b2) in zip(*(levels[name] for name in SOLVERS)):
        if not comparable:
            out.append("locks differ")
        elif _above(v1, b2) or _above(v2, b1):
            out.append("CONTRADICTION")
        else:
            out.append("agree" if s1 == s2 == "optimal" else "consistent")
        comparable = comparable and _same(v1, v2)
    return out


def solve_round(cases: int, seed: int, scores: bool, time_limit: float, directory: Path) -> list[dict[str, Any]]:
    """Solve one generated round with both solvers; one row per level."""
    from allocator import read_problem, solve, verify_plan
    from allocator.demo import InstanceSpec, write_instance

    folder = write_instance(InstanceSpec(cases=cases, seed=seed, with_scores=scores),
                            directory / f"round-{cases}-{seed}{'-scores' if scores else ''}", time_limit)
    problem = read_problem(folder)
    levels, seconds, verified = {}, {}, {}
    for name in SOLVERS:
        settings = problem.settings.with_overrides(solver__backend=name)
        started = time.perf_counter()
        result = solve(problem, settings)
        seconds[name] = time.perf_counter() - started
        result.write(folder / name)
        verified[name] = not verify_plan(folder, folder / name / "plan.csv")
        levels[name] = [(level.status, level.objective, level.bound) for level in result.levels]
        terms = ["+".join(level.terms) for level in result.levels]
    rows = []
    for k, verdict in enumerate(verdicts(levels)):
        row: dict[str, Any] = {"cases": cases, "seed": seed, "scores": scores, "level": k + 1, "terms": terms[k],
                               "verdict": verdict}
        for name in SOLVERS:
            status, objective, bound = levels[name][k]
            row |= {f"{name}_status": status, f"{name}_objective": objective, f"{name}_bound": bound,
                    f"{name}_s": round(seconds[name], 1), f"{name}_verified": verified[name]}
        rows.append(row)
    return rows


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4f}"


def _cells(row: dict[str, Any]) -> list[str]:
    return [f"{row['cases']:,}", str(row["seed"]), "yes" if row["scores"] else "no", str(row["level"]), row["terms"],
            *[f"{row[f'{n}_status']} {_number(row[f'{n}_objective'])} / {_number(row[f'{n}_bound'])}"
              for n in SOLVERS],
            f"{row['highs_s']:.1f} / {row['scip_s']:.1f}",
            "yes" if row["highs_verified"] and row["scip_verified"] else "NO", row["verdict"]]


HEADINGS = ["cases", "seed", "scores", "level", "terms", "HiGHS: status objective / bound",
            "SCIP: status objective / bound", "solve s (HiGHS / SCIP)", "verified", "verdict"]


def markdown(rows: list[dict[str, Any]], info: dict[str, Any], commit: str, day: str, command: str) -> str:
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("agree", "consistent", "locks differ",
                                                                   "CONTRADICTION")}
    lines = [
        f"# Proofs against a second solver, {day}",
        "",
        f"Machine: {machine_text(info)}",
        f"Commit {commit}. Command: `{command}`.",
        "",
        f"{len(rows)} levels: {counts['agree']} proven by both and agreeing, {counts['consistent']} consistent "
        f"(each plan within the other's bound), {counts['locks differ']} not comparable (a level above ended "
        f"at different values), {counts['CONTRADICTION']} contradictions.",
        "",
        "Each round is generated by `allocator.demo.InstanceSpec(cases, seed)` and solved with the "
        "default priorities, once with HiGHS and once with SCIP; both plans are verified.",
        "",
    ]
    lines += markdown_table(HEADINGS, _left, [_cells(r) for r in rows])
    return "\n".join(lines) + "\n"


def _left(heading: str) -> bool:
    return heading not in ("cases", "seed", "level")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.second_solver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="60,120", help="cases per round, comma-separated")
    parser.add_argument("--seeds", type=int, default=4, help="seeds 1 .. N (default 4)")
    parser.add_argument("--scores", action="store_true", help="rounds with supplied scores")
    parser.add_argument("--time-limit", type=float, default=60.0, help="per solve (seconds)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the results go")
    parser.add_argument("--no-save", action="store_true", help="only print")
    args = parser.parse_args(argv)

    console = Console()
    info, commit = machine(), git_commit()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for cases in (int(s) for s in args.sizes.split(",")):
            for seed in range(1, args.seeds + 1):
                found = solve_round(cases, seed, args.scores, args.time_limit, Path(tmp))
                rows += found
                console.log(f"{cases} cases, seed {seed}: " + ", ".join(r["verdict"] for r in found))
    print_table(console, "proofs against a second solver", HEADINGS, _left, [_cells(r) for r in rows])
    if rows and not args.no_save:
        name = "second-solver-scores" if args.scores else "second-solver"
        text = markdown(rows, info, commit, dt.date.today().isoformat(), command_line("benchmarks.second_solver", argv))
        save(args.out, name, list(rows[0]), rows, commit, text, console)
    bad = [r for r in rows if r["verdict"] == "CONTRADICTION" or not (r["highs_verified"] and r["scip_verified"])]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
