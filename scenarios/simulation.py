"""The month loop: a pure, seeded simulation of one policy with the real solver inside.

Each month ``t`` (a round on the first day of the month, ``as_of = d_t``):

1. at the start of each year (``t = 0, 12, ...``) the rule computes requests or quotas from
   the national number, and municipalities resolve (voluntary: a calibrated share; binding:
   the quota);
2. occupied dwellings may be freed (turnover); under binding quotas with a housing duty,
   municipalities behind their quota's pace procure dwellings; dwellings free by ``as_of`` can
   be used, those announced up to ``announce_days`` ahead are listed but not free;
3. every waiting case whose residence decision is on or before ``as_of`` is in the round;
   the allocator proposes placements within the remaining resolutions and free dwellings;
4. municipalities answer: under the voluntary model each proposal is declined with
   ``decline_rate`` (the pair is then excluded for good); under binding quotas every proposal
   is accepted;
5. an accepted case holds its dwelling from ``as_of`` and moves in ``lead_time_days`` later
   (settled); until then it stays in the reception centre;
6. arrivals of the month (residence dates within ``[d_t, d_(t+1))``) enter the next round.

Arrivals and dwellings are generated once per seed and shared by every policy (common random
numbers). The state is a few DataFrames; the result holds the final case table and logs of
rounds, proposals, quotas and unplaced reasons, from which :mod:`scenarios.kpis` computes
every KPI. The same scenario, policy and seed give the same result as long as every round
finishes within its time limit (status ``optimal``; see ``rounds["status"]``).
"""

from __future__ import annotations

import logging
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator import ProblemValidationError, Settings, build_problem, solve, verify_plan, write_problem

from . import reference
from .arrivals import case_composition, expected_case, generate_arrivals, month_starts, read_arrivals
from .behaviour import Behaviour
from .config import PolicyConfig, Scenario
from .housing import dwelling_attributes, generate_dwellings, read_dwellings
from .quotas import make_rule, split_minors

log = logging.getLogger(__name__)

#: Streams of the random number generator, one per purpose, so that changing one part of a
#: scenario does not change the draws of another.
STREAM_ARRIVALS, STREAM_HOUSING, STREAM_TURNOVER, STREAM_BEHAVIOUR, STREAM_DUTY = 1, 2, 3, 4, 5


