"""Run every (policy, seed) of a scenario, in parallel processes, and write the KPI tables.

Seeds and policies run as separate jobs in a :class:`concurrent.futures.ProcessPoolExecutor`;
a tqdm progress bar counts simulated months. Each job returns its KPI tables
(:func:`scenarios.kpis.run_tables`); the runner concatenates them, writes one CSV per table,
a summary across seeds, the final case table, ``run.json`` and the report.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import platform
import queue
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from .behaviour import calibrate
from .config import Scenario
from .kpis import run_tables
from .simulation import simulate

log = logging.getLogger(__name__)

#: Columns of the final case table written to ``cases.csv.gz``.
CASE_COLUMNS = ["case_id", "category", "size", "adults", "children", "residence_date", "arrival_month",
                "status", "municipality_id", "dwelling_id", "accepted_month", "settled_date",
                "proposals", "declines"]

#: KPIs summarised across seeds in ``kpi_summary.csv`` and the report, with their labels.
SUMMARY_KPIS = {
    "settled_persons": "persons settled",
    "wait_mean_days": "wait, mean (days)",
    "wait_median_days": "wait, median (days)",
    "wait_p90_days": "wait, 90th percentile (days)",
    "within_6m": "settled within 6 months (of settled)",
    "families_within_3m": "families with children within 3 months",
    "minors_within_3m": "unaccompanied minors within 3 months",
    "cohort_within_6m": "cohort within 6 months (misses included)",
    "long_waiting_end": "long-waiting persons at the end",
    "backlog_mean_persons": "reception backlog, mean (persons)",
    "backlog_end_persons": "reception backlog at the end (persons)",
    "bed_days": "reception bed-days",
    "bed_day_cost": "bed-day cost",
    "gini_settled_per_1000": "Gini of settled per 1,000",
    "municipalities_settling_none": "municipalities settling no one",
    "resolution_of_request": "resolution / request",
    "resolution_filled": "resolution filled (accepted / resolution)",
    "municipality_years_met": "municipality-years meeting their resolution",
    "declined": "proposals declined",
    "rounds_not_optimal": "rounds stopped by the time limit",
}


@dataclass
class ScenarioOutput:
    """What a scenario run wrote: the folder, the tables and the run's metadata."""

    folder: Path
    tables: dict[str, pd.DataFrame]
    meta: dict[str, Any] = field(default_factory=dict)


def _job(scenario: Scenario, policy: str, seed: int, progress: Any = None) -> dict[str, Any]:
    """One (policy, seed) run in a worker: its KPI tables, cases, notes and violations."""
    def tick(_: int) -> None:
        if progress is not None:
            progress.put(1)

    run = simulate(scenario, policy, seed, on_month=tick)
    tables = run_tables(run, scenario.report.bed_day_cost)
    cases = run.cases[CASE_COLUMNS].assign(policy=run.policy, seed=run.seed)
    return {"policy": policy, "seed": seed, "tables": tables, "cases": cases, "notes": run.notes,
            "violations": run.violations, "wall_seconds": run.wall_seconds}


