"""KPIs of a simulation run, each a small named function of the run's final tables.

Definitions (also in ``docs/scenarios.md``):

- a case is **in reception** during ``[residence_date, settled_date)``; resettlement refugees
  come straight from abroad and are never in reception (they do count in waiting times);
- **settled in a period**: ``settled_date`` within ``[start, end)``; **wait** of a settled
  case: ``settled_date - residence_date`` in days; waits are per person (a family of five
  counts five times); percentiles use numpy's linear interpolation;
- **targets**: 6 months = 182.625 days, 3 months = 91.3125 days (``365.25 / 12`` a month);
  ``within_6m``: persons settled within 6 months, of persons settled in the period;
  ``families_within_3m``: families with children (not unaccompanied minors) settled within 3
  months, of such families settled; ``minors_within_3m``: the same for unaccompanied-minor
  cases. The *cohort* variants take everyone whose residence decision falls in the horizon
  and at least 6 (3) months before its end, and count those not settled in time as misses;
- **long-waiting** at an instant: persons not yet settled whose wait exceeds their target
  (6 months adults, 3 months children and unaccompanied minors), as in the allocator;
- **backlog** at the end of month ``t``: persons in reception at the instant ``d_(t+1)``;
  **bed-days** in a period: persons x days in reception within it;
- **settled per 1,000**: persons settled in the municipality over the horizon per 1,000
  inhabitants; **Gini**: the Gini coefficient of that rate over municipalities (0: all alike);
- **resolution met**: persons accepted in a year against the year's resolution (binding
  policies: the quota).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .simulation import RunResult

DAYS_PER_MONTH = 365.25 / 12
ADULT_TARGET_DAYS = 6 * DAYS_PER_MONTH
CHILD_TARGET_DAYS = 3 * DAYS_PER_MONTH
GROUPS = ("single", "family", "unaccompanied_minor", "resettlement")


# -- building blocks ------------------------------------------------------------------------
def wait_days(cases: pd.DataFrame) -> np.ndarray:
    """Days from residence decision to moving in (NaN where not settled)."""
    return ((cases["settled_date"] - cases["residence_date"]).dt.days.to_numpy(dtype=float)).clip(min=0)


def per_person(values: np.ndarray, cases: pd.DataFrame) -> np.ndarray:
    """Repeat a per-case value once per member."""
    return np.repeat(np.asarray(values, dtype=float), cases["size"].to_numpy(dtype=int))


def wait_summary(waits: np.ndarray) -> dict[str, float]:
    """``mean``, ``median`` and ``p90`` of waits in days (NaN when empty)."""
    waits = np.asarray(waits, dtype=float)
    if len(waits) == 0:
        return {"mean": np.nan, "median": np.nan, "p90": np.nan}
    return {"mean": float(waits.mean()), "median": float(np.median(waits)),
            "p90": float(np.percentile(waits, 90))}


def share_within(waits: np.ndarray, limit_days: float) -> float:
    """Share of waits at or below the limit (NaN when empty)."""
    waits = np.asarray(waits, dtype=float)
    return float((waits <= limit_days).mean()) if len(waits) else np.nan


def settled_between(cases: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Cases that moved in within ``[start, end)``."""
    return (cases["settled_date"] >= start) & (cases["settled_date"] < end)


def in_reception_at(cases: pd.DataFrame, instant: pd.Timestamp) -> pd.Series:
    """Cases in a reception centre at ``instant`` (arrived before it, not yet moved out)."""
    not_settled = cases["settled_date"].isna() | (cases["settled_date"] >= instant)
    return (cases["residence_date"] < instant) & not_settled & (cases["category"] != "resettlement")


def waiting_at(cases: pd.DataFrame, instant: pd.Timestamp) -> pd.Series:
    """Cases with a residence decision before ``instant`` not settled by then (any category)."""
    not_settled = cases["settled_date"].isna() | (cases["settled_date"] >= instant)
    return (cases["residence_date"] < instant) & not_settled


