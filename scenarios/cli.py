"""The ``allocator quotas`` and ``allocator scenario`` commands (registered by allocator.cli)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

log = logging.getLogger(__name__)
console = Console()
if not console.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    console = Console(width=160)

#: Rule-specific columns shown in the printed table (all columns go to --csv).
SHOWN = {
    "norwegian": ["exact_without_minimum"],
    "danish": ["immigrant_share", "a", "family_reunified", "computed"],
    "swedish": ["county_quota"],
    "fixed": [],
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``quotas`` and ``scenario`` to the ``allocator`` command."""
    from .quotas import RULES

    p = sub.add_parser("quotas", help="compute a request or quota rule for every municipality")
    p.add_argument("--policy", required=True, choices=sorted(set(RULES) - {"fixed"}),
                   help="norwegian (IMDi's request), danish (municipal quota), swedish (county key)")
    p.add_argument("--total", required=True, type=int, help="the national number of persons")
    p.add_argument("--year", type=int, help="the year the numbers are for (a label in the output)")
    p.add_argument("--minors", type=int, default=0, help="unaccompanied minors among them (split by the quotas)")
    p.add_argument("--inputs", type=Path, help="CSV with municipality_id and extra inputs (immigrants, "
                   "family_reunified, labour_market, integration, capacity, earlier_reception)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a rule parameter, e.g. over_ask=1.2 or 'weights={population=1}' (TOML value)")
    p.add_argument("--seed", type=int, help="seed of synthetic proxies (Danish rule without inputs)")
    p.add_argument("--by-county", action="store_true", help="print the regional (county) sums instead")
    p.add_argument("--csv", action="store_true", help="write CSV instead of a table")
    p.add_argument("--out", type=Path, help="write the CSV to this file instead of standard output")
    p.set_defaults(run=quotas_command)

    p = sub.add_parser("scenario", help="simulate policies over months with the solver inside")
    actions = p.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="run a scenario file and write KPI tables and a report")
    run.add_argument("file", type=Path)
    run.add_argument("--out", type=Path, help="output folder (default: scenario-out/<file name>)")
    run.add_argument("--workers", type=int, help="parallel processes (default: one per run, at most the CPUs)")
    run.add_argument("--seeds", help="comma-separated seeds (overrides the file)")
    run.add_argument("--months", type=int, help="horizon in months (overrides the file)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(run=scenario_run_command)
    check = actions.add_parser("check", help="validate a scenario file and print what it would run")
    check.add_argument("file", type=Path)
    check.set_defaults(run=scenario_check_command)


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--param needs KEY=VALUE, got '{item}'")
        try:
            params[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            params[key.strip()] = value
    return params


def quota_table(policy: str, total: int, *, minors: int = 0, inputs: Path | None = None,
                params: dict[str, Any] | None = None, seed: int | None = None) -> pd.DataFrame:
    """The rule's table over the real 357 municipalities (with optional inputs merged in)."""
    from . import reference
    from .quotas import make_rule, split_minors

    params = dict(params or {})
    if seed is not None and policy == "danish":
        params.setdefault("seed", seed)
    munis = reference.municipalities()
    if inputs is not None:
        extra = pd.read_csv(inputs, dtype={"municipality_id": str})
        extra = extra.drop(columns=[c for c in extra.columns if c in munis.columns and c != "municipality_id"])
        munis = munis.merge(extra, on="municipality_id", how="left")
    rule = make_rule(policy, params)
    table = rule.compute(munis, total)
    table.insert(3, "county", munis["county"].to_numpy())
    if minors:
        over_ask = float(getattr(rule, "over_ask", 1.0))
        table.insert(table.columns.get_loc("quota") + 1, "quota_minors",
                     split_minors(table["quota"].to_numpy(), int(round(over_ask * minors))))
    return table


def quotas_command(args: argparse.Namespace) -> int:
    from .quotas import regional_sums

    try:
        table = quota_table(args.policy, args.total, minors=args.minors, inputs=args.inputs,
                            params=_parse_params(args.param), seed=args.seed)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    notes = table.attrs.get("notes", [])
    shown = regional_sums(table.assign(county=table["county"]), by="county") if args.by_county else table
    if args.year is not None:
        shown = shown.assign(year=args.year)
    if args.csv or args.out:
        text = shown.to_csv(index=False)
        if args.out:
            args.out.write_text(text, encoding="utf-8")
            console.print(f"wrote {len(shown)} rows to {args.out}")
        else:
            sys.stdout.write(text)
        return 0
    label = "request" if args.policy == "norwegian" else "quota"
    year = f" {args.year}" if args.year is not None else ""
    out = Table(title=f"{args.policy} {label}s{year}: {int(shown['quota'].sum()):,} persons", header_style="bold")
    if args.by_county:
        columns = ["county", "municipalities", "population", "quota"]
    else:
        columns = ["municipality_id", "name", "county", "population", "quota"]
        columns += ["quota_minors"] if "quota_minors" in shown.columns else []
        columns += ["share"] + SHOWN.get(args.policy, [])
    for column in columns:
        out.add_column(label if column == "quota" else column,
                       justify="right" if pd.api.types.is_numeric_dtype(shown[column]) else "left")
    for _, row in shown[columns].iterrows():
        out.add_row(*[_cell(column, value) for column, value in row.items()])
    console.print(out)
    for note in notes:
        console.print(f"[yellow]{note}[/yellow]" if "SYNTHETIC" in note else note, highlight=False)
    return 0


def _cell(column: str, value: Any) -> str:
    if column in ("share", "immigrant_share", "a"):
        return f"{value:.4%}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, (int,)) or (hasattr(value, "dtype") and pd.api.types.is_integer_dtype(value.dtype)):
        return f"{int(value):,}"
    return str(value)


def scenario_run_command(args: argparse.Namespace) -> int:
    from .config import ScenarioError, load_scenario
    from .runner import run_scenario

    overrides: dict[str, Any] = {}
    if args.seeds:
        overrides["seeds"] = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.months:
        overrides["months"] = args.months
    try:
        scenario = load_scenario(args.file, **overrides)
    except ScenarioError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        return 2
    out = args.out or Path("scenario-out") / args.file.stem
    started = time.perf_counter()
    output = run_scenario(scenario, out, workers=args.workers, progress=not args.no_progress, source=args.file)
    summary = output.tables["kpi_summary"]
    table = Table(title=f"{scenario.name}: mean over {len(scenario.seeds)} seed(s)", header_style="bold")
    table.add_column("KPI")
    policies = [p.name for p in scenario.policies]
    for policy in policies:
        table.add_column(policy, justify="right")
    from .report import _fmt

    for kpi, part in summary.groupby("kpi", sort=False):
        table.add_row(part["label"].iloc[0], *[_fmt(part.loc[part["policy"] == p, "mean"].iloc[0], kpi)
                                               for p in policies])
    console.print(table)
    if output.meta.get("violations"):
        console.print(f"[red]plan violations: {output.meta['violations']}[/red]")
    console.print(f"wrote {out}/report.md and the KPI tables in {time.perf_counter() - started:.0f} s")
    return 1 if output.meta.get("violations") else 0


def scenario_check_command(args: argparse.Namespace) -> int:
    from .arrivals import expected_case
    from .config import ScenarioError, load_scenario
    from .simulation import scenario_municipalities

    try:
        scenario = load_scenario(args.file)
        munis = scenario_municipalities(scenario)
    except (ScenarioError, ValueError, OSError) as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        return 2
    per_case = expected_case(scenario.arrivals)
    console.print(f"{scenario.name}: {scenario.months} months from {scenario.start}, seeds {scenario.seeds}, "
                  f"{len(munis)} municipalities")
    if scenario.arrivals.file is None:
        console.print(f"arrivals: about {scenario.arrivals.mean_cases(0):,.0f} cases a month "
                      f"({per_case['persons']:.2f} persons a case), backlog {scenario.arrivals.initial_backlog}")
    for p in scenario.policies:
        console.print(f"policy {p.name}: rule {p.rule} {p.rule_params or ''}, {p.behaviour_kind}, "
                      f"lead time {p.lead_time_days} days")
    console.print(f"{len(scenario.policies) * len(scenario.seeds)} runs of {scenario.months} rounds, "
                  f"time limit {scenario.solver.time_limit:g} s a round")
    return 0
