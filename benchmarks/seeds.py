"""How the time to level 1 (or to a whole proposal) varies over rounds of one size: one named
round of ``allocator.demo.NAMED`` (or ``InstanceSpec(cases=N)``, ``--cases``) generated with
seeds 0, 1, ..., each written as a problem folder, read, solved with urgency alone (or,
``--all-levels``, as a proposal is made: every level of the round's priorities) and its plan
checked by ``allocator.verify_plan``.

The benchmark table (``benchmarks.run``) has one round per size; the packing at the heart of
level 1 is a heuristic, so its time varies from round to round, and this shows by how much.
Every round is solved in this one process, after one solve that is not counted (imports and the
solver's first load), as in a long-running service; a worker process generates the rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from .reference import ROW_PACE_TEXT, reference_timings, row_pace
from .report import command_line, markdown_table, print_table, save
from .run import DEFAULT_OUT, git_commit, machine, machine_text

if TYPE_CHECKING:
    from allocator.demo import InstanceSpec

FIELDS = ["seed", "cases", "persons", "solve_s", "status", "gap", "levels", "verified", "peak_mib", "host_lp_s",
          "host_loop_s"]
#: Headings of the printed and Markdown tables, one per field.
HEADINGS = ["seed", "cases", "persons", "solve s", "status", "gap", "levels", "verified", "peak MiB", "host LP s",
            "host loop s"]
_LEFT = ("status", "levels", "verified")  # columns of text


def _left(heading: str) -> bool:
    return heading in _LEFT


def write_round(spec: InstanceSpec, seed: int, time_limit: float, directory: Path) -> Path:
    """Round ``spec`` generated with ``seed``, written as a problem folder in ``directory``."""
    from allocator.demo import write_instance

    return write_instance(dataclasses.replace(spec, seed=seed), directory / f"seed-{seed}", time_limit)


def solve_seed(spec: InstanceSpec, seed: int, time_limit: float, directory: Path,
               all_levels: bool = False, writer: Executor | None = None,
               solver_seed: int | None = None) -> dict[str, Any]:
    """Round ``spec`` generated with ``seed``: its ``solve()`` time and proof, of level 1 alone
    or, with ``all_levels``, of the whole proposal (the worst level's status and largest gap).
    With ``writer``, the round is generated there (another process, so that the generator's
    memory is not counted in this process's peak: writing one national-30k-scores round peaks
    at 1.5 GiB, more than solving it). ``solver_seed`` replaces the round's solver seed (the
    packing's and CP-SAT's)."""
    from allocator import read_problem, solve, verify_plan

    args = (spec, seed, time_limit, directory)
    folder = writer.submit(write_round, *args).result() if writer is not None else write_round(*args)
    problem = read_problem(folder)
    settings = problem.settings
    if not all_levels:
        settings = settings.with_overrides(objective__priorities=[["urgency"]])
    if solver_seed is not None:
        settings = settings.with_overrides(solver__seed=solver_seed)
    pace = row_pace()
    started = time.perf_counter()
    result = solve(problem, settings)
    seconds = time.perf_counter() - started
    result.write(folder / "out")
    violations = verify_plan(folder, folder / "out" / "plan.csv")
    gaps = [level.gap for level in result.levels]
    return {
        "seed": seed,
        "cases": len(problem.cases),
        "persons": int(problem.cases["size"].sum()),
        "solve_s": round(seconds, 3),
        "status": next((level.status for level in result.levels if level.status != "optimal"), "optimal"),
        "gap": None if None in gaps else max(gaps),
        "levels": " / ".join(_level_text(level.status, level.objective, level.gap, level.bound_label)
                             for level in result.levels),
        "verified": "yes" if not violations else f"no ({len(violations)})",
        # The process's peak so far (Linux: KiB): every round it read, solved and verified before
        # this one and the uncounted first solve included, so an upper bound on this round's own.
        "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **pace,
    }


def _level_text(status: str, objective: float | None, gap: float | None, bound_by: str = "") -> str:
    """A level's status, its plan's value and, unless proven, its gap (rounds that end at the
    same gap may differ in their plans), with what gave the bound (``LevelResult.bound_label``)."""
    if objective is None:
        return status
    by = f" by {bound_by}" if bound_by else ""
    return f"proven {objective:,.2f}{by}" if status == "optimal" else f"{status} {objective:,.2f} ({_gap(gap)}{by})"


def summary(rows: list[dict[str, Any]], under: float) -> dict[str, Any]:
    times = sorted(r["solve_s"] for r in rows)
    return {
        "rounds": len(rows),
        "median_s": statistics.median(times),
        "p90_s": times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))],
        "max_s": times[-1],
        "under": sum(t < under for t in times),
        "proven": sum(r["status"] == "optimal" for r in rows),
        "verified": sum(r["verified"] == "yes" for r in rows),
        "peak_mib": max(r["peak_mib"] for r in rows),
    }


def _gap(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.4f}%"


def _cells(r: dict[str, Any]) -> list[str]:
    """A round's row, one cell per heading."""
    return [str(r["seed"]), f"{r['cases']:,}", f"{r['persons']:,}", f"{r['solve_s']:.2f}", r["status"], _gap(r["gap"]),
            r["levels"], r["verified"], f"{r['peak_mib']:,}", f"{r['host_lp_s']:.3f}", f"{r['host_loop_s']:.3f}"]


