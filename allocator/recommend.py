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

Each candidate's plan is scored as :func:`plan_terms` scores it, every objective term of a
concrete plan exactly from the input (pinned cases included; a step-1 plan from the plan without
the case and the rows it changes at the candidate), and its priority levels are
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
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .backend import StopFlag
from .columns import with_python_text
from .errors import ProblemValidationError
from .problem import Problem
from .scoring import level_values, plan_terms, row_terms, spread_cost
from .settings import Settings

log = logging.getLogger(__name__)

#: Levels closer than this are equal when ranking.
TOLERANCE = 1e-6
#: The least time a re-solve is given, and the least left for one to start.
MIN_RESOLVE_SECONDS = 0.2


def _key(levels: Sequence[float]) -> tuple[float, ...]:
    return tuple(round(v / TOLERANCE) * TOLERANCE for v in levels)


# -- state of a plan per municipality ------------------------------------------------------------

class _Needs(NamedTuple):
    """What one case needs of a municipality and a dwelling."""

    size: float
    minors: float
    uses: tuple[tuple[str, float], ...]  # (service, members using it), used ones only
    step_free: bool
    single_adult: bool
    bedrooms: float


class _Free(NamedTuple):
    """A municipality's free dwellings, as arrays; ``unused`` (private ones that no case of the
    plan has) changes with the plan."""

    ids: np.ndarray
    step_free: np.ndarray
    shared: np.ndarray
    bedrooms: np.ndarray
    max_occupants: np.ndarray
    unused: np.ndarray


_NO_DWELLINGS = _Free(*(np.zeros(0, dtype=t) for t in (object, bool, bool, float, float, bool)))


