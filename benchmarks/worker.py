"""One measured run in its own process: the allocator or the baseline on one problem folder.

The runner (``benchmarks/run.py``) starts one process per run, so each run's peak memory is its
own. Used by the runner; by hand:

    python -m benchmarks.worker allocator PROBLEM_DIR OUT_DIR --time-limit 60
    python -m benchmarks.worker allocator-l1 PROBLEM_DIR OUT_DIR --time-limit 60   # level 1 alone
    python -m benchmarks.worker baseline  PROBLEM_DIR OUT_DIR --time-limit 120 --relative-gap 1e-4
    python -m benchmarks.worker verify    PROBLEM_DIR PLAN_CSV

``allocator``, ``allocator-l1`` and ``baseline`` write ``OUT_DIR/metrics.json`` and ``OUT_DIR/plan.csv``;
``verify`` prints ``{"violations": [...]}`` as JSON (``allocator.verify_plan``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def vm_hwm_mib() -> float | None:
    """Peak resident memory of this process image (``VmHWM``, reset by exec), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def run_allocator(folder: Path, out: Path, time_limit: float, level1_only: bool = False) -> dict[str, Any]:
    """``allocator.solve`` on ``allocator.read_problem(folder)`` with ``time_limit``.

    ``level1_only``: the objective is level 1 (urgency) alone, so the wall time of ``solve`` is
    the allocator's whole time to its level-1 result (building, every re-solve of the level and
    the plan's extraction included), measured here rather than taken from ``Result``.
    """
    from allocator import read_problem, solve

    started = time.perf_counter()
    problem = read_problem(folder)
    read_s = time.perf_counter() - started
    overrides: dict[str, Any] = {"solver__time_limit": time_limit}
    if level1_only:
        overrides["objective__priorities"] = [["urgency"]]
    settings = problem.settings.with_overrides(**overrides)
    t = time.perf_counter()
    result = solve(problem, settings)
    solve_wall_s = time.perf_counter() - t
    result.write(out)
    total_s = time.perf_counter() - started
    # The plan's urgency (pinned cases included), to compare plans whatever the level-1 value
    # counts: the allocator may leave the constant urgency of pins out of it.
    placed = result.plan["case_id"]
    plan_urgency = float(problem.cases["urgency"].reindex(placed).sum())

    levels = [
        {
            "terms": list(level.terms),
            "status": level.status,
            "objective": level.objective,
            "bound": level.bound,
            "bound_from": level.bound_from or None,
            "gap": level.gap,
            "seconds": level.seconds,
        }
        for level in result.levels
    ]
    sizes = dict(getattr(result, "model_sizes", {}) or {})
    build_s = float(getattr(result, "build_seconds", 0.0) or 0.0)
    first = levels[0] if levels else {}
    gaps = [lv["gap"] for lv in levels if lv["status"] != "not_run"]
    urgency_first = bool(levels) and levels[0]["terms"] == ["urgency"]
    return {
        "solver": "allocator-l1" if level1_only else "allocator",
        "solver_version": getattr(result, "solver", ""),
        "variables": sizes.get("variables"),
        "integer_variables": sizes.get("integer"),
        "constraints": sizes.get("constraints"),
        "nonzeros": sizes.get("nonzeros"),
        "model_sizes": sizes,
        "read_s": read_s,
        "build_s": build_s,
        "solve_s": solve_wall_s - build_s,
        "solve_wall_s": solve_wall_s,
        "levels_s": sum(lv["seconds"] for lv in levels),
        "total_s": total_s,
        "level1_terms": first.get("terms"),
        "level1_is_urgency": urgency_first,
        "level1_status": first.get("status"),
        "level1_objective": first.get("objective"),
        "level1_bound": first.get("bound"),
        "level1_gap": first.get("gap"),
        # Time to the level-1 result, reading excluded: the whole solve() when level 1 is all
        # there is; otherwise not measured here (Result's level seconds leave re-solves out).
        "level1_s": solve_wall_s if level1_only else None,
        "level1_reported_s": build_s + float(first.get("seconds") or 0.0),
        "status": result.status,
        "max_gap": None if any(g is None for g in gaps) or not gaps else max(gaps),
        "levels": levels,
        "plan_rows": len(result.plan),
        "plan_objective": plan_urgency,
        "cases": len(problem.cases),
        "persons": int(problem.cases["size"].sum()),
        "municipalities": len(problem.municipalities),
        "time_limit": time_limit,
    }


