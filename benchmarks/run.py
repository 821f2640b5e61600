"""Run the allocator and the per-pair baseline on the national instances; print and save a table.

    python -m benchmarks.run --sizes 1k,2k                       # both solvers, 1k and 2k cases
    python -m benchmarks.run --sizes 5k,10k,30k --no-baseline    # the allocator only
    python -m benchmarks.run --sizes 1k --scores                 # the -scores variants

For every instance the allocator runs first (``allocator.solve`` on ``allocator.read_problem``,
``--time-limit``), then the baseline (``benchmarks/baseline.py``, level 1 only, with
``--baseline-time-limit`` and the allocator's proven level-1 gap as its relative gap), each in its
own process so its peak memory is its own; every plan is checked with ``allocator.verify_plan``
(also in its own process). The table goes to the screen and to
``<out>/results-<date>.csv``, ``<out>/results-<date>.md`` and ``<out>/latest.md`` with the machine
and date; rows of an earlier run on the same day are kept unless they are re-run (``--fresh``
starts the day's file anew). Logs, plans and raw metrics go to ``benchmarks/runs/<time>/``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .generate import DEFAULT_DIR, SIZES, instance_names
from .reference import ROW_PACE_TEXT, reference_text, reference_timings, row_pace

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results"
DEFAULT_RUNS = ROOT / "benchmarks" / "runs"

#: (CSV column, heading in the printed and Markdown tables)
COLUMNS = [
    ("instance", "instance"),
    ("cases", "cases"),
    ("persons", "persons"),
    ("solver", "solver"),
    ("variables", "variables"),
    ("integer_variables", "integer vars"),
    ("constraints", "rows"),
    ("read_s", "read s"),
    ("build_s", "build s"),
    ("solve_s", "solve s"),
    ("total_s", "total s"),
    ("plan_rows", "placed"),
    ("level1_objective", "L1 objective"),
    ("level1_bound", "L1 bound"),
    ("level1_gap", "L1 gap"),
    ("level1_s", "to L1 s"),
    ("status", "status"),
    ("max_gap", "max gap"),
    ("peak_mib", "peak MiB"),
    ("verified", "verified"),
    ("speed_ratio", "speed ratio"),
    ("host_lp_s", "host LP s"),
    ("host_loop_s", "host loop s"),
]
#: Further CSV columns (raw numbers and context).
EXTRA = [
    "violations",
    "plan_objective",
    "speed_ratio_value",
    "speed_ratio_lower_bound",
    "target_gap",
    "to_target_s",
    "time_limit",
    "vm_hwm_mib",
    "wall_s",
    "solver_version",
    "code",
    "note",
    "run_at",
    "commit",
]


# -- machine and provenance ---------------------------------------------------------------------

def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python and OR-Tools versions of this machine, its load, and
    the seconds it takes for fixed work (:mod:`.reference`)."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        ortools_version = metadata.version("ortools")
    except metadata.PackageNotFoundError:
        ortools_version = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "ram_gib": ram_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "ortools": ortools_version,
        "load_average": _load(),
        "reference": reference_timings(),
    }


def machine_text(info: dict[str, Any]) -> str:
    """:func:`machine` as one sentence, for the results' Markdown."""
    return (f"{info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), {info['ram_gib']} GiB RAM, "
            f"{info['os']}; Python {info['python']}, OR-Tools {info['ortools']}; load average when the run "
            f"started {info['load_average']} (1, 5, 15 min); {reference_text(info['reference'])}"
            + (f"; at its end: {reference_text(info['reference_end'])}" if "reference_end" in info else "") + ".")


def _load() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews the times."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def git_commit() -> str:
    """Short commit of the repository, with ``+dirty`` when allocator/ has uncommitted changes.

    ``BENCHMARK_COMMIT`` in the environment overrides it (a run from a ``git archive`` snapshot).
    """
    if os.environ.get("BENCHMARK_COMMIT"):
        return os.environ["BENCHMARK_COMMIT"]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "allocator"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# -- child processes ------------------------------------------------------------------------------