def rng_for(seed: int, stream: int, *extra: int) -> np.random.Generator:
    """A generator for one purpose of one run: ``SeedSequence([seed, stream, *extra])``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), *map(int, extra)]))


def _policy_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


@dataclass
class RunResult:
    """Everything one (policy, seed) run produced.

    Attributes
    ----------
    cases
        One row per case: composition, ``residence_date``, ``arrival_month`` (-1: waiting at
        the start), ``status`` (``waiting`` or ``accepted``), ``municipality_id``,
        ``dwelling_id``, ``accepted_month``, ``accepted_date``, ``settled_date`` (the day it
        moves in; may lie after the horizon), ``proposals``, ``declines``.
    rounds
        One row per month: cases and persons in the round, proposed, accepted, declined,
        ``status``, ``gap`` and ``seconds`` of the solve.
    proposals
        Every proposal: ``month``, ``case_id``, ``municipality_id``, ``dwelling_id``, ``accepted``.
    unplaced
        ``month``, ``rule``, ``cases``: the cases of each round left unplaced, by rule
        (``declined``: proposed but declined; ``fits_no_dwelling``: no listed dwelling is large
        enough; the others are the allocator's rules).
    quotas
        Per year and municipality: ``request_or_quota``, minors, ``resolution_persons``,
        ``resolution_minors`` and the national numbers.
    dwellings
        Every dwelling of the run with ``places`` (1, or the occupancy of a shared flat) and
        ``used`` (cases housed at the end).
    """

    scenario: str
    policy: str
    rule: str
    behaviour: str
    seed: int
    starts: list[pd.Timestamp]
    municipalities: pd.DataFrame
    cases: pd.DataFrame
    rounds: pd.DataFrame
    proposals: pd.DataFrame
    unplaced: pd.DataFrame
    quotas: pd.DataFrame
    dwellings: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def end(self) -> pd.Timestamp:
        return self.starts[-1]


def scenario_municipalities(scenario: Scenario) -> pd.DataFrame:
    """The municipalities of a scenario, with any extra inputs for the rules merged in."""
    cfg = scenario.municipalities
    path = scenario.path(cfg.file)
    if path is not None:
        munis = pd.read_csv(path, dtype={"municipality_id": str, "county_id": str})
        missing = {"municipality_id", "name", "county_id", "population"} - set(munis.columns)
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        if "county" not in munis.columns:
            munis["county"] = munis["county_id"]
    else:
        munis = reference.municipalities()
    if cfg.ids:
        unknown = set(cfg.ids) - set(munis["municipality_id"])
        if unknown:
            raise ValueError(f"unknown municipality ids: {sorted(unknown)}")
        munis = munis[munis["municipality_id"].isin(cfg.ids)]
    if cfg.sample and cfg.sample < len(munis):
        rng = np.random.default_rng([cfg.sample_seed, 99])
        pick = np.sort(rng.choice(len(munis), size=cfg.sample, replace=False))
        munis = munis.iloc[pick]
    munis = munis.reset_index(drop=True)
    munis["population"] = munis["population"].astype(int)
    inputs = scenario.path(cfg.inputs)
    if inputs is not None:
        extra = pd.read_csv(inputs, dtype={"municipality_id": str})
        extra = extra.drop(columns=[c for c in extra.columns if c in munis.columns and c != "municipality_id"])
        munis = munis.merge(extra, on="municipality_id", how="left")
    return munis


class Simulation:
    """One policy over the horizon for one seed. Use :func:`simulate`."""

    def __init__(self, scenario: Scenario, policy: PolicyConfig, seed: int,
                 verify_dir: Path | None = None, on_month: Callable[[int], None] | None = None):
        self.on_month = on_month
        self.scenario = scenario
        self.policy = policy
        self.seed = int(seed)
        self.verify_dir = verify_dir
        self.starts = month_starts(pd.Timestamp(scenario.start), scenario.months)
        self.munis = scenario_municipalities(scenario)
        self.rule = make_rule(policy.rule, policy.rule_params)
        self.behaviour = Behaviour(policy.behaviour_kind, policy.decline_rate, policy.refuse_share)
        self.rng_behaviour = rng_for(seed, STREAM_BEHAVIOUR, _policy_key(policy.name))
        self.rng_turnover = rng_for(seed, STREAM_TURNOVER)
        self.rng_duty = rng_for(seed, STREAM_DUTY, _policy_key(policy.name))
        self.cases, self.persons = self._arrivals()
        self.dwellings = self._dwellings()
        self.settings_base = {
            "objective": {"priorities": scenario.solver.priorities},
            "solver": {"time_limit": scenario.solver.time_limit, "relative_gap": scenario.solver.relative_gap,
                       "threads": scenario.solver.threads, "seed": scenario.solver.seed,
                       "backend": scenario.solver.backend},
        }
        n = len(self.munis)
        self.resolution = np.zeros(n, dtype=int)
        self.resolution_minors = np.zeros(n, dtype=int)
        self.used = np.zeros(n, dtype=int)
        self.used_minors = np.zeros(n, dtype=int)
        self.exclusions: list[dict[str, str]] = []
        self.rounds: list[dict[str, Any]] = []
        self.proposals: list[pd.DataFrame] = []
        self.unplaced: list[dict[str, Any]] = []
        self.quotas: list[pd.DataFrame] = []
        self.notes: list[str] = []
        self.violations: list[str] = []

    # -- set-up ---------------------------------------------------------------------------
    def _arrivals(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        path = self.scenario.path(self.scenario.arrivals.file)
        if path is not None:
            cases, persons = read_arrivals(path)
        else:
            cases, persons = generate_arrivals(self.scenario.arrivals, self.munis, self.starts,
                                               rng_for(self.seed, STREAM_ARRIVALS))
        known = set(self.munis["municipality_id"]) | {""}
        bad = ~cases["tie_municipality_id"].isin(known)
        if bad.any():
            unknown = sorted(set(cases.loc[bad, "tie_municipality_id"]))[:5]
            raise ValueError(f"arrivals tie to unknown municipalities: {unknown}")
        comp = case_composition(cases, persons)
        cases = pd.concat([cases, comp], axis=1)
        edges = np.array([s.to_datetime64() for s in self.starts])
        cases["arrival_month"] = np.searchsorted(edges, cases["residence_date"].to_numpy(), side="right") - 1
        cases["status"] = "waiting"
        cases["municipality_id"] = ""
        cases["dwelling_id"] = ""
        cases["accepted_month"] = -1
        cases["accepted_date"] = pd.NaT
        cases["settled_date"] = pd.NaT
        cases["proposals"] = 0
        cases["declines"] = 0
        cases = cases.set_index("case_id", drop=False)
        cases.index.name = None
        return cases, persons

    def _dwellings(self) -> pd.DataFrame:
        path = self.scenario.path(self.scenario.housing.file)
        if path is not None:
            dwellings = read_dwellings(path)
        else:
            dwellings = generate_dwellings(self.scenario.housing, self.munis, self.starts,
                                           rng_for(self.seed, STREAM_HOUSING))
        unknown = ~dwellings["municipality_id"].isin(self.munis["municipality_id"])
        if unknown.any():
            raise ValueError("dwellings in unknown municipalities: "
                             f"{sorted(set(dwellings.loc[unknown, 'municipality_id']))[:5]}")
        dwellings = dwellings.copy()
        dwellings["places"] = np.where(dwellings["shared"], dwellings["max_occupants"], 1)
        dwellings["used"] = 0
        return dwellings.set_index("dwelling_id", drop=False).rename_axis(None)

    # -- the year -------------------------------------------------------------------------
    def national_numbers(self, t: int) -> tuple[int, int]:
        """Persons and minors the rule splits for the year starting at month ``t``."""
        year = t // 12
        cfg = self.scenario.national
        as_of = self.starts[t]
        waiting = self.cases[(self.cases["status"] == "waiting") & (self.cases["residence_date"] <= as_of)]
        end = as_of + pd.DateOffset(months=12)
        if self.scenario.arrivals.file is not None:
            coming = self.cases[(self.cases["residence_date"] > as_of) & (self.cases["residence_date"] < end)]
            expected_persons, expected_minors = float(coming["size"].sum()), float(coming["minors"].sum())
        else:
            per_case = expected_case(self.scenario.arrivals)
            n_cases = sum(self.scenario.arrivals.mean_cases(m) for m in range(t, t + 12))
            expected_persons, expected_minors = n_cases * per_case["persons"], n_cases * per_case["minors"]

        def pick(value: Any, auto: float) -> int:
            if value == "auto":
                return int(np.floor(auto + 0.5))
            if isinstance(value, list):
                return int(value[min(year, len(value) - 1)])
            return int(value)

        persons = pick(cfg.persons, waiting["size"].sum() + expected_persons)
        minors = pick(cfg.minors, waiting["minors"].sum() + expected_minors)
        return persons, min(minors, persons)

    def start_year(self, t: int) -> None:
        persons, minors = self.national_numbers(t)
        table = self.rule.compute(self.munis, persons)
        for note in table.attrs.get("notes", []):
            if note not in self.notes:
                self.notes.append(note)
        quota = table["quota"].to_numpy(dtype=int)
        over_ask = float(getattr(self.rule, "over_ask", 1.0))
        minors_total = int(np.floor(over_ask * minors + 0.5))
        quota_minors = split_minors(quota, minors_total)
        self.resolution, self.resolution_minors = self.behaviour.resolve(quota, quota_minors, self.rng_behaviour)
        self.used[:] = 0
        self.used_minors[:] = 0
        self.quotas.append(pd.DataFrame({
            "year": t // 12,
            "month": t,
            "municipality_id": self.munis["municipality_id"].to_numpy(),
            "national_persons": persons,
            "national_minors": minors,
            "request_or_quota": quota,
            "request_or_quota_minors": quota_minors,
            "resolution_persons": self.resolution,
            "resolution_minors": self.resolution_minors,
        }))
        log.info("%s seed %d year %d: national %d persons (%d minors); %s total %d, resolved %d",
                 self.policy.name, self.seed, t // 12, persons, minors, self.policy.rule, quota.sum(),
                 self.resolution.sum())

    # -- one month ------------------------------------------------------------------------
    def turnover(self, as_of: pd.Timestamp) -> None:
        rate = self.scenario.housing.turnover
        occupied = self.dwellings.index[self.dwellings["used"] > 0]
        if rate <= 0 or len(occupied) == 0:
            return
        freed = occupied[self.rng_turnover.random(len(occupied)) < rate]
        self.dwellings.loc[freed, "used"] = 0
        self.dwellings.loc[freed, "available_from"] = as_of

    def listed_dwellings(self, as_of: pd.Timestamp) -> pd.DataFrame:
        """Dwellings in the round's file: known by ``as_of + announce_days`` and not full."""
        horizon = as_of + pd.Timedelta(days=self.scenario.housing.announce_days)
        d = self.dwellings
        return d[(d["available_from"] <= horizon) & (d["used"] < d["places"])]

    def procure(self, t: int) -> int:
        """Binding quotas with a housing duty: municipalities procure dwellings for their quota.

        Each month a municipality needs about ``remaining quota / months left in the year``
        persons housed, i.e. that over the mean persons per case in dwellings; it closes
        ``housing_duty`` of the shortfall against the dwellings it has listed (stochastic
        rounding), with new dwellings free ``housing_duty_days`` later. Returns the number.
        """
        duty = self.policy.housing_duty
        if duty <= 0 or not self.behaviour.binding:
            return 0
        as_of = self.starts[t]
        months_left = 12 - t % 12
        if self.scenario.arrivals.file is None:
            per_case = expected_case(self.scenario.arrivals)["persons"]
        else:
            per_case = float(self.cases["size"].mean())
        pace = np.maximum(self.resolution - self.used, 0) / months_left / max(per_case, 1.0)
        have = self.listed_dwellings(as_of).groupby("municipality_id").size()
        have = have.reindex(self.munis["municipality_id"]).fillna(0).to_numpy()
        shortfall = np.maximum(pace - have, 0.0) * duty
        count = np.floor(shortfall + self.rng_duty.random(len(shortfall))).astype(int)
        n = int(count.sum())
        if n == 0:
            return 0
        new = pd.DataFrame({
            "dwelling_id": [f"X{t:03d}-{i:05d}" for i in range(n)],
            "municipality_id": np.repeat(self.munis["municipality_id"].to_numpy(), count).astype(object),
            **dwelling_attributes(self.rng_duty, self.scenario.housing, n),
            "available_from": as_of + pd.Timedelta(days=self.policy.housing_duty_days),
        })
        new["places"] = np.where(new["shared"], new["max_occupants"], 1)
        new["used"] = 0
        self.dwellings = pd.concat([self.dwellings, new.set_index("dwelling_id", drop=False).rename_axis(None)])
        return n

    def round_tables(self, t: int) -> dict[str, pd.DataFrame]:
        """The allocator's input tables for the round of month ``t`` (text, as in a folder)."""
        as_of = self.starts[t]
        left = np.maximum(self.resolution - self.used, 0)
        left_minors = np.minimum(np.maximum(self.resolution_minors - self.used_minors, 0), left)
        munis = pd.DataFrame({
            "municipality_id": self.munis["municipality_id"],
            "name": self.munis["name"],
            "county_id": self.munis["county_id"],
            "population": self.munis["population"],
            "resolution_persons": left,
            "resolution_minors": left_minors,
        })
        waiting = self.cases[(self.cases["status"] == "waiting") & (self.cases["residence_date"] <= as_of)]
        cases = pd.DataFrame({
            "case_id": waiting["case_id"],
            "residence_date": waiting["residence_date"].dt.strftime("%Y-%m-%d"),
            "category": waiting["category"],
            "tie_municipality_id": waiting["tie_municipality_id"],
            "needs_step_free": np.where(waiting["needs_step_free"], "true", "false"),
        })
        persons = self.persons[self.persons["case_id"].isin(waiting.index)]
        listed = self.listed_dwellings(as_of)
        dwellings = pd.DataFrame({
            "dwelling_id": listed["dwelling_id"],
            "municipality_id": listed["municipality_id"],
            "bedrooms": listed["bedrooms"],
            "max_occupants": np.where(listed["shared"], listed["places"] - listed["used"], listed["max_occupants"]),
            "step_free": np.where(listed["step_free"], "true", "false"),
            "shared": np.where(listed["shared"], "true", "false"),
            "available_from": listed["available_from"].dt.strftime("%Y-%m-%d"),
        })
        excl = pd.DataFrame(self.exclusions, columns=["case_id", "municipality_id", "reason"])
        excl = excl[excl["case_id"].isin(waiting.index)]
        tables = {"municipalities.csv": munis, "cases.csv": cases, "persons.csv": persons,
                  "dwellings.csv": dwellings, "exclusions.csv": excl}
        return {name: df.reset_index(drop=True).astype(str) for name, df in tables.items()}

    def settings_for(self, t: int) -> Settings:
        return Settings.model_validate({**self.settings_base, "as_of": self.starts[t].date()})

    def build(self, tables: dict[str, pd.DataFrame], settings: Settings) -> tuple[Any, list[str]]:
        """Validate the round; cases no listed dwelling could ever house leave the round."""
        try:
            return build_problem(tables, settings), []
        except ProblemValidationError as exc:
            too_large = [i for i in exc.issues if i.rule == "fits-no-dwelling" and i.file == "cases.csv"]
            other = [i for i in exc.issues if i not in too_large]
            if other:
                raise
        cases = tables["cases.csv"]
        dropped = cases["case_id"].iloc[[i.row - 2 for i in too_large]].tolist()
        keep = {name: df for name, df in tables.items()}
        keep["cases.csv"] = cases[~cases["case_id"].isin(dropped)].reset_index(drop=True)
        keep["persons.csv"] = tables["persons.csv"][~tables["persons.csv"]["case_id"].isin(dropped)]
        keep["exclusions.csv"] = tables["exclusions.csv"][~tables["exclusions.csv"]["case_id"].isin(dropped)]
        tables.clear()
        tables.update(keep)
        return build_problem(tables, settings), dropped

    def month(self, t: int) -> None:
        as_of = self.starts[t]
        if t % 12 == 0:
            self.start_year(t)
        if t > 0:
            self.turnover(as_of)
        procured = self.procure(t)
        tables = self.round_tables(t)
        row: dict[str, Any] = {"month": t, "as_of": as_of.date().isoformat(),
                               "cases": len(tables["cases.csv"]),
                               "persons": len(tables["persons.csv"]),
                               "resolution_left": int(tables["municipalities.csv"]["resolution_persons"]
                                                      .astype(int).sum()),
                               "dwellings_listed": len(tables["dwellings.csv"]),
                               "dwellings_procured": procured,
                               "proposed": 0, "accepted": 0, "declined": 0, "fits_no_dwelling": 0,
                               "status": "no_round", "gap": np.nan, "seconds": 0.0}
        if row["cases"] == 0:
            self.rounds.append(row)
            return
        if row["dwellings_listed"] == 0:
            self.unplaced.append({"month": t, "rule": "housing", "cases": row["cases"]})
            row["status"] = "no_dwellings"
            self.rounds.append(row)
            return
        settings = self.settings_for(t)
        problem, dropped = self.build(tables, settings)
        row["fits_no_dwelling"] = len(dropped)
        if dropped:
            self.unplaced.append({"month": t, "rule": "fits_no_dwelling", "cases": len(dropped)})
        if len(problem.cases) == 0:
            self.rounds.append(row)
            return
        result = solve(problem, settings)
        row.update(status=result.status, gap=np.nan if result.gap is None else float(result.gap),
                   seconds=round(result.total_seconds, 3))
        if self.verify_dir is not None:
            self.verify(t, tables, settings, result)
        for rule, n in result.unplaced["rule"].value_counts().sort_index().items():
            self.unplaced.append({"month": t, "rule": str(rule), "cases": int(n)})
        self.answer(t, result.plan, row)
        self.rounds.append(row)
        log.info("%s seed %d month %d: %d cases, proposed %d, accepted %d (%s, %.1fs)", self.policy.name,
                 self.seed, t, row["cases"], row["proposed"], row["accepted"], row["status"], row["seconds"])

    def answer(self, t: int, plan: pd.DataFrame, row: dict[str, Any]) -> None:
        """Municipalities answer the proposals; accepted cases take their dwelling."""
        plan = plan[["case_id", "municipality_id", "dwelling_id"]].reset_index(drop=True)
        accepted = self.behaviour.answer(len(plan), self.rng_behaviour)
        as_of = self.starts[t]
        self.proposals.append(plan.assign(month=t, accepted=accepted))
        row.update(proposed=len(plan), accepted=int(accepted.sum()), declined=int((~accepted).sum()))
        self.cases.loc[plan["case_id"], "proposals"] += 1
        declined = plan[~accepted]
        if len(declined):
            self.cases.loc[declined["case_id"], "declines"] += 1
            self.exclusions += [{"case_id": c, "municipality_id": m, "reason": f"declined in month {t}"}
                                for c, m in zip(declined["case_id"], declined["municipality_id"])]
            self.unplaced.append({"month": t, "rule": "declined", "cases": len(declined)})
        took = plan[accepted]
        if took.empty:
            return
        ids = took["case_id"].to_numpy()
        self.cases.loc[ids, "status"] = "accepted"
        self.cases.loc[ids, "municipality_id"] = took["municipality_id"].to_numpy()
        self.cases.loc[ids, "dwelling_id"] = took["dwelling_id"].to_numpy()
        self.cases.loc[ids, "accepted_month"] = t
        self.cases.loc[ids, "accepted_date"] = as_of
        self.cases.loc[ids, "settled_date"] = as_of + pd.to_timedelta(self.lead_times(len(ids)), unit="D")
        used = took.groupby("dwelling_id").size()
        self.dwellings.loc[used.index, "used"] += used.to_numpy()
        m_index = pd.Index(self.munis["municipality_id"]).get_indexer(took["municipality_id"])
        size = self.cases.loc[ids, "size"].to_numpy()
        minors = self.cases.loc[ids, "minors"].to_numpy()
        np.add.at(self.used, m_index, size)
        np.add.at(self.used_minors, m_index, minors)

    def lead_times(self, n: int) -> np.ndarray:
        """Days from acceptance to moving in, for ``n`` accepted cases."""
        lead = self.policy.lead_time_days
        if isinstance(lead, int):
            return np.full(n, lead, dtype=int)
        return self.rng_behaviour.integers(lead[0], lead[1] + 1, n)

    def verify(self, t: int, tables: dict[str, pd.DataFrame], settings: Settings, result: Any) -> None:
        """Re-check the round's plan with the allocator's independent verifier."""
        folder = write_problem(tables, self.verify_dir / f"{self.policy.name}-{self.seed}-m{t:03d}",
                               settings.model_dump(mode="json"))
        result.write(folder / "out")
        problems = verify_plan(folder, folder / "out" / "plan.csv")
        self.violations += [f"month {t}: {p}" for p in problems]

    def run(self) -> RunResult:
        import time

        started = time.perf_counter()
        for t in range(self.scenario.months):
            self.month(t)
            if self.on_month is not None:
                self.on_month(t)
        columns = ["case_id", "municipality_id", "dwelling_id", "month", "accepted"]
        return RunResult(
            scenario=self.scenario.name,
            policy=self.policy.name,
            rule=self.policy.rule,
            behaviour=self.behaviour.kind,
            seed=self.seed,
            starts=self.starts,
            municipalities=self.munis[["municipality_id", "name", "county_id", "county", "population"]].copy(),
            cases=self.cases.reset_index(drop=True),
            rounds=pd.DataFrame(self.rounds),
            proposals=pd.concat(self.proposals, ignore_index=True) if self.proposals
            else pd.DataFrame(columns=columns),
            unplaced=pd.DataFrame(self.unplaced, columns=["month", "rule", "cases"]),
            quotas=pd.concat(self.quotas, ignore_index=True),
            dwellings=self.dwellings.reset_index(drop=True),
            notes=list(self.notes),
            violations=list(self.violations),
            wall_seconds=time.perf_counter() - started,
        )


def simulate(scenario: Scenario, policy: PolicyConfig | str, seed: int, *,
             verify: bool = False, verify_dir: Path | None = None,
             on_month: Callable[[int], None] | None = None) -> RunResult:
    """Run one policy of a scenario for one seed.

    Parameters
    ----------
    scenario
        The scenario (see :func:`scenarios.config.load_scenario`).
    policy
        One of ``scenario.policies``, or its name.
    seed
        The run's seed: arrivals, housing and behaviour draws follow from it.
    verify, verify_dir
        Re-check every round's plan with :func:`allocator.verify_plan`; violations are in
        ``RunResult.violations``. The round folders go to ``verify_dir`` (a temporary folder
        when not given).
    on_month
        Called with the month's index after each month (progress reporting).
    """
    if isinstance(policy, str):
        matches = [p for p in scenario.policies if p.name == policy]
        if not matches:
            raise ValueError(f"no policy '{policy}' in the scenario")
        policy = matches[0]
    if verify or scenario.verify_plans:
        if verify_dir is None:
            with tempfile.TemporaryDirectory(prefix="scenario-verify-") as tmp:
                return Simulation(scenario, policy, seed, Path(tmp), on_month).run()
        return Simulation(scenario, policy, seed, Path(verify_dir), on_month).run()
    return Simulation(scenario, policy, seed, None, on_month).run()
