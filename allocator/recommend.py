"""Recommendations: the best municipalities for one case, and what each costs or gains.

For a case and a plan, every municipality where the case may go at all (its rules allow it
against the capacity pins leave, a free dwelling there fits it, the pair is not excluded) is a
candidate. Each candidate gets a concrete plan with the case placed there, built in two steps:

1. **Local** (every candidate): take the case out of its current municipality and put it in the
   candidate with the best-fitting free dwelling, if the candidate has room left in the current
   plan (method ``move``). If it has not, the least urgent unpinned cases placed there give up
   their place until the case fits, and those that still fit afterwards come back (method
   ``displace``).
2. **Re-solve** (the best few of step 1, within a time budget): solve the round again with the
   case pinned to the candidate, warm-started from the step-1 plan (method ``resolve``, when it
   is better). This lets displaced cases move elsewhere and the rest of the plan adapt.

Each candidate's plan is scored with :func:`plan_terms`, which computes every objective term of
a concrete plan exactly from the input (pinned cases included), and its priority levels are
compared with the current plan's: ``change`` is the difference per level (positive is a gain).
Candidates are ranked lexicographically by ``change``, as the solver ranks plans. A ``move`` or
``displace`` plan is a feasible plan, so its change is a lower bound on what the best plan with
the case there reaches; a ``resolve`` plan is the solver's best within its time, ``proven`` when
optimal within the gap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .backend import StopFlag
from .columns import with_python_text
from .errors import ProblemValidationError
from .problem import Problem
from .scoring import level_values, plan_terms
from .settings import Settings

log = logging.getLogger(__name__)

#: Levels closer than this are equal when ranking.
TOLERANCE = 1e-6


def _key(levels: Sequence[float]) -> tuple[float, ...]:
    return tuple(round(v / TOLERANCE) * TOLERANCE for v in levels)


# -- state of a plan per municipality ------------------------------------------------------------

@dataclass
class _Room:
    """What a plan leaves in each municipality: capacities and free dwellings."""

    problem: Problem
    plan: pd.DataFrame
    persons: pd.Series = field(init=False)
    minors: pd.Series = field(init=False)
    services: dict[str, pd.Series] = field(init=False)
    used_private: set[str] = field(init=False)
    shared_load: dict[str, int] = field(init=False)
    _free_by: dict[str, pd.DataFrame] | None = field(init=False, default=None)
    _no_dwellings: pd.DataFrame | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        p = self.problem
        cases = p.cases.loc[self.plan["case_id"].to_numpy()]
        by = self.plan["municipality_id"].to_numpy()
        munis = p.municipalities

        def left(capacity: pd.Series, used: pd.Series) -> pd.Series:
            return capacity - used.groupby(by).sum().reindex(munis.index).fillna(0)

        self.persons = left(munis["resolution_persons"].astype(float), cases["size"])
        self.minors = left(munis["resolution_minors"].astype(float), cases["minors"])
        self.services = {s: left(munis[f"capacity_{s}"].astype(float), cases[f"use_{s}"]) for s in p.services}
        self.used_private, self.shared_load = set(), {}
        if p.housing_modelled:
            for d in self.plan["dwelling_id"]:
                if not d:
                    continue
                if bool(p.dwellings.at[d, "shared"]):
                    self.shared_load[d] = self.shared_load.get(d, 0) + 1
                else:
                    self.used_private.add(d)

    def fits(self, case: pd.Series, m: str) -> bool:
        if self.persons[m] < case["size"]:
            return False
        if case["minors"] > 0 and self.minors[m] < case["minors"]:
            return False
        return all(self.services[s][m] >= case[f"use_{s}"] for s in self.problem.services if case[f"use_{s}"] > 0)

    def dwelling(self, case: pd.Series, m: str) -> str | None:
        """The best-fitting free dwelling for the case in ``m`` ("" when housing is not modelled)."""
        p = self.problem
        if not p.housing_modelled:
            return ""
        d = self.free_in(m)
        if case["needs_step_free"]:
            d = d[d["step_free"]]
        shared = d[d["shared"]]
        if case["single_adult"] and len(shared):
            load = np.array([self.shared_load.get(i, 0) for i in shared.index])
            room = shared[load < shared["max_occupants"].to_numpy()]
            if len(room):
                return str(room.sort_values(["max_occupants"]).index[0])
        private = d[~d["shared"] & (d["bedrooms"] >= case["bedrooms"]) & (d["max_occupants"] >= case["size"])]
        private = private[~private.index.isin(self.used_private)]
        if private.empty:
            return None
        return str(private.sort_values(["bedrooms", "max_occupants"]).index[0])

    def apply(self, case_id: str, m: str, dwelling: str, sign: int) -> None:
        """Add (``sign`` +1) or take out (-1) one placed case."""
        c = self.problem.cases.loc[case_id]
        self.persons[m] -= sign * c["size"]
        self.minors[m] -= sign * c["minors"]
        for s in self.problem.services:
            self.services[s][m] -= sign * c[f"use_{s}"]
        if dwelling:
            if bool(self.problem.dwellings.at[dwelling, "shared"]):
                self.shared_load[dwelling] = self.shared_load.get(dwelling, 0) + sign
            elif sign > 0:
                self.used_private.add(dwelling)
            else:
                self.used_private.discard(dwelling)

    def free_in(self, m: str) -> pd.DataFrame:
        """Free dwellings of ``m`` (grouped once per plan)."""
        if self._free_by is None:
            free = self.problem.free_dwellings
            self._free_by = {k: g for k, g in free.groupby("municipality_id", sort=False)}
            self._no_dwellings = free.iloc[:0]
        return self._free_by.get(m, self._no_dwellings)


# -- candidates -----------------------------------------------------------------------------------

def allowed_municipalities(problem: Problem, case_id: str) -> list[str]:
    """Municipalities where the case may go at all: rules against what pins of other cases leave,
    a free dwelling that fits, and no exclusion."""
    case = problem.cases.loc[case_id]
    others = problem.pins[problem.pins["case_id"] != case_id]
    room = _Room(problem, others.assign(dwelling_id=others["dwelling_id"].fillna("")))
    excluded = set(problem.exclusions.loc[problem.exclusions["case_id"] == case_id, "municipality_id"])
    out = []
    for m in problem.municipalities.index:
        if m in excluded or not room.fits(case, m):
            continue
        if room.dwelling(case, m) is None:
            continue
        out.append(str(m))
    return out


@dataclass
class _Option:
    municipality_id: str
    method: str
    plan: pd.DataFrame
    dwelling_id: str
    levels: list[float] = field(default_factory=list)
    terms: dict[str, float] = field(default_factory=dict)
    proven: bool = False


def _local_option(problem: Problem, rest: pd.DataFrame, room: _Room, case_id: str, m: str) -> _Option | None:
    """Put the case in ``m`` with what the plan leaves there, displacing less urgent cases if needed.

    ``rest`` is the plan without the case and ``room`` what it leaves; ``room`` is changed while
    trying and restored before returning.
    """
    case = problem.cases.loc[case_id]
    changes: list[tuple[str, str, str, int]] = []

    def apply(case: str, muni: str, dwelling: str, sign: int) -> None:
        room.apply(case, muni, dwelling, sign)
        changes.append((case, muni, dwelling, sign))

    try:
        dwelling = room.dwelling(case, m) if room.fits(case, m) else None
        removed: list[tuple[str, str]] = []
        method = "move"
        if dwelling is None:
            method = "displace"
            here = rest[(rest["municipality_id"] == m) & ~rest["pinned"]]
            urgency = problem.cases.loc[here["case_id"].to_numpy(), "urgency"].to_numpy()
            for idx in np.argsort(urgency, kind="stable"):
                row = here.iloc[idx]
                apply(row["case_id"], m, row["dwelling_id"], -1)
                removed.append((row["case_id"], row["dwelling_id"]))
                if room.fits(case, m):
                    dwelling = room.dwelling(case, m)
                    if dwelling is not None:
                        break
            if dwelling is None:
                return None
        apply(case_id, m, dwelling, +1)
        back = []
        for other, _ in reversed(removed):  # most urgent first: whoever still fits comes back
            c = problem.cases.loc[other]
            if room.fits(c, m):
                d = room.dwelling(c, m)
                if d is not None:
                    apply(other, m, d, +1)
                    back.append({"case_id": other, "municipality_id": m, "dwelling_id": d, "pinned": False})
        gone = {c for c, _ in removed}
        plan = pd.concat([
            rest[~rest["case_id"].isin(gone)] if gone else rest,
            pd.DataFrame([{"case_id": case_id, "municipality_id": m, "dwelling_id": dwelling, "pinned": False},
                          *back]),
        ], ignore_index=True)
        return _Option(m, method, plan, dwelling)
    finally:
        for c, muni, d, sign in reversed(changes):
            room.apply(c, muni, d, -sign)


def _resolve_option(problem: Problem, settings: Settings, case_id: str, m: str, warm: pd.DataFrame,
                    time_limit: float, stop: StopFlag | None) -> _Option | None:
    """Solve the round again with the case pinned to ``m``."""
    from .solve import solve  # local: the solver is heavy and only needed here

    pins = problem.pins[problem.pins["case_id"] != case_id][["case_id", "municipality_id", "dwelling_id"]]
    pins = pd.concat([pins, pd.DataFrame([{"case_id": case_id, "municipality_id": m, "dwelling_id": ""}])],
                     ignore_index=True)
    try:
        pinned = problem.with_pins_and_exclusions(pins=pins)
    except ProblemValidationError as exc:
        log.info("case %s cannot be pinned to %s: %s", case_id, m, exc.issues[0].rule)
        return None
    try:
        result = solve(pinned, settings.with_overrides(solver__time_limit=max(time_limit, 0.2)),
                       stop=stop, warm_start=warm[["case_id", "municipality_id"]])
    except RuntimeError as exc:  # the pins cannot all be housed
        log.info("case %s in %s: %s", case_id, m, exc)
        return None
    row = result.plan[result.plan["case_id"] == case_id]
    dwelling = str(row["dwelling_id"].iloc[0]) if len(row) else ""
    return _Option(m, "resolve", result.plan, dwelling, proven=result.status == "optimal")


@with_python_text
def recommend(
    problem: Problem,
    plan: pd.DataFrame,
    case_id: str,
    *,
    limit: int = 5,
    time_limit: float = 10.0,
    resolve_extra: int = 3,
    settings: Settings | None = None,
    stop: StopFlag | None = None,
    with_plans: bool = False,
) -> dict[str, Any]:
    """The best ``limit`` municipalities for ``case_id`` other than where ``plan`` has it.

    Parameters
    ----------
    problem
        The round the plan belongs to (with the pins and exclusions the plan was solved with).
    plan
        ``case_id``, ``municipality_id``, ``dwelling_id``, ``pinned`` (a result's ``plan``).
    case_id
        The case.
    limit
        How many municipalities to return.
    time_limit
        Seconds for re-solves in all; 0 skips them (local plans only).
    resolve_extra
        Candidates re-solved beyond ``limit`` (the best by the local step).
    settings
        Objective and solver settings (default: the problem's).
    stop
        Stops the re-solves early.
    with_plans
        Add each candidate's whole plan (``plan``: records of case_id, municipality_id,
        dwelling_id), e.g. to check it with the verifier.

    Returns
    -------
    dict
        JSON-ready: ``status``, ``current_municipality_id``, ``base_levels``, ``priorities``,
        ``candidates`` (each with ``change`` per level, ``terms_change``, ``method``,
        ``displaced``, ``moved``, ``proven``), ``considered``, ``resolved``, ``seconds``.

    Raises
    ------
    KeyError
        When the case is not in the problem.
    """
    started = time.perf_counter()
    settings = settings or problem.settings
    if case_id not in problem.cases.index:
        raise KeyError(case_id)
    base = plan[["case_id", "municipality_id", "dwelling_id", "pinned"]].copy()
    base["dwelling_id"] = base["dwelling_id"].fillna("").astype(str)
    base["pinned"] = base["pinned"].astype(bool)
    row = base[base["case_id"] == case_id]
    current = str(row["municipality_id"].iloc[0]) if len(row) else None
    status = "unplaced" if current is None else ("pinned" if bool(row["pinned"].iloc[0]) else "placed")
    base_terms = plan_terms(problem, base)
    base_levels = level_values(settings, base_terms)

    allowed = [m for m in allowed_municipalities(problem, case_id) if m != current]
    rest = base[base["case_id"] != case_id].reset_index(drop=True)
    room = _Room(problem, rest)
    options: list[_Option] = []
    for m in allowed:
        option = _local_option(problem, rest, room, case_id, m)
        if option is not None:
            _score(problem, settings, option)
            options.append(option)
    options.sort(key=lambda o: _key(o.levels), reverse=True)

    resolved = 0
    if time_limit > 0 and options:
        chosen = options[: limit + resolve_extra]
        deadline = started + time_limit
        for i, option in enumerate(chosen):
            remaining = deadline - time.perf_counter()
            if remaining <= 0.2 or (stop is not None and stop.stopped):
                break
            better = _resolve_option(problem, settings, case_id, option.municipality_id, option.plan,
                                     remaining / (len(chosen) - i), stop)
            resolved += 1
            if better is None:
                continue
            _score(problem, settings, better)
            if _key(better.levels) > _key(option.levels):  # ties keep the smaller change
                options[options.index(option)] = better
        options.sort(key=lambda o: _key(o.levels), reverse=True)

    names = problem.municipalities["name"]
    base_at = dict(zip(base["case_id"], base["municipality_id"]))
    candidates = []
    for option in options[:limit]:
        now_at = dict(zip(option.plan["case_id"], option.plan["municipality_id"]))
        displaced = sorted(c for c in base_at if c not in now_at and c != case_id)
        moved = sorted(c for c, mm in now_at.items() if c != case_id and c in base_at and base_at[c] != mm)
        candidate = {
            "municipality_id": option.municipality_id,
            "name": str(names.get(option.municipality_id, "")),
            "method": option.method,
            "change": [float(a - b) for a, b in zip(option.levels, base_levels)],
            "terms_change": {t: float(option.terms[t] - base_terms[t]) for t in base_terms},
            "levels": [float(v) for v in option.levels],
            "dwelling_id": option.dwelling_id,
            "displaced": displaced,
            "moved": moved,
            "proven": option.proven,
        }
        if with_plans:
            candidate["plan"] = option.plan[["case_id", "municipality_id", "dwelling_id"]].to_dict("records")
        candidates.append(candidate)
    return {
        "case_id": case_id,
        "status": status,
        "current_municipality_id": current,
        "priorities": [list(level) for level in settings.objective.priorities],
        "base_levels": [float(v) for v in base_levels],
        "candidates": candidates,
        "considered": len(allowed),
        "resolved": resolved,
        "seconds": round(time.perf_counter() - started, 3),
        "method": "local moves and displacements, best re-solved with the case pinned" if time_limit > 0
        else "local moves and displacements",
    }


def _score(problem: Problem, settings: Settings, option: _Option) -> None:
    option.terms = plan_terms(problem, option.plan)
    option.levels = level_values(settings, option.terms)
