"""The ``allocator`` command line: propose, verify, demo (and the service and scenario commands)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .errors import ProblemValidationError

console = Console()


def _print_result(result, out: Path | None) -> None:
    k = result.kpis()
    table = Table(title=f"Proposal: {result.status}", show_header=True, header_style="bold")
    table.add_column("measure")
    table.add_column("value", justify="right")
    gaps = [(level.gap, i) for i, level in enumerate(result.levels, 1) if level.gap is not None]
    gap = "n/a" if result.gap is None else f"{result.gap:.4%}" + (f" (level {max(gaps)[1]})" if gaps else "")
    rows = [
        ("status", result.status),
        ("largest proven gap", gap),
        ("cases placed", f"{k['cases_placed']} / {k['cases']}"),
        ("persons placed", f"{k['persons_placed']} / {k['persons']}"),
        ("long-waiting persons placed", f"{k['long_waiting_placed']} / {k['long_waiting_persons']}"),
        ("mean wait of placed (days)", f"{k['mean_wait_days_placed']}"),
        ("ties honoured", str(k["ties_honoured"])),
        ("time (s)", f"{result.total_seconds:.2f} (build {result.build_seconds:.2f})"),
        ("solver", result.solver),
        ("input digest", result.problem.digest[:16]),
    ]
    for i, level in enumerate(result.levels, 1):
        objective = "-" if level.objective is None else f"{level.objective:,.3f}"
        bound = "-" if level.bound is None else f"{level.bound:,.3f}"
        if level.bound_from:
            bound += f" by {level.bound_label}"
        rows.append((f"level {i}: {'+'.join(level.terms)}", f"{objective} (bound {bound}, {level.status})"))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if len(result.unplaced):
        counts = result.unplaced["rule"].value_counts()
        console.print("unplaced by rule: " + ", ".join(f"{rule} {n}" for rule, n in counts.items()))
    if out is not None:
        console.print(f"wrote {out}/plan.csv, unplaced.csv, municipalities.csv, summary.json")


def _propose(args: argparse.Namespace) -> int:
    from .reading import read_problem
    from .solve import solve

    problem = read_problem(args.problem_dir)
    overrides = {}
    if args.time_limit is not None:
        overrides["solver__time_limit"] = args.time_limit
    if args.seed is not None:
        overrides["solver__seed"] = args.seed
    settings = problem.settings.with_overrides(**overrides) if overrides else None
    result = solve(problem, settings)
    out = Path(args.out)
    result.write(out)
    _print_result(result, out)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .reading import read_problem
    from .verify import verify_plan

    # A plan of a folder that breaks the input rules is no plan: its errors, as for propose
    # (the verifier itself reads only valid folders, independently of the reader).
    read_problem(args.problem_dir)
    problems = verify_plan(args.problem_dir, args.plan_csv)
    if problems:
        for line in problems:
            console.print(f"[red]violation[/red] {line}")
        console.print(f"{len(problems)} violation(s)")
        return 1
    console.print("plan keeps every hard rule")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import NAMED, write_instance
    from .reading import read_problem
    from .solve import solve
    from .verify import verify_plan

    spec = NAMED[args.name]
    folder = write_instance(spec, Path(args.dir), time_limit=args.time_limit)
    console.print(f"wrote demo problem '{args.name}' ({spec.cases} cases, seed {spec.seed}) to {folder}")
    problem = read_problem(folder)
    result = solve(problem)
    out = Path(args.out)
    result.write(out)
    _print_result(result, out)
    problems = verify_plan(folder, out / "plan.csv")
    console.print("verify: " + ("plan keeps every hard rule" if not problems else f"{len(problems)} violations"))
    return 0 if not problems else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="allocator", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("propose", help="solve a problem folder and write the plan")
    p.add_argument("problem_dir")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--time-limit", type=float, help="seconds (overrides settings.toml)")
    p.add_argument("--seed", type=int, help="solver seed (overrides settings.toml)")
    p.set_defaults(run=_propose)

    p = sub.add_parser("verify", help="check a plan against every hard rule")
    p.add_argument("problem_dir")
    p.add_argument("plan_csv")
    p.set_defaults(run=_verify)

    from .demo import NAMED

    p = sub.add_parser("demo", help="write and solve a bundled demo problem")
    p.add_argument("--name", default="demo", choices=sorted(NAMED))
    p.add_argument("--dir", default="demo-problem", help="where to write the problem folder")
    p.add_argument("--out", default="demo-out", help="where to write the result")
    p.add_argument("--time-limit", type=float, default=60.0)
    p.set_defaults(run=_demo)
    _register_extensions(sub)
    return parser


def _register_extensions(sub: argparse._SubParsersAction) -> None:
    """Commands of the service and the scenario runner, when those packages provide them."""
    for module in ("api.cli", "scenarios.cli"):
        try:
            imported = __import__(module, fromlist=["register"])
        except ImportError:
            continue
        imported.register(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except ProblemValidationError as exc:
        console.print(f"[red]{exc.report(limit=200)}[/red]", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