@dataclass
class _Room:
    """What a plan leaves in each municipality: capacities and free dwellings. Plain dicts and
    arrays: a national round has hundreds of candidates, each tried by many small changes."""

    problem: Problem
    plan: pd.DataFrame
    persons: dict[str, float] = field(init=False)
    minors: dict[str, float] = field(init=False)
    services: dict[str, dict[str, float]] = field(init=False)
    shared_load: dict[str, int] = field(init=False, default_factory=dict)
    _free_by: dict[str, _Free] = field(init=False, default_factory=dict)
    _dwelling_at: dict[str, tuple[_Free, int]] = field(init=False, default_factory=dict)  # free dwelling -> row
    _needs: dict[str, _Needs] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        p = self.problem
        cases = p.cases.loc[self.plan["case_id"].to_numpy()]
        by = self.plan["municipality_id"].to_numpy()
        munis = p.municipalities

        def left(capacity: pd.Series, used: pd.Series) -> dict[str, float]:
            return (capacity - used.groupby(by).sum().reindex(munis.index).fillna(0)).to_dict()

        self.persons = left(munis["resolution_persons"].astype(float), cases["size"])
        self.minors = left(munis["resolution_minors"].astype(float), cases["minors"])
        self.services = {s: left(munis[f"capacity_{s}"].astype(float), cases[f"use_{s}"]) for s in p.services}
        if p.housing_modelled:
            for m, g in p.free_dwellings.groupby("municipality_id", sort=False):
                free = self._free_by[m] = _Free(
                    g.index.to_numpy(dtype=object), g["step_free"].to_numpy(dtype=bool),
                    g["shared"].to_numpy(dtype=bool), g["bedrooms"].to_numpy(dtype=float),
                    g["max_occupants"].to_numpy(dtype=float), ~g["shared"].to_numpy(dtype=bool))
                self._dwelling_at.update((d, (free, i)) for i, d in enumerate(free.ids.tolist()))
            for d in self.plan["dwelling_id"].to_numpy().tolist():
                if d:
                    self._use(d, +1)
        # What each case needs, as plain values per case (looked up by position).
        all_cases = p.cases
        self._position = all_cases.index
        self._size, self._minors = all_cases["size"].to_numpy(float), all_cases["minors"].to_numpy(float)
        self._uses = all_cases[[f"use_{s}" for s in p.services]].to_numpy(float) if p.services else None
        self._step_free = all_cases["needs_step_free"].to_numpy(bool)
        self._single, self._bedrooms = all_cases["single_adult"].to_numpy(bool), all_cases["bedrooms"].to_numpy(float)

    def needs(self, case_id: str) -> _Needs:
        needs = self._needs.get(case_id)
        if needs is None:
            i = self._position.get_loc(case_id)
            uses = () if self._uses is None else tuple(
                (s, float(v)) for s, v in zip(self.problem.services, self._uses[i]) if v > 0)
            needs = self._needs[case_id] = _Needs(float(self._size[i]), float(self._minors[i]), uses,
                                                  bool(self._step_free[i]), bool(self._single[i]),
                                                  float(self._bedrooms[i]))
        return needs

    def fits(self, case_id: str, m: str) -> bool:
        c = self.needs(case_id)
        if self.persons[m] < c.size:
            return False
        if c.minors > 0 and self.minors[m] < c.minors:
            return False
        return all(self.services[s][m] >= v for s, v in c.uses)

    def dwelling(self, case_id: str, m: str) -> str | None:
        """The best-fitting free dwelling for the case in ``m`` ("" when housing is not modelled):
        a shared one with room for a single adult (fewest places first), else the unused private
        one with the fewest bedrooms, then places, that fits."""
        if not self.problem.housing_modelled:
            return ""
        c, d = self.needs(case_id), self._free_by.get(m, _NO_DWELLINGS)
        ok = d.step_free if c.step_free else np.ones(len(d.ids), dtype=bool)
        if c.single_adult:
            shared = np.flatnonzero(ok & d.shared)
            load = np.array([self.shared_load.get(i, 0) for i in d.ids[shared].tolist()], dtype=float)
            shared = shared[load < d.max_occupants[shared]]
            if len(shared):
                return str(d.ids[shared[np.argmin(d.max_occupants[shared])]])
        private = np.flatnonzero(ok & d.unused & (d.bedrooms >= c.bedrooms) & (d.max_occupants >= c.size))
        if not len(private):
            return None
        return str(d.ids[private[np.lexsort((d.max_occupants[private], d.bedrooms[private]))[0]]])

    def apply(self, case_id: str, m: str, dwelling: str, sign: int) -> None:
        """Add (``sign`` +1) or take out (-1) one placed case."""
        c = self.needs(case_id)
        self.persons[m] -= sign * c.size
        self.minors[m] -= sign * c.minors
        for s, v in c.uses:
            self.services[s][m] -= sign * v
        if dwelling:
            self._use(dwelling, sign)

    def _use(self, dwelling: str, sign: int) -> None:
        """A case moves into (``sign`` +1) or out of (-1) a dwelling (one that is not free is
        never offered, so it is not followed)."""
        at = self._dwelling_at.get(dwelling)
        if at is None:
            return
        free, i = at
        if free.shared[i]:
            self.shared_load[dwelling] = self.shared_load.get(dwelling, 0) + sign
        else:
            free.unused[i] = sign < 0


# -- candidates -----------------------------------------------------------------------------------

def allowed_municipalities(problem: Problem, case_id: str) -> list[str]:
    """Municipalities where the case may go at all: rules against what pins of other cases leave,
    a free dwelling that fits, and no exclusion."""
    others = problem.pins[problem.pins["case_id"] != case_id]
    room = _Room(problem, others.assign(dwelling_id=others["dwelling_id"].fillna("")))
    excluded = set(problem.exclusions.loc[problem.exclusions["case_id"] == case_id, "municipality_id"])
    out = []
    for m in problem.municipalities.index:
        if m in excluded or not room.fits(case_id, m):
            continue
        if room.dwelling(case_id, m) is None:
            continue
        out.append(str(m))
    return out


