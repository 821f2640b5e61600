"""The scenario report: Markdown with PNG charts comparing the policies side by side.

Charts are drawn with matplotlib's Agg canvas (no display needed). Every number shown is the
mean over seeds with the spread across seeds (min-max) beside it or as a band.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .config import Scenario
from .kpis import DAYS_PER_MONTH, GROUPS

if TYPE_CHECKING:
    from .runner import ScenarioOutput

log = logging.getLogger(__name__)

SHARE_KPIS = {"within_6m", "families_within_3m", "minors_within_3m", "cohort_within_6m",
              "resolution_of_request", "resolution_filled", "municipality_years_met"}
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def _fmt(value: float, kpi: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if kpi in SHARE_KPIS:
        return f"{value:.1%}"
    if kpi.startswith("gini"):
        return f"{value:.3f}"
    if kpi.startswith("wait"):
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _cell(mean: float, low: float, high: float, kpi: str, seeds: int) -> str:
    if seeds <= 1 or (np.isnan(low) and np.isnan(high)) or _fmt(low, kpi) == _fmt(high, kpi):
        return _fmt(mean, kpi)
    return f"{_fmt(mean, kpi)} [{_fmt(low, kpi)} – {_fmt(high, kpi)}]"


def _table(header: list[str], rows: list[list[str]], numeric: bool = True) -> str:
    align = " ---: " if numeric else " --- "
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] + [align] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _band(ax: Any, monthly: pd.DataFrame, column: str, policies: list[str], scale: float = 1.0) -> None:
    for i, policy in enumerate(policies):
        part = monthly[monthly["policy"] == policy].pivot(index="month", columns="seed", values=column) * scale
        colour = COLOURS[i % len(COLOURS)]
        ax.plot(part.index, part.mean(axis=1), color=colour, label=policy, lw=2)
        if part.shape[1] > 1:
            ax.fill_between(part.index, part.min(axis=1), part.max(axis=1), color=colour, alpha=0.18, lw=0)


def _wait_cdf(cases: pd.DataFrame, end: pd.Timestamp, grid: np.ndarray) -> pd.DataFrame:
    """Share of settled persons settled within each grid value (months), per policy and seed."""
    settled = cases[pd.to_datetime(cases["settled_date"]) < end]
    waits = (pd.to_datetime(settled["settled_date"]) - pd.to_datetime(settled["residence_date"])).dt.days
    settled = settled.assign(wait_months=waits.clip(lower=0) / DAYS_PER_MONTH)
    rows = []
    for (policy, seed), part in settled.groupby(["policy", "seed"], sort=False):
        w = np.repeat(part["wait_months"].to_numpy(), part["size"].to_numpy())
        for g in grid:
            share = float((w <= g).mean()) if len(w) else np.nan
            rows.append({"policy": policy, "seed": seed, "month": g, "share": share})
    return pd.DataFrame(rows)


def charts(output: "ScenarioOutput", scenario: Scenario, cases: pd.DataFrame) -> dict[str, str]:
    """Draw the charts into ``charts/``; returns name -> relative path."""
    folder = output.folder / "charts"
    folder.mkdir(exist_ok=True)
    policies = [p.name for p in scenario.policies]
    monthly = output.tables["kpi_monthly"]
    end = pd.Timestamp(scenario.start) + pd.DateOffset(months=scenario.months)
    paths = {}

    fig = Figure(figsize=(12, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    _band(ax1, monthly, "wait_mean_days", policies, 1 / DAYS_PER_MONTH)
    ax1.set(title="Mean wait of persons settled each month", xlabel="month", ylabel="months")
    ax1.axhline(6, color="grey", ls=":", lw=1)
    grid = np.linspace(0, max(12.0, scenario.months / 1.0), 97)
    cdf = _wait_cdf(cases, end, grid)
    if not cdf.empty:
        _band(ax2, cdf, "share", policies, 100.0)
    ax2.axvline(6, color="grey", ls=":", lw=1)
    ax2.axvline(3, color="grey", ls=":", lw=1)
    ax2.set(title="Settled within x months (share of settled persons)", xlabel="months waited", ylabel="%")
    ax1.legend()
    _save(fig, folder / "waiting_time.png")
    paths["waiting_time"] = "charts/waiting_time.png"

    fig = Figure(figsize=(12, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    _band(ax1, monthly, "backlog_persons", policies)
    ax1.set(title="Persons in reception centres", xlabel="month (end of)", ylabel="persons")
    _band(ax2, monthly, "long_waiting_persons", policies)
    ax2.set(title="Long-waiting persons (past their 6 / 3-month target)", xlabel="month (end of)",
            ylabel="persons")
    ax1.legend()
    _save(fig, folder / "backlog.png")
    paths["backlog"] = "charts/backlog.png"

    fig = Figure(figsize=(12, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    _band(ax1, monthly, "within_6m", policies, 100.0)
    ax1.axhline(70, color="grey", ls=":", lw=1)
    ax1.set(title="Settled within 6 months (% of persons settled that month; target 70%)", xlabel="month",
            ylabel="%")
    cumulative = monthly.assign(bed_days_cum=monthly.groupby(["policy", "seed"])["bed_days"].cumsum())
    _band(ax2, cumulative, "bed_days_cum", policies, 1e-3)
    ax2.set(title="Reception bed-days, cumulative", xlabel="month", ylabel="thousand bed-days")
    ax1.legend()
    _save(fig, folder / "targets_and_bed_days.png")
    paths["targets_and_bed_days"] = "charts/targets_and_bed_days.png"

    munis = output.tables["kpi_municipalities"]
    fig = Figure(figsize=(12, 2.6 * len(policies) + 0.6))
    axes = np.atleast_1d(fig.subplots(len(policies), 1, sharex=True, sharey=True))
    totals = output.tables["kpi_totals"]
    for i, (ax, policy) in enumerate(zip(axes, policies)):
        load = munis[munis["policy"] == policy].groupby("municipality_id")["settled_per_1000"].mean()
        load = load.sort_values(ascending=False)
        ax.bar(np.arange(len(load)), load.to_numpy(), width=1.0, color=COLOURS[i % len(COLOURS)])
        g = totals.loc[totals["policy"] == policy, "gini_settled_per_1000"].mean()
        ax.set(title=f"{policy}: settled per 1,000 inhabitants by municipality, sorted (Gini {g:.3f})",
               ylabel="per 1,000")
    axes[-1].set_xlabel("municipalities, highest load first")
    _save(fig, folder / "load_per_municipality.png")
    paths["load_per_municipality"] = "charts/load_per_municipality.png"
    return paths


def _summary_section(output: "ScenarioOutput", policies: list[str]) -> str:
    summary = output.tables["kpi_summary"]
    rows = []
    for kpi, part in summary.groupby("kpi", sort=False):
        cells = []
        for policy in policies:
            r = part[part["policy"] == policy].iloc[0]
            cells.append(_cell(r["mean"], r["min"], r["max"], kpi, int(r["seeds"])))
        rows.append([part["label"].iloc[0]] + cells)
    return _table(["KPI (over the horizon)"] + policies, rows)


def _groups_section(output: "ScenarioOutput", policies: list[str]) -> str:
    groups = output.tables["kpi_groups"]
    rows = []
    for group in ("all", *GROUPS):
        cells = []
        for policy in policies:
            part = groups[(groups["policy"] == policy) & (groups["group"] == group)]
            if part["settled_persons"].sum() == 0:
                cells.append("none settled")
                continue
            cells.append(f"{part['wait_mean_days'].mean():.0f} / {part['wait_median_days'].mean():.0f} / "
                         f"{part['wait_p90_days'].mean():.0f} ({part['settled_persons'].mean():,.0f})")
        rows.append([group.replace("_", " ")] + cells)
    return _table(["group: mean / median / p90 days (persons settled)"] + policies, rows)


def _unplaced_section(output: "ScenarioOutput", policies: list[str], seeds: int) -> str:
    unplaced = output.tables["unplaced_by_reason"]
    if unplaced.empty:
        return "No case was left unplaced in any round."
    mean = unplaced.groupby(["rule", "policy"])["cases"].sum().unstack("policy").reindex(columns=policies) / seeds
    def number(v: float) -> str:
        return "0" if np.isnan(v) else (f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}")

    rows = [[rule] + [number(v) for v in mean.loc[rule]] for rule in mean.index]
    return _table(["rule (case-rounds, mean over seeds)"] + policies, rows)


def _county_section(output: "ScenarioOutput", policies: list[str]) -> str:
    munis = output.tables["kpi_municipalities"]
    by = (munis.groupby(["policy", "seed", "county"], as_index=False)[["settled_persons", "population"]].sum())
    by["per_1000"] = by["settled_persons"] / by["population"] * 1000
    mean = by.groupby(["county", "policy"])["per_1000"].mean().unstack("policy").reindex(columns=policies)
    rows = [[county] + [f"{v:.2f}" for v in mean.loc[county]] for county in mean.index]
    return _table(["county: settled per 1,000"] + policies, rows)


def _resolution_section(output: "ScenarioOutput", scenario: Scenario) -> str:
    met = output.tables["resolution_met"]
    rows = []
    for policy in scenario.policies:
        part = met[met["policy"] == policy.name]
        per_seed = part.groupby("seed")[["request_or_quota", "resolution_persons", "accepted_persons"]].sum()
        zero = part.groupby("seed").apply(lambda g: int((g["resolution_persons"] == 0).sum()), include_groups=False)
        rows.append([policy.name, "request" if policy.behaviour_kind == "voluntary" else "quota",
                     f"{per_seed['request_or_quota'].mean():,.0f}", f"{per_seed['resolution_persons'].mean():,.0f}",
                     f"{per_seed['accepted_persons'].mean():,.0f}", f"{zero.mean():,.0f}"])
    return _table(["policy", "kind", "requested / quota (persons, all years)", "resolved (persons)",
                   "accepted (persons)", "municipality-years with resolution 0"], rows)


def write_report(output: "ScenarioOutput", scenario: Scenario, cases: pd.DataFrame) -> Path:
    """Write ``report.md`` and ``charts/*.png`` into the output folder."""
    policies = [p.name for p in scenario.policies]
    paths = charts(output, scenario, cases)
    meta = output.meta
    seeds = len(scenario.seeds)
    totals = output.tables["kpi_totals"]
    not_optimal = int(totals["rounds_not_optimal"].sum())
    rounds = output.tables["rounds"]
    rounds_run = int(rounds["status"].isin(["optimal", "feasible", "stopped"]).sum())
    synthetic = any("SYNTHETIC" in n for notes in meta["notes"].values() for n in notes)
    lines = [
        f"# Scenario report: {scenario.name}",
        "",
        scenario.description.strip(),
        "",
        f"Horizon {scenario.months} months from {scenario.start.isoformat()}; "
        f"{len(scenario.policies)} policies x {seeds} seed(s) ({', '.join(map(str, scenario.seeds))}); "
        f"{len(output.tables['kpi_municipalities']['municipality_id'].unique())} municipalities. "
        f"Each monthly round solved by the allocator with priorities "
        f"`{scenario.solver.priorities}` and a time limit of {scenario.solver.time_limit:g} s "
        f"({rounds_run} rounds, {not_optimal} stopped by the time limit before proving optimality). "
        f"Wall time {meta['wall_seconds']:.0f} s with {meta['workers']} worker process(es).",
        "",
    ]
    if synthetic:
        lines += ["> **Synthetic inputs.** At least one policy uses SYNTHETIC proxy figures (listed under "
                  "*Data and assumptions*). Its quotas and results illustrate the rule; they are not "
                  "real quotas.", ""]
    lines += [
        "## How to read this report",
        "",
        "Every policy sees the same arrivals and the same dwellings for a given seed; differences "
        "between columns are the policies' own. A cell is the mean over seeds with the range across "
        "seeds in brackets. Waits are per person, from the residence decision to moving in; a "
        "family of five counts five times. *Within 6 months* counts persons settled in the horizon; "
        "the *cohort* variant counts everyone whose 6-month deadline fell in the horizon, settled "
        "or not. Backlog and bed-days count persons in reception centres (resettlement refugees "
        "wait abroad and are not counted there). Definitions: `docs/scenarios.md`.",
        "",
        "## Policies",
        "",
        _table(["policy", "rule", "behaviour", "declines", "lead time (days)", "rule parameters"],
               [[p.name, p.rule, p.behaviour_kind, f"{p.decline_rate:.0%}" if p.behaviour_kind == "voluntary" else "-",
                 str(p.lead_time_days), ", ".join(f"{k}={v}" for k, v in p.rule_params.items()) or "defaults"]
                for p in scenario.policies], numeric=False),
        "",
        "## Summary",
        "",
        _summary_section(output, policies),
        "",
        "## Waiting time",
        "",
        f"![waiting time]({paths['waiting_time']})",
        "",
        _groups_section(output, policies),
        "",
        f"![targets and bed-days]({paths['targets_and_bed_days']})",
        "",
        "## Reception backlog",
        "",
        f"![backlog]({paths['backlog']})",
        "",
        "## Load per municipality",
        "",
        f"![load per municipality]({paths['load_per_municipality']})",
        "",
        _county_section(output, policies),
        "",
        "## Requests, quotas and resolutions",
        "",
        _resolution_section(output, scenario),
        "",
        "## Unplaced by reason",
        "",
        "Cases left unplaced in a round, by the allocator's rule (`resolution`: no municipality with "
        "room; `housing`: no fitting free dwelling where there is room; `objective`: room remained "
        "but placing it would cost a higher priority), plus `declined` (proposed, declined by the "
        "municipality) and `fits_no_dwelling` (no listed dwelling is large enough). A case waiting "
        "several months counts once a month.",
        "",
        _unplaced_section(output, policies, seeds),
        "",
        "## Data and assumptions",
        "",
        "- Real: the 357 municipalities of 2025 with population and county; IMDi's 2016-2017 requests "
        "and resolutions per county.",
        "- Simulated (seeded), not forecasts: arrivals (composition, dates, ties, step-free needs) and "
        "the dwellings made available each month.",
        "- Voluntary behaviour, calibrated on the 38 county-year resolution / request ratios:",
    ]
    lines += [f"  - {c}" for c in meta["calibration"]]
    for policy in policies:
        lines.append(f"- Inputs of `{policy}`:")
        lines += [f"  - {'**' + n + '**' if 'SYNTHETIC' in n else n}" for n in meta["notes"][policy]]
    if scenario.report.bed_day_cost > 0:
        lines.append(f"- Bed-day cost: {scenario.report.bed_day_cost:,.0f} {scenario.report.currency} "
                     "per person and day, an assumption of the scenario file.")
    if meta.get("violations"):
        lines.append(f"- **Plan violations found by the verifier:** {meta['violations']}")
    lines += ["", "Files: `kpi_totals.csv` (one row per policy and seed), `kpi_summary.csv`, `kpi_monthly.csv`, "
              "`kpi_groups.csv`, `kpi_groups_monthly.csv`, `kpi_municipalities.csv`, `resolution_met.csv`, "
              "`unplaced_by_reason.csv`, `rounds.csv`, `cases.csv.gz`, `run.json`.", ""]
    path = output.folder / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