def run_child(args: list[str], log: Path, timeout: float) -> tuple[int, float | None, float]:
    """Run ``python -m benchmarks.worker ARGS``; returns exit code, peak RSS (MiB) and wall time.

    The peak is the child's own ``ru_maxrss`` from ``os.wait4`` (Linux counts the RSS the child
    had when it was forked from this process too, so the runner stays light: it never loads a
    problem itself).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.worker", *args], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    return proc.returncode, usage.ru_maxrss / 1024, wall


def verify(folder: Path, plan: Path, log: Path) -> list[str] | None:
    """Violations of the plan (``allocator.verify_plan``), or None when there is no plan."""
    if not plan.exists():
        return None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run([sys.executable, "-m", "benchmarks.worker", "verify", str(folder), str(plan)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        return [f"verifier failed: {done.stderr.strip()[-300:]}"]
    return json.loads(done.stdout.strip().splitlines()[-1])["violations"]


def _metrics(out: Path) -> dict[str, Any]:
    path = out / "metrics.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"status": "error", "note": "no metrics written (killed or crashed; see the run's log)"}


# -- one instance ---------------------------------------------------------------------------------

def bench_instance(
    name: str,
    folder: Path,
    runs: Path,
    *,
    time_limit: float,
    baseline: bool,
    baseline_time_limit: float,
    baseline_gap: float | None,
    max_variables: int,
    presolve: bool = True,
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """Allocator and (optionally) baseline rows of one instance."""
    say = console.print if console is not None else (lambda *a, **k: None)
    rows: list[dict[str, Any]] = []

    def one(solver: str, args: list[str], timeout: float) -> dict[str, Any]:
        out = runs / name / solver
        out.mkdir(parents=True, exist_ok=True)
        say(f"[bold]{name}[/bold]: {solver} ...")
        pace = row_pace()
        code, peak, wall = run_child([solver, str(folder), str(out), *args], out / "run.log", timeout)
        m = _metrics(out)
        m.update(instance=name, solver=solver, peak_mib=peak, wall_s=wall, **pace)
        if code != 0 and m.get("status") not in ("error",):
            m["status"] = "error"
            m["note"] = (m.get("note") or "") + f" exit code {code}"
        violations = verify(folder, out / "plan.csv", out / "verify.log")
        if violations is None:
            m["verified"], m["violations"] = "n/a (no plan)", None
        else:
            m["verified"] = "yes" if not violations else f"no ({len(violations)})"
            m["violations"] = len(violations)
            if violations:
                (out / "violations.txt").write_text("\n".join(violations) + "\n", encoding="utf-8")
        say(f"  {m.get('status')} level-1 {m.get('level1_objective')} gap {m.get('level1_gap')} "
            f"in {wall:.1f}s, peak {peak:.0f} MiB, verified {m['verified']}")
        return m

    alloc = one("allocator", ["--time-limit", str(time_limit)], timeout=time_limit * 3 + 600)
    rows.append(alloc)
    # Level 1 alone: the allocator's whole time to its level-1 result, measured around solve().
    first = one("allocator-l1", ["--time-limit", str(time_limit)], timeout=time_limit * 3 + 600)
    rows.append(first)
    if not baseline:
        return _fill_instance(rows)

    target = baseline_gap
    if target is None:
        target = first.get("level1_gap")
        if target is None:
            target = 1e-4
    args = ["--time-limit", str(baseline_time_limit), "--relative-gap", repr(float(target)),
            "--max-variables", str(max_variables)]
    if not presolve:
        args.append("--no-presolve")
    base = one("baseline", args, timeout=baseline_time_limit * 3 + 900)
    rows.append(base)
    speed_ratio(first, base)
    for allocator_row in (alloc, first):
        cross_check(allocator_row, base)
    return _fill_instance(rows)


def _fill_instance(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run that failed early still shows the instance's cases and persons (from another run)."""
    for key in ("cases", "persons"):
        known = next((r[key] for r in rows if r.get(key) is not None), None)
        for r in rows:
            if r.get(key) is None:
                r[key] = known
    return rows


def speed_ratio(alloc: dict[str, Any], base: dict[str, Any]) -> None:
    """Baseline time to the allocator's proven level-1 gap / the allocator's time to it.

    ``alloc`` is the level-1-only allocator run: its time is the whole ``solve()`` (building,
    re-solves and extraction included); the baseline's is building (arrays and proto) plus the
    solve until the gap was first proven. Reading the folder is excluded for both. When the
    baseline never proves the gap within its time limit, its whole time gives a lower bound.
    """
    a = alloc.get("level1_s")
    if base.get("status") == "skipped":
        base["speed_ratio"] = "n/a (baseline not built)"
        return
    if not a or alloc.get("level1_objective") is None:
        base["speed_ratio"] = "n/a (no allocator level 1)"
        return
    if base.get("to_target_s") is not None:
        value = base["to_target_s"] / a
        base.update(speed_ratio_value=value, speed_ratio_lower_bound=False, speed_ratio=f"{value:,.1f}x")
        return
    spent = (base.get("build_s") or 0.0) + (base.get("solve_s") or 0.0)
    if not spent:
        spent = base.get("wall_s") or 0.0
    value = spent / a
    base.update(speed_ratio_value=value, speed_ratio_lower_bound=True,
                speed_ratio=f"> {value:,.1f}x (gap not reached in {spent:.0f} s)")