@dataclass
class _Option:
    """A plan with the case at ``municipality_id``: ``base`` without the cases ``gone`` (case and
    dwelling, at that municipality) and with the rows ``added`` there (the whole plan of a
    re-solve is its ``base``)."""

    municipality_id: str
    method: str
    dwelling_id: str
    base: pd.DataFrame
    gone: tuple[tuple[str, str], ...] = ()
    added: tuple[dict[str, Any], ...] = ()
    levels: list[float] = field(default_factory=list)
    terms: dict[str, float] = field(default_factory=dict)
    proven: bool = False

    @cached_property
    def plan(self) -> pd.DataFrame:
        """The whole plan (made only for the few options that need it: a national round's plan
        has tens of thousands of rows, and every allowed municipality is an option)."""
        if not self.gone and not self.added:
            return self.base
        kept = self.base[~self.base["case_id"].isin([c for c, _ in self.gone])] if self.gone else self.base
        return pd.concat([kept, pd.DataFrame(list(self.added))], ignore_index=True)


def _local_option(problem: Problem, rest: pd.DataFrame, here: pd.DataFrame, room: _Room, case_id: str,
                  m: str) -> _Option | None:
    """Put the case in ``m`` with what the plan leaves there, displacing less urgent cases if needed.

    ``rest`` is the plan without the case, ``here`` its unpinned rows at ``m`` and ``room`` what
    it leaves; ``room`` is changed while trying and restored before returning.
    """
    changes: list[tuple[str, str, str, int]] = []

    def apply(case: str, muni: str, dwelling: str, sign: int) -> None:
        room.apply(case, muni, dwelling, sign)
        changes.append((case, muni, dwelling, sign))

    try:
        dwelling = room.dwelling(case_id, m) if room.fits(case_id, m) else None
        removed: list[tuple[str, str]] = []
        method = "move"
        if dwelling is None:
            method = "displace"
            urgency = problem.cases.loc[here["case_id"].to_numpy(), "urgency"].to_numpy()
            ids, dwellings = here["case_id"].to_numpy(), here["dwelling_id"].to_numpy()
            for idx in np.argsort(urgency, kind="stable").tolist():
                apply(ids[idx], m, dwellings[idx], -1)
                removed.append((ids[idx], dwellings[idx]))
                if room.fits(case_id, m):
                    dwelling = room.dwelling(case_id, m)
                    if dwelling is not None:
                        break
            if dwelling is None:
                return None
        apply(case_id, m, dwelling, +1)
        added = [{"case_id": case_id, "municipality_id": m, "dwelling_id": dwelling, "pinned": False}]
        for other, _ in reversed(removed):  # most urgent first: whoever still fits comes back
            if room.fits(other, m):
                d = room.dwelling(other, m)
                if d is not None:
                    apply(other, m, d, +1)
                    added.append({"case_id": other, "municipality_id": m, "dwelling_id": d, "pinned": False})
        return _Option(m, method, dwelling, rest, tuple(removed), tuple(added))
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
        result = solve(pinned, settings.with_overrides(solver__time_limit=time_limit),
                       stop=stop, warm_start=warm[["case_id", "municipality_id"]])
    except RuntimeError as exc:  # the pins cannot all be housed
        log.info("case %s in %s: %s", case_id, m, exc)
        return None
    row = result.plan[result.plan["case_id"] == case_id]
    dwelling = str(row["dwelling_id"].iloc[0]) if len(row) else ""
    return _Option(m, "resolve", dwelling, result.plan, proven=result.status == "optimal")


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
    scorer = _Scorer(problem, settings, rest)
    unpinned = rest[~rest["pinned"]]
    at = dict(list(unpinned.groupby("municipality_id", sort=False)))
    options: list[_Option] = []
    for m in allowed:
        option = _local_option(problem, rest, at.get(m, unpinned.iloc[:0]), room, case_id, m)
        if option is not None:
            options.append(option)
    scorer.score_local(options)
    options.sort(key=lambda o: _key(o.levels), reverse=True)

    resolved = 0
    if time_limit > 0 and options:
        chosen = options[: limit + resolve_extra]
        deadline = started + time_limit
        longest = MIN_RESOLVE_SECONDS  # the longest a re-solve has taken so far
        for i, option in enumerate(chosen):
            remaining = deadline - time.perf_counter()
            # A re-solve may take longer than it is given (national-30k: 4.1 s for 1.1 s; the
            # level's first LP alone takes 2-3 s), so none starts that would not end in time.
            if remaining < longest or (stop is not None and stop.stopped):
                break
            began = time.perf_counter()
            better = _resolve_option(problem, settings, case_id, option.municipality_id, option.plan,
                                     max(remaining / (len(chosen) - i), MIN_RESOLVE_SECONDS), stop)
            longest = max(longest, time.perf_counter() - began)
            resolved += 1
            if better is None:
                continue
            scorer.score(better)
            if _key(better.levels) > _key(option.levels):  # ties keep the smaller change
                options[options.index(option)] = better
        options.sort(key=lambda o: _key(o.levels), reverse=True)

    names = problem.municipalities["name"]
    base_at = _where(base)
    candidates = []
    for option in options[:limit]:
        now_at = _where(option.plan)
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