def run_baseline(
    folder: Path,
    out: Path,
    time_limit: float,
    relative_gap: float,
    max_variables: int,
    presolve: bool = True,
) -> dict[str, Any]:
    """The per-pair model (``benchmarks.baseline``) on the folder, level 1 (urgency) only."""
    from allocator import read_problem

    from .baseline import build_baseline, extract_plan, model_size, plan_objective, solve_baseline

    started = time.perf_counter()
    problem = read_problem(folder)
    read_s = time.perf_counter() - started
    common = {
        "solver": "baseline",
        "cases": len(problem.cases),
        "persons": int(problem.cases["size"].sum()),
        "municipalities": len(problem.municipalities),
        "read_s": read_s,
        "time_limit": time_limit,
        "target_gap": relative_gap,
        "presolve": presolve,
    }
    size = model_size(problem)
    if size["variables"] > max_variables:
        return {
            **common,
            "status": "skipped",
            "note": f"not built: {size['variables']:,} variables > --baseline-max-variables {max_variables:,}",
            "variables": size["variables"],
            "integer_variables": size["integer"],
            "constraints": size["constraints_at_most"],
            "model_sizes": size,
            "total_s": time.perf_counter() - started,
        }
    t = time.perf_counter()
    model = build_baseline(problem)
    build_s = time.perf_counter() - t
    log: list[str] = []
    outcome = solve_baseline(model, time_limit=time_limit, relative_gap=relative_gap, presolve=presolve,
                             log_lines=log)
    (out / "highs.log").write_text("\n".join(log) + "\n", encoding="utf-8")
    t = time.perf_counter()
    plan_rows = 0
    recomputed = None
    if outcome.values is not None:
        plan = extract_plan(model, outcome.values)
        plan.to_csv(out / "plan.csv", index=False)
        plan_rows = len(plan)
        recomputed = plan_objective(problem, plan)
    extract_s = time.perf_counter() - t
    reached = outcome.seconds_to_gap(relative_gap, proven_target=True)
    sizes = model.sizes()
    return {
        **common,
        "solver_version": outcome.solver,
        "variables": sizes["variables"],
        "integer_variables": sizes["integer"],
        "constraints": sizes["constraints"],
        "nonzeros": sizes["nonzeros"],
        "model_sizes": sizes,
        "build_s": build_s,
        "solve_s": outcome.seconds,
        "extract_s": extract_s,
        "total_s": time.perf_counter() - started,
        "level1_terms": ["urgency"],
        "level1_is_urgency": True,
        "level1_status": outcome.status,
        "level1_objective": outcome.objective,
        "level1_bound": outcome.bound,
        "level1_gap": outcome.gap,
        "level1_s": build_s + outcome.seconds,
        "status": outcome.status,
        "max_gap": outcome.gap,
        "nodes": outcome.nodes,
        "threads": "HiGHS default",
        "detail": outcome.detail,
        "seconds_to_target": reached,  # solve seconds at which target_gap was first proven
        "to_target_s": None if reached is None else build_s + reached,
        "progress": [list(p) for p in outcome.progress],
        "plan_rows": plan_rows,
        "plan_objective": recomputed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    for name in ("allocator", "allocator-l1"):
        a = sub.add_parser(name)
        a.add_argument("folder", type=Path)
        a.add_argument("out", type=Path)
        a.add_argument("--time-limit", type=float, default=60.0)
    b = sub.add_parser("baseline")
    b.add_argument("folder", type=Path)
    b.add_argument("out", type=Path)
    b.add_argument("--time-limit", type=float, default=120.0)
    b.add_argument("--relative-gap", type=float, default=1e-4)
    b.add_argument("--max-variables", type=int, default=3_000_000)
    b.add_argument("--no-presolve", action="store_true")
    v = sub.add_parser("verify")
    v.add_argument("folder", type=Path)
    v.add_argument("plan", type=Path)
    args = parser.parse_args(argv)

    if args.what == "verify":
        from allocator import verify_plan

        print(json.dumps({"violations": verify_plan(args.folder, args.plan)}))
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        if args.what in ("allocator", "allocator-l1"):
            metrics = run_allocator(args.folder, args.out, args.time_limit, level1_only=args.what == "allocator-l1")
        else:
            metrics = run_baseline(args.folder, args.out, args.time_limit, args.relative_gap,
                                   args.max_variables, presolve=not args.no_presolve)
        code = 0
    except Exception as exc:  # reported in the table, not hidden
        traceback.print_exc()
        metrics = {"solver": args.what, "status": "error", "note": f"{type(exc).__name__}: {exc}"[:300],
                   "total_s": time.perf_counter() - started}
        code = 1
    metrics["vm_hwm_mib"] = vm_hwm_mib()
    if "allocator" in sys.modules:
        metrics["code"] = str(Path(sys.modules["allocator"].__file__).resolve().parent.parent)
    (args.out / "metrics.json").write_text(json.dumps(_clean(metrics), indent=1), encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main())