def cross_check(alloc: dict[str, Any], base: dict[str, Any]) -> None:
    """Both solve the same level 1 exactly: each plan must sit below the other's proven bound.

    Plans are compared by their urgency (``plan_objective``, pinned cases included). The
    allocator's level-1 value may leave the constant urgency of pins out; its bound is shifted by
    the same constant (``level1_objective - plan_objective``) before the comparison.
    """
    who = str(alloc.get("solver"))
    if not alloc.get("level1_is_urgency"):
        _note(base, f"{who} level 1 is not urgency alone: not comparable")
        return
    tol = lambda v: 1e-6 * max(1.0, abs(v))  # noqa: E731
    a_obj, a_bound, a_plan = alloc.get("level1_objective"), alloc.get("level1_bound"), alloc.get("plan_objective")
    b_obj, b_bound, b_plan = base.get("level1_objective"), base.get("level1_bound"), base.get("plan_objective")
    problems = []
    if a_plan is not None and b_bound is not None and a_plan > b_bound + tol(b_bound):
        problems.append(f"{who} plan urgency {a_plan:.6f} above the baseline's bound {b_bound:.6f}")
    if b_plan is not None and a_bound is not None and a_obj is not None and a_plan is not None:
        shifted = a_bound - (a_obj - a_plan)
        if b_plan > shifted + tol(shifted):
            problems.append(f"baseline plan urgency {b_plan:.6f} above {who}'s bound {shifted:.6f}")
    if b_obj is not None and b_plan is not None and abs(b_obj - b_plan) > 10 * tol(b_obj):
        problems.append(f"baseline plan urgency {b_plan:.6f} differs from its objective {b_obj:.6f}")
    if problems:
        _note(base, "INCONSISTENT: " + "; ".join(problems))
    if a_obj is not None and a_plan is not None and abs(a_obj - a_plan) > 10 * tol(a_obj):
        _note(alloc, f"level-1 objective {a_obj:.6f} differs from the plan's urgency {a_plan:.6f} "
                     "(pinned cases left out?)")


def _note(row: dict[str, Any], text: str) -> None:
    if text not in (row.get("note") or ""):
        row["note"] = ((row.get("note") or "") + " " + text).strip()


# -- tables ---------------------------------------------------------------------------------------

def _fmt(key: str, value: Any) -> str:
    if value is None or value == "":
        return "-"
    if key in ("level1_gap", "max_gap", "target_gap"):
        return f"{float(value):.4%}"
    if key in ("level1_objective", "level1_bound"):
        return f"{float(value):,.3f}"
    if key.startswith("host_"):
        return f"{float(value):.3f}"
    if key.endswith("_s"):
        return f"{float(value):.2f}"
    if key in ("peak_mib", "vm_hwm_mib"):
        return f"{float(value):,.0f}"
    if key in ("variables", "integer_variables", "constraints", "cases", "persons", "plan_rows"):
        return f"{int(float(value)):,}"
    return str(value)


def csv_row(m: dict[str, Any], run_at: str, commit: str) -> dict[str, Any]:
    row = {key: m.get(key) for key, _ in COLUMNS}
    row.update({key: m.get(key) for key in EXTRA})
    row.setdefault("run_at", run_at)
    row["run_at"] = row["run_at"] or run_at
    row["commit"] = row["commit"] or commit
    for key, value in row.items():
        if isinstance(value, float):
            row[key] = round(value, 9) if key.startswith("level1_") or "gap" in key else round(value, 4)
    return row


def print_table(rows: list[dict[str, Any]], console: Console, title: str) -> None:
    table = Table(title=title, header_style="bold", show_lines=False)
    for key, heading in COLUMNS:
        table.add_column(heading, justify="left" if key in ("instance", "solver", "status", "verified",
                                                             "speed_ratio") else "right")
    for r in rows:
        table.add_row(*(_fmt(key, r.get(key)) for key, _ in COLUMNS))
    console.print(table)
    for r in rows:
        if r.get("note"):
            console.print(f"note {r['instance']} {r['solver']}: {r['note']}")