def _where(plan: pd.DataFrame) -> dict[str, str]:
    """case_id -> municipality_id (from plain lists: iterating pandas' string columns took
    national-30k half a second for six plans)."""
    return dict(zip(plan["case_id"].to_numpy().tolist(), plan["municipality_id"].to_numpy().tolist()))


class _Scorer:
    """Every objective term of an option's plan, exactly as :func:`plan_terms` of the whole plan,
    but for the local options from the rows that change, all at once: scoring national-30k's
    26,000 placements again for each of its 317 candidates took 9 s."""

    def __init__(self, problem: Problem, settings: Settings, rest: pd.DataFrame):
        self.problem, self.settings, self.rest = problem, settings, rest
        self.rest_terms = plan_terms(problem, rest)
        self.size = problem.cases["size"]
        self.persons = self.size.reindex(rest["case_id"].to_numpy()).groupby(rest["municipality_id"].to_numpy()).sum()

    def score(self, option: _Option) -> None:
        """A re-solve's option, from its whole plan."""
        option.terms = plan_terms(self.problem, option.plan)
        option.levels = level_values(self.settings, option.terms)

    def score_local(self, options: list[_Option]) -> None:
        """Local options (plans made from ``rest``), which change it at their municipality alone:
        whoever leaves or comes back is there."""
        if not options:
            return
        owner, ids, dwellings, sign = [], [], [], []
        for k, option in enumerate(options):
            for case_id, dwelling, s in [(c, d, -1.0) for c, d in option.gone] + \
                    [(r["case_id"], r["dwelling_id"], 1.0) for r in option.added]:
                owner.append(k)
                ids.append(case_id)
                dwellings.append(dwelling)
                sign.append(s)
        munis = [o.municipality_id for o in options]
        rows = row_terms(self.problem, ids, [munis[k] for k in owner], dwellings)
        where, weights = np.array(owner, dtype=int), np.array(sign)

        def per_option(values: np.ndarray) -> np.ndarray:
            return np.bincount(where, weights=weights * values, minlength=len(options))

        before = self.persons.reindex(munis).fillna(0.0).to_numpy(dtype=float)
        after = before + per_option(self.size.reindex(ids).to_numpy(dtype=float))
        resolution = self.problem.municipalities["resolution_persons"].reindex(munis).to_numpy(dtype=float)
        spread = self.rest_terms["spread"] + spread_cost(resolution, before) - spread_cost(resolution, after)
        change = {t: per_option(v) for t, v in rows.items()}
        for k, option in enumerate(options):
            option.terms = {t: self.rest_terms[t] + float(change[t][k]) for t in change}
            option.terms["spread"] = float(spread[k])
            option.levels = level_values(self.settings, option.terms)
