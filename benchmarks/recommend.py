"""How long a recommendation takes on national rounds: the "best municipalities for this case"
call of ``allocator.recommend`` (``GET .../recommendations`` over HTTP).

Each named round (``allocator.demo.NAMED``, written by ``benchmarks.generate``) gets a plan from one
``solve()`` with ``--plan-time-limit``; then, for the first ``--cases`` cases of the plan and the
first unplaced one, ``recommend()`` runs twice: with ``time_limit=0`` (the local step alone:
every allowed municipality gets a plan with the case moved in, displacing less urgent cases if
need be) and with ``--time-limit`` (the best candidates also re-solved with the case pinned).
Every candidate the timed call returns is checked by ``allocator.verify_plan``.

    python -m benchmarks.recommend --names national-2k,national-10k,national-30k
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from .generate import DEFAULT_DIR, ensure_instance, named
from .reference import ROW_PACE_TEXT, reference_timings, row_pace
from .report import command_line, markdown_table, print_table, save
from .run import DEFAULT_OUT, git_commit, machine, machine_text

FIELDS = ["instance", "case_id", "status", "considered", "local_s", "time_limit", "timed_s", "resolved",
          "methods", "verified", "host_lp_s", "host_loop_s"]
HEADINGS = ["instance", "case", "status", "candidates", "local s", "time limit", "timed s", "re-solved",
            "methods returned", "verified", "host LP s", "host loop s"]
_LEFT = ("instance", "case", "status", "methods returned", "verified")


def _left(heading: str) -> bool:
    return heading in _LEFT


def recommend_row(problem, plan: pd.DataFrame, name: str, case_id: str, time_limit: float,
                  folder: Path, scratch: Path) -> dict[str, Any]:
    """Both calls for one case, and the timed call's candidates verified against the problem
    folder ``folder`` (their plans written in ``scratch``)."""
    from allocator import verify_plan
    from allocator.recommend import recommend

    pace = row_pace()
    started = time.perf_counter()
    local = recommend(problem, plan, case_id, limit=5, time_limit=0)
    local_s = time.perf_counter() - started
    started = time.perf_counter()
    timed = recommend(problem, plan, case_id, limit=5, time_limit=time_limit, with_plans=True)
    timed_s = time.perf_counter() - started
    bad = 0
    for i, candidate in enumerate(timed["candidates"]):
        plan_csv = scratch / f"candidate-{i}.csv"
        pd.DataFrame(candidate["plan"]).to_csv(plan_csv, index=False)
        bad += bool(verify_plan(folder, plan_csv))
    methods = Counter(c["method"] for c in timed["candidates"])
    return {
        "instance": name, "case_id": case_id, "status": local["status"], "considered": local["considered"],
        "local_s": round(local_s, 3), "time_limit": time_limit, "timed_s": round(timed_s, 3),
        "resolved": timed["resolved"], "methods": ", ".join(f"{m} {n}" for m, n in sorted(methods.items())),
        "verified": "yes" if not bad else f"no ({bad})", **pace,
    }


def _cells(r: dict[str, Any]) -> list[str]:
    return [r["instance"], r["case_id"], r["status"], str(r["considered"]), f"{r['local_s']:.2f}",
            f"{r['time_limit']:g}", f"{r['timed_s']:.2f}", str(r["resolved"]), r["methods"], r["verified"],
            f"{r['host_lp_s']:.3f}", f"{r['host_loop_s']:.3f}"]


def markdown(rows: list[dict[str, Any]], info: dict[str, Any], commit: str, day: str, command: str) -> str:
    lines = [
        f"# Recommendations on national rounds, {day}",
        "",
        f"Machine: {machine_text(info)}",
        f"Commit {commit}. Command: `{command}`.",
        "",
        "`local s` is `recommend()` with `time_limit=0` (every allowed municipality gets a plan with the "
        "case moved in, displacing less urgent cases if need be); `timed s` the same call with `time limit` "
        "seconds for re-solving the best candidates with the case pinned; `re-solved` how many it re-solved; "
        "`methods returned` how the five candidates returned were found; `verified` that each of their plans "
        "keeps every hard rule (`allocator.verify_plan`). " + ROW_PACE_TEXT,
        "",
    ]
    lines += markdown_table(HEADINGS, _left, [_cells(r) for r in rows])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recommend", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", default="national-2k,national-10k,national-30k",
                        help="comma-separated names of allocator.demo.NAMED")
    parser.add_argument("--instances", type=Path, default=DEFAULT_DIR, help="where the rounds are written")
    parser.add_argument("--cases", type=int, default=2, help="placed cases per round (and its first unplaced one)")
    parser.add_argument("--plan-time-limit", type=float, default=10.0, help="the solve that makes the plan")
    parser.add_argument("--time-limit", type=float, default=10.0, help="the timed recommendations' time limit")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the results go")
    parser.add_argument("--no-save", action="store_true", help="only print")
    args = parser.parse_args(argv)
    from allocator import read_problem, solve

    try:
        names = named(args.names)
    except ValueError as exc:
        parser.error(str(exc))
    console = Console()
    info, commit = machine(), git_commit()
    rows = []
    for name in names:
        folder = ensure_instance(name, args.instances)
        problem = read_problem(folder)
        result = solve(problem, problem.settings.with_overrides(solver__time_limit=args.plan_time_limit))
        cases = result.plan["case_id"].head(args.cases).tolist() + result.unplaced["case_id"].head(1).tolist()
        with tempfile.TemporaryDirectory() as tmp:
            for case_id in cases:
                rows.append(recommend_row(result.problem, result.plan, name, str(case_id), args.time_limit, folder,
                                          Path(tmp)))
                console.log(f"{name} {case_id}: local {rows[-1]['local_s']:.2f} s, "
                            f"timed {rows[-1]['timed_s']:.2f} s, {rows[-1]['methods']}")
    info["reference_end"] = reference_timings()

    print_table(console, "recommendations on national rounds", HEADINGS, _left, [_cells(r) for r in rows])
    if not args.no_save:
        text = markdown(rows, info, commit, dt.date.today().isoformat(), command_line("benchmarks.recommend", argv))
        save(args.out, "recommend", FIELDS, rows, commit, text, console)
    return 1 if any(r["verified"] != "yes" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