def markdown(rows: list[dict[str, Any]], info: dict[str, Any], day: str, args_text: str) -> str:
    commits = sorted({str(r.get("commit")) for r in rows if r.get("commit")})
    lines = [
        f"# Benchmark results, {day}",
        "",
        f"Machine: {machine_text(info)}",
        f"Solvers: {', '.join(sorted({str(r.get('solver_version')) for r in rows if r.get('solver_version')}))}.",
        f"Repository commit(s): {', '.join(commits)}. Command: `{args_text}`.",
        "",
        "| " + " | ".join(h for _, h in COLUMNS) + " |",
        "| " + " | ".join("---" if k in ("instance", "solver", "status", "verified", "speed_ratio") else "---:"
                          for k, _ in COLUMNS) + " |",
    ]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(k, r.get(k)).replace("|", "/") for k, _ in COLUMNS) + " |")
    notes = [f"- {r['instance']} {r['solver']}: {r['note']}" for r in rows if r.get("note")]
    def reached(r: dict[str, Any]) -> str:
        if r.get("status") == "skipped":
            return "baseline not built"
        if r.get("to_target_s") in (None, ""):
            return f"time limit {r.get('time_limit')} s; gap not reached"
        return f"time limit {r.get('time_limit')} s; gap reached after {_fmt('to_target_s', r.get('to_target_s'))} s"

    targets = [f"- {r['instance']}: baseline relative gap {_fmt('target_gap', r.get('target_gap'))}; {reached(r)}"
               for r in rows if r.get("solver") == "baseline"]
    lines += [
        "",
        "Rows per instance: `allocator` is the full lexicographic solve (all levels, as a proposal is "
        "made); `allocator-l1` solves level 1 (urgency) alone, and its whole `solve()` is the "
        "allocator's time to level 1; `baseline` is the per-pair model, level 1 only, with the "
        "`allocator-l1` gap as its relative gap. Times in seconds: `read` reads and validates the "
        "folder, `build` makes the model, `solve` the rest of the solve (allocator: all levels, "
        "re-solves and plan extraction), `total` is read to plan written; `to L1` is the time the "
        "speed ratio compares (`allocator-l1`: its `solve()`; baseline: build plus the time it first "
        "proved that gap, or all it spent). `placed`: cases in the plan. `peak MiB`: the run's own "
        "process (`ru_maxrss`). `verified`: `allocator.verify_plan` on the plan, `no (n)` with n "
        "violations. A ratio marked `>` is a lower bound: the baseline never proved the gap within "
        "its limit. Each plan is also checked against the other model's proven bound (a note says "
        "`INCONSISTENT` if one breaks it). " + ROW_PACE_TEXT,
    ]
    if targets:
        lines += ["", "Baseline targets:", *targets]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def save(rows: list[dict[str, Any]], out: Path, day: str, info: dict[str, Any], args_text: str,
         fresh: bool) -> tuple[Path, Path]:
    """Write (or merge into) ``results-<day>.csv`` and ``.md``, and ``latest.md``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"results-{day}.csv"
    fields = [k for k, _ in COLUMNS] + EXTRA
    merged: list[dict[str, Any]] = []
    if path.exists() and not fresh:
        with path.open(newline="", encoding="utf-8") as f:
            old = list(csv.DictReader(f))
        again = {(r["instance"], r["solver"]) for r in rows}
        merged = [r for r in old if (r.get("instance"), r.get("solver")) not in again]
    merged += rows
    order = {s: i for i, s in enumerate(SIZES)}

    def key(r: dict[str, Any]) -> tuple:
        name = str(r.get("instance"))
        size = name.removeprefix("national-").removesuffix("-scores")
        rank = {"allocator": 0, "allocator-l1": 1, "baseline": 2}.get(str(r.get("solver")), 3)
        return (name.endswith("-scores"), order.get(size, 99), name, rank)

    merged.sort(key=key)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(merged)
    text = markdown(merged, info, day, args_text)
    md = out / f"results-{day}.md"
    md.write_text(text, encoding="utf-8")
    (out / "latest.md").write_text(text, encoding="utf-8")
    return path, md


# -- command --------------------------------------------------------------------------------------

def run_benchmark(
    instances: list[tuple[str, Path]],
    *,
    time_limit: float = 60.0,
    baseline: bool = True,
    baseline_time_limit: float = 120.0,
    baseline_gap: float | None = None,
    max_variables: int = 3_000_000,
    presolve: bool = True,
    out: Path | None = DEFAULT_OUT,
    runs: Path = DEFAULT_RUNS,
    fresh: bool = False,
    args_text: str = "python -m benchmarks.run",
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """Run every (name, folder); print the table; save it under ``out`` (unless None)."""
    console = console or Console(width=max(Console().width, 230))
    now = dt.datetime.now().astimezone()
    run_at = now.isoformat(timespec="seconds")
    commit = git_commit()
    info = machine()
    runs = runs / now.strftime("%Y%m%d-%H%M%S")
    console.print(f"{info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB; Python {info['python']}, "
                  f"OR-Tools {info['ortools']}; load {info['load_average']}; commit {commit}; runs in {runs}")
    measured: list[dict[str, Any]] = []
    for name, folder in instances:
        measured += bench_instance(name, folder, runs, time_limit=time_limit, baseline=baseline,
                                   baseline_time_limit=baseline_time_limit, baseline_gap=baseline_gap,
                                   max_variables=max_variables, presolve=presolve, console=console)
    rows = [csv_row(m, run_at, commit) for m in measured]
    info["reference_end"] = reference_timings()  # the host's pace may change during the run
    print_table(rows, console, f"Benchmark {now:%Y-%m-%d %H:%M} ({info['cpu']}, {info['cores']} cores)")
    if out is not None:
        csv_path, md_path = save(rows, out, now.strftime("%Y-%m-%d"), info, args_text, fresh)
        console.print(f"wrote {csv_path}, {md_path} and {out / 'latest.md'}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=None,
                        help="comma-separated, from " + ",".join(SIZES) + " (default 1k,2k unless --folder is given)")
    parser.add_argument("--scores", action="store_true", help="the -scores variants")
    parser.add_argument("--both", action="store_true", help="with and without scores")
    parser.add_argument("--folder", action="append", type=Path, default=[],
                        help="also (or only, without --sizes) run this problem folder; repeatable")
    parser.add_argument("--time-limit", type=float, default=60.0, help="allocator time limit, s (default 60)")
    parser.add_argument("--baseline-time-limit", type=float, default=120.0, help="baseline time limit, s (default 120)")
    parser.add_argument("--baseline-gap", type=float, default=None,
                        help="baseline relative gap (default: the allocator's proven level-1 gap)")
    parser.add_argument("--no-baseline", action="store_true", help="run the allocator only")
    parser.add_argument("--baseline-max-variables", type=int, default=3_000_000,
                        help="skip the baseline (size only) above this many variables (default 3M: about 1.7 KiB of memory per variable in HiGHS)")
    parser.add_argument("--baseline-no-presolve", action="store_true",
                        help="experiment: HiGHS presolve off in the baseline (not the default baseline)")
    parser.add_argument("--instances", type=Path, default=DEFAULT_DIR, help="instance folders (default benchmarks/instances)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default benchmarks/results)")
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument("--fresh", action="store_true", help="replace the day's results file instead of merging")
    args = parser.parse_args(argv)

    instances: list[tuple[str, Path]] = []
    text = args.sizes if args.sizes is not None else ("" if args.folder else "1k,2k")
    sizes = [s.strip() for s in text.split(",") if s.strip()]
    names = [n for scores in ([False, True] if args.both else [args.scores]) for n in instance_names(sizes, scores)]
    if names:
        # Generate missing instances in a child process: the runner itself stays light.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        subprocess.run([sys.executable, "-m", "benchmarks.generate", "--names", ",".join(names),
                        "--dir", str(args.instances)], cwd=ROOT, env=env, check=True)
        instances += [(n, args.instances / n) for n in names]
    instances += [(f.name, f.resolve()) for f in args.folder]
    if not instances:
        parser.error("nothing to run: give --sizes or --folder")
    args_text = "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv)
    run_benchmark(
        instances,
        time_limit=args.time_limit,
        baseline=not args.no_baseline,
        baseline_time_limit=args.baseline_time_limit,
        baseline_gap=args.baseline_gap,
        max_variables=args.baseline_max_variables,
        presolve=not args.baseline_no_presolve,
        out=None if args.no_save else args.out,
        fresh=args.fresh,
        args_text=args_text.strip(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