def _quiet_worker() -> None:
    """Silence solver chatter written straight to file descriptor 1 in worker processes."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)


def run_jobs(scenario: Scenario, workers: int = 1, progress: bool = True) -> list[dict[str, Any]]:
    """Run every (policy, seed) pair; ``workers > 1`` runs them in parallel processes."""
    jobs = [(p.name, seed) for p in scenario.policies for seed in scenario.seeds]
    total_months = len(jobs) * scenario.months
    results: list[dict[str, Any]] = []
    with tqdm(total=total_months, desc=f"{scenario.name}: months", unit="month", disable=not progress,
              dynamic_ncols=True) as bar:
        if workers <= 1:
            for policy, seed in jobs:
                bar.set_postfix_str(f"{policy} seed {seed}")
                results.append(_job_local(scenario, policy, seed, bar))
            return _ordered(results, jobs)
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager:
            ticks = manager.Queue()
            with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                     initializer=_quiet_worker) as pool:
                pending: set[Future] = {pool.submit(_job, scenario, policy, seed, ticks) for policy, seed in jobs}
                while pending:
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    _drain(ticks, bar)
                    for future in done:
                        result = future.result()
                        results.append(result)
                        bar.set_postfix_str(f"done {result['policy']} seed {result['seed']}")
                _drain(ticks, bar)
    return _ordered(results, jobs)


def _job_local(scenario: Scenario, policy: str, seed: int, bar: tqdm) -> dict[str, Any]:
    run = simulate(scenario, policy, seed, on_month=lambda _: bar.update(1))
    tables = run_tables(run, scenario.report.bed_day_cost)
    cases = run.cases[CASE_COLUMNS].assign(policy=run.policy, seed=run.seed)
    return {"policy": policy, "seed": seed, "tables": tables, "cases": cases, "notes": run.notes,
            "violations": run.violations, "wall_seconds": run.wall_seconds}


def _drain(ticks: Any, bar: tqdm) -> None:
    n = 0
    while True:
        try:
            n += ticks.get_nowait()
        except queue.Empty:
            break
    if n:
        bar.update(n)


def _ordered(results: list[dict[str, Any]], jobs: list[tuple[str, int]]) -> list[dict[str, Any]]:
    order = {job: i for i, job in enumerate(jobs)}
    return sorted(results, key=lambda r: order[(r["policy"], r["seed"])])


def summarise(totals: pd.DataFrame, policies: list[str]) -> pd.DataFrame:
    """Per policy and KPI: mean, min and max across seeds."""
    rows = []
    for kpi in SUMMARY_KPIS:
        if kpi not in totals.columns:
            continue
        for policy in policies:
            values = totals.loc[totals["policy"] == policy, kpi].astype(float)
            rows.append({"kpi": kpi, "label": SUMMARY_KPIS[kpi], "policy": policy,
                         "mean": values.mean(), "min": values.min(), "max": values.max(),
                         "sd": values.std(ddof=1) if len(values) > 1 else np.nan, "seeds": len(values)})
    return pd.DataFrame(rows)


def run_scenario(scenario: Scenario, out: str | Path, *, workers: int | None = None, progress: bool = True,
                 source: Path | None = None, report: bool = True) -> ScenarioOutput:
    """Run a scenario and write its folder.

    Parameters
    ----------
    scenario
        The scenario.
    out
        Output folder (created; files in it are replaced).
    workers
        Parallel processes (default: one per job, at most the CPU count).
    progress
        Show a progress bar.
    source
        The scenario file, copied into the folder as ``scenario.toml``.
    report
        Write ``report.md`` with charts.
    """
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_jobs = len(scenario.policies) * len(scenario.seeds)
    if workers is None:
        workers = max(1, min(n_jobs, os.cpu_count() or 1))
    results = run_jobs(scenario, workers=workers, progress=progress)
    tables: dict[str, pd.DataFrame] = {}
    for name in results[0]["tables"]:
        tables[name] = pd.concat([r["tables"][name] for r in results], ignore_index=True)
    policies = [p.name for p in scenario.policies]
    tables["kpi_summary"] = summarise(tables["kpi_totals"], policies)
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    cases = pd.concat([r["cases"] for r in results], ignore_index=True)
    cases.to_csv(out / "cases.csv.gz", index=False)
    if source is not None:
        shutil.copyfile(source, out / "scenario.toml")
    fits = calibrate()
    meta = {
        "scenario": scenario.name,
        "description": scenario.description,
        "start": scenario.start.isoformat(),
        "months": scenario.months,
        "seeds": scenario.seeds,
        "policies": [p.model_dump(mode="json") for p in scenario.policies],
        "solver": scenario.solver.model_dump(mode="json"),
        "workers": workers,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "run_seconds": {f"{r['policy']}/{r['seed']}": round(r["wall_seconds"], 1) for r in results},
        "notes": {p: sorted({n for r in results if r["policy"] == p for n in r["notes"]}) for p in policies},
        "calibration": [f.describe() for f in fits],
        "violations": {f"{r['policy']}/{r['seed']}": r["violations"] for r in results if r["violations"]},
        "python": platform.python_version(),
    }
    output = ScenarioOutput(out, tables, meta)
    if report:
        from .report import write_report

        write_report(output, scenario, cases)
    meta["wall_seconds"] = round(time.perf_counter() - started, 1)
    (out / "run.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    log.info("wrote %s in %.1fs", out, meta["wall_seconds"])
    return output