def long_waiting_persons(cases: pd.DataFrame, instant: pd.Timestamp) -> int:
    """Persons not settled by ``instant`` who waited past their target (adults 6, children 3 months)."""
    waiting = cases[waiting_at(cases, instant)]
    wait = (instant - waiting["residence_date"]).dt.days.to_numpy(dtype=float)
    adults = waiting["adults"].to_numpy() * (wait > ADULT_TARGET_DAYS)
    children = waiting["children"].to_numpy() * (wait > CHILD_TARGET_DAYS)
    return int(adults.sum() + children.sum())


def bed_days(cases: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> float:
    """Persons x days in reception within ``[start, end)``."""
    inside = cases[cases["category"] != "resettlement"]
    begin = inside["residence_date"].clip(lower=start)
    finish = inside["settled_date"].fillna(end).clip(upper=end)
    days = (finish - begin).dt.days.to_numpy(dtype=float).clip(min=0)
    return float((days * inside["size"].to_numpy()).sum())


def gini(values: np.ndarray | pd.Series) -> float:
    """Gini coefficient: ``sum_ij |x_i - x_j| / (2 n^2 mean)``; 0 when all are equal or zero."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0 or x.sum() <= 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(2.0 * (ranks * x).sum() / (n * x.sum()) - (n + 1) / n)


def target_shares(cases: pd.DataFrame, waits: np.ndarray) -> dict[str, float]:
    """``within_6m`` (persons), ``families_within_3m`` and ``minors_within_3m`` (cases) of settled cases."""
    families = cases["has_children"].to_numpy()
    minors = (cases["category"] == "unaccompanied_minor").to_numpy()
    return {
        "within_6m": share_within(per_person(waits, cases), ADULT_TARGET_DAYS),
        "families_within_3m": share_within(waits[families], CHILD_TARGET_DAYS),
        "minors_within_3m": share_within(waits[minors], CHILD_TARGET_DAYS),
    }


def cohort_target_shares(cases: pd.DataFrame, end: pd.Timestamp) -> dict[str, float]:
    """Target shares over everyone whose deadline falls inside the horizon (misses included)."""
    arrived = cases[cases["arrival_month"] >= 0]
    waits = wait_days(arrived)
    settled_by_end = (arrived["settled_date"] < end).to_numpy()

    def share(mask: np.ndarray, limit: float, persons: bool) -> float:
        due = mask & (arrived["residence_date"] + pd.Timedelta(days=limit) < end).to_numpy()
        if not due.any():
            return np.nan
        hit = settled_by_end[due] & (waits[due] <= limit)
        weight = arrived["size"].to_numpy()[due] if persons else np.ones(int(due.sum()))
        return float((hit * weight).sum() / weight.sum())

    all_cases = np.ones(len(arrived), dtype=bool)
    return {
        "cohort_within_6m": share(all_cases, ADULT_TARGET_DAYS, True),
        "cohort_families_within_3m": share(arrived["has_children"].to_numpy(), CHILD_TARGET_DAYS, False),
        "cohort_minors_within_3m": share((arrived["category"] == "unaccompanied_minor").to_numpy(),
                                         CHILD_TARGET_DAYS, False),
    }


# -- tables -----------------------------------------------------------------------------------
def _run_keys(run: RunResult) -> dict[str, Any]:
    return {"policy": run.policy, "seed": run.seed}


def monthly_kpis(run: RunResult, bed_day_cost: float = 0.0) -> pd.DataFrame:
    """One row per month: arrivals, the round, settlements, waits, targets, backlog, bed-days."""
    cases = run.cases
    rounds = run.rounds.set_index("month")
    rows = []
    for t in range(len(run.starts) - 1):
        start, end = run.starts[t], run.starts[t + 1]
        arrived = cases[(cases["residence_date"] >= start) & (cases["residence_date"] < end)]
        settled = cases[settled_between(cases, start, end)]
        waits = wait_days(settled)
        backlog = cases[in_reception_at(cases, end)]
        summary = wait_summary(per_person(waits, settled))
        days = bed_days(cases, start, end)
        r = rounds.loc[t] if t in rounds.index else {}
        rows.append({
            **_run_keys(run), "month": t, "start": start.date().isoformat(),
            "arrived_cases": len(arrived), "arrived_persons": int(arrived["size"].sum()),
            "round_cases": int(r.get("cases", 0)), "proposed": int(r.get("proposed", 0)),
            "accepted": int(r.get("accepted", 0)), "declined": int(r.get("declined", 0)),
            "settled_cases": len(settled), "settled_persons": int(settled["size"].sum()),
            "wait_mean_days": summary["mean"], "wait_median_days": summary["median"],
            "wait_p90_days": summary["p90"],
            **target_shares(settled, waits),
            "backlog_cases": len(backlog), "backlog_persons": int(backlog["size"].sum()),
            "long_waiting_persons": long_waiting_persons(cases, end),
            "bed_days": days, "bed_day_cost": days * bed_day_cost,
            "round_status": r.get("status", "no_round"), "round_seconds": float(r.get("seconds", 0.0)),
        })
    return pd.DataFrame(rows)


def group_waits(run: RunResult, month: int | None = None) -> pd.DataFrame:
    """Waits by group (category, and all) of persons settled in a month, or over the horizon."""
    cases = run.cases
    if month is None:
        start, end = run.starts[0], run.starts[-1]
    else:
        start, end = run.starts[month], run.starts[month + 1]
    settled = cases[settled_between(cases, start, end)]
    rows = []
    for group in ("all", *GROUPS):
        part = settled if group == "all" else settled[settled["category"] == group]
        waits = per_person(wait_days(part), part)
        summary = wait_summary(waits)
        rows.append({**_run_keys(run), "month": "total" if month is None else month, "group": group,
                     "settled_persons": len(waits), "wait_mean_days": summary["mean"],
                     "wait_median_days": summary["median"], "wait_p90_days": summary["p90"],
                     "within_6m": share_within(waits, ADULT_TARGET_DAYS),
                     "within_3m": share_within(waits, CHILD_TARGET_DAYS)})
    return pd.DataFrame(rows)


def groups_monthly(run: RunResult) -> pd.DataFrame:
    """:func:`group_waits` for every month."""
    return pd.concat([group_waits(run, t) for t in range(len(run.starts) - 1)], ignore_index=True)


def resolution_met(run: RunResult) -> pd.DataFrame:
    """Per year and municipality: request or quota, resolution, persons accepted, met or not."""
    q = run.quotas.copy()
    accepted = run.cases[run.cases["accepted_month"] >= 0]
    by = accepted.assign(year=accepted["accepted_month"] // 12).groupby(["year", "municipality_id"])["size"].sum()
    q["accepted_persons"] = by.reindex(pd.MultiIndex.from_frame(q[["year", "municipality_id"]])).fillna(0) \
        .astype(int).to_numpy()
    q["met"] = (q["accepted_persons"] >= q["resolution_persons"]) & (q["resolution_persons"] > 0)
    return q.assign(**_run_keys(run))


def municipality_kpis(run: RunResult) -> pd.DataFrame:
    """Per municipality: persons accepted and settled, settled per 1,000, quota and resolution."""
    m = run.municipalities.copy()
    settled = run.cases[run.cases["settled_date"] < run.end]
    accepted = run.cases[run.cases["accepted_month"] >= 0]
    m["accepted_persons"] = accepted.groupby("municipality_id")["size"].sum().reindex(m["municipality_id"]) \
        .fillna(0).astype(int).to_numpy()
    m["settled_persons"] = settled.groupby("municipality_id")["size"].sum().reindex(m["municipality_id"]) \
        .fillna(0).astype(int).to_numpy()
    m["settled_per_1000"] = m["settled_persons"] / m["population"].clip(lower=1) * 1000.0
    totals = run.quotas.groupby("municipality_id")[["request_or_quota", "resolution_persons"]].sum()
    m["request_or_quota"] = totals["request_or_quota"].reindex(m["municipality_id"]).fillna(0).astype(int).to_numpy()
    m["resolution_persons"] = totals["resolution_persons"].reindex(m["municipality_id"]).fillna(0) \
        .astype(int).to_numpy()
    return m.assign(**_run_keys(run))


def unplaced_by_reason(run: RunResult) -> pd.DataFrame:
    """Cases left unplaced in the rounds, by rule, summed over months (case-rounds)."""
    if run.unplaced.empty:
        return pd.DataFrame(columns=["policy", "seed", "rule", "cases"])
    out = run.unplaced.groupby("rule", as_index=False)["cases"].sum()
    return out.assign(**_run_keys(run))[["policy", "seed", "rule", "cases"]]


def total_kpis(run: RunResult, bed_day_cost: float = 0.0) -> dict[str, Any]:
    """The run in one row."""
    cases = run.cases
    start, end = run.starts[0], run.starts[-1]
    settled = cases[settled_between(cases, start, end)]
    waits = wait_days(settled)
    summary = wait_summary(per_person(waits, settled))
    arrived = cases[cases["arrival_month"] >= 0]
    still = cases[waiting_at(cases, end)]
    monthly = monthly_kpis(run, bed_day_cost)
    munis = municipality_kpis(run)
    met = resolution_met(run)
    with_target = met[met["resolution_persons"] > 0]
    days = bed_days(cases, start, end)
    rounds = run.rounds[run.rounds["status"].isin(["optimal", "feasible", "stopped"])]
    return {
        **_run_keys(run), "rule": run.rule, "behaviour": run.behaviour, "months": len(run.starts) - 1,
        "arrived_cases": len(arrived), "arrived_persons": int(arrived["size"].sum()),
        "initial_backlog_persons": int(cases.loc[cases["arrival_month"] < 0, "size"].sum()),
        "settled_cases": len(settled), "settled_persons": int(settled["size"].sum()),
        "waiting_at_end_persons": int(still["size"].sum()),
        "accepted_not_moved_persons": int(still.loc[still["status"] == "accepted", "size"].sum()),
        "wait_mean_days": summary["mean"], "wait_median_days": summary["median"], "wait_p90_days": summary["p90"],
        **target_shares(settled, waits), **cohort_target_shares(cases, end),
        "long_waiting_end": long_waiting_persons(cases, end),
        "long_waiting_mean": float(monthly["long_waiting_persons"].mean()),
        "backlog_end_persons": int(monthly["backlog_persons"].iloc[-1]),
        "backlog_mean_persons": float(monthly["backlog_persons"].mean()),
        "backlog_max_persons": int(monthly["backlog_persons"].max()),
        "bed_days": days, "bed_day_cost": days * bed_day_cost,
        "gini_settled_per_1000": gini(munis["settled_per_1000"]),
        "max_settled_per_1000": float(munis["settled_per_1000"].max()),
        "municipalities_settling_none": int((munis["settled_persons"] == 0).sum()),
        "request_or_quota": int(met["request_or_quota"].sum()),
        "resolution_persons": int(met["resolution_persons"].sum()),
        "resolution_of_request": float(met["resolution_persons"].sum() / max(met["request_or_quota"].sum(), 1)),
        "resolution_filled": float(met["accepted_persons"].sum() / max(met["resolution_persons"].sum(), 1)),
        "municipality_years_met": float(with_target["met"].mean()) if len(with_target) else np.nan,
        "proposals": int(len(run.proposals)), "declined": int((~run.proposals["accepted"].astype(bool)).sum()),
        "rounds_not_optimal": int((rounds["status"] != "optimal").sum()),
        "solve_seconds": float(run.rounds["seconds"].sum()), "wall_seconds": float(run.wall_seconds),
    }


def run_tables(run: RunResult, bed_day_cost: float = 0.0) -> dict[str, pd.DataFrame]:
    """Every KPI table of one run, keyed by output file stem."""
    return {
        "kpi_monthly": monthly_kpis(run, bed_day_cost),
        "kpi_groups_monthly": groups_monthly(run),
        "kpi_groups": group_waits(run),
        "kpi_totals": pd.DataFrame([total_kpis(run, bed_day_cost)]),
        "kpi_municipalities": municipality_kpis(run),
        "resolution_met": resolution_met(run),
        "unplaced_by_reason": unplaced_by_reason(run),
        "rounds": run.rounds.assign(**_run_keys(run)),
    }