def markdown(name: str, rows: list[dict[str, Any]], total: dict[str, Any], under: float, info: dict[str, Any],
             commit: str, day: str, command: str, all_levels: bool = False) -> str:
    what = "Whole proposals" if all_levels else "Level 1"
    lines = [
        f"# {what} over seeds of {name}, {day}",
        "",
        f"Machine: {machine_text(info)}",
        f"Commit {commit}. Command: `{command}`.",
        "",
        f"{total['rounds']} rounds: median {total['median_s']:.2f} s, 90th percentile {total['p90_s']:.2f} s, "
        f"max {total['max_s']:.2f} s; {total['under']} under {under:g} s; {total['proven']} proven within the "
        f"relative gap; {total['verified']} verified; peak memory of the process {total['peak_mib']:,} MiB.",
        "",
        f"`solve s` is the whole `solve()` {'with every level of the round' if all_levels else 'with urgency alone'} "
        "(building, every re-solve and the plan's extraction); reading the folder and verifying the plan "
        "are not in it. `status` and `gap` are the worst level's; `levels` gives each level: its status, "
        "its plan's value and, unless proven, its gap. `peak MiB` is the solving process's peak memory "
        "(`ru_maxrss`) once the round was read, solved and verified: the rounds before it and the uncounted "
        "first solve included, so at least this round's own peak (the rounds are generated in another "
        "process). " + ROW_PACE_TEXT,
        "",
    ]
    lines += markdown_table(HEADINGS, _left, [_cells(r) for r in rows])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seeds", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="national-2k", help="a round of allocator.demo.NAMED")
    parser.add_argument("--cases", type=int, help="rounds of InstanceSpec(cases=N) instead of a named one")
    parser.add_argument("--scores", action="store_true", help="with --cases: rounds with supplied scores")
    parser.add_argument("--all-levels", action="store_true",
                        help="solve every level of the round's priorities, as a proposal is made")
    parser.add_argument("--seeds", type=int, default=32, help="seeds 0 .. N-1 (default 32)")
    parser.add_argument("--solver-seed", type=int,
                        help="the solver's seed for every round (the packing's and CP-SAT's; default: the round's, 0)")
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--under", type=float, default=1.0, help="count the rounds solved in less (seconds)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the results go")
    parser.add_argument("--no-save", action="store_true", help="only print")
    args = parser.parse_args(argv)

    from allocator.demo import NAMED, InstanceSpec

    if args.cases is not None:
        spec = InstanceSpec(cases=args.cases, with_scores=args.scores)
        name = f"{args.cases}-cases" + ("-scores" if args.scores else "")
    elif args.name in NAMED:
        spec, name = NAMED[args.name], args.name
    else:
        parser.error(f"unknown round {args.name!r}; known: {', '.join(NAMED)}")
    if args.scores and args.cases is None:
        parser.error("--scores goes with --cases (named rounds with scores end in -scores)")
    if args.all_levels:
        name += "-all-levels"
    if args.solver_seed is not None:
        name += f"-solver-seed-{args.solver_seed}"
    console = Console()
    info, commit = machine(), git_commit()
    rows = []
    # One worker process writes the rounds; "spawn", as this process runs solvers' threads.
    writer = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    with writer, tempfile.TemporaryDirectory() as tmp:
        solve_seed(spec, args.seeds, args.time_limit, Path(tmp), writer=writer,  # not counted: the first load
                   solver_seed=args.solver_seed)
        for seed in range(args.seeds):
            rows.append(solve_seed(spec, seed, args.time_limit, Path(tmp), args.all_levels, writer, args.solver_seed))
            console.log(f"{name} seed {seed}: {rows[-1]['solve_s']:.2f} s, {rows[-1]['levels']}")
    total = summary(rows, args.under)
    info["reference_end"] = reference_timings()  # the host's pace may change during the run

    print_table(console, f"{'whole proposals' if args.all_levels else 'level 1'} over seeds of {name}",
                HEADINGS, _left, [_cells(r) for r in rows])
    console.print(f"median {total['median_s']:.2f} s, p90 {total['p90_s']:.2f} s, max {total['max_s']:.2f} s; "
                  f"{total['under']} of {total['rounds']} under {args.under:g} s; {total['proven']} proven; "
                  f"{total['verified']} verified; peak {total['peak_mib']:,} MiB")
    if not args.no_save:
        text = markdown(name, rows, total, args.under, info, commit, dt.date.today().isoformat(),
                        command_line("benchmarks.seeds", argv), args.all_levels)
        save(args.out, f"seeds-{name}", FIELDS, rows, commit, text, console)
    failed = [r for r in rows if r["verified"] != "yes"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
