"""Why a case is unplaced, and what a plan does to each municipality.

The reasons are computed from the input and the final plan, rule by rule, in the order a
coordinator checks them: resolution, unaccompanied minors, services, housing, exclusions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .aggregate import Aggregation, dwelling_type_of
from .problem import Problem

def _rule_masks(
    agg: Aggregation,
    persons_left: np.ndarray,
    minors_left: np.ndarray,
    services_left: np.ndarray,
    housing_left: np.ndarray,
) -> list[tuple[str, np.ndarray]]:
    """Pools x municipalities: does each rule allow one more case of the pool there?"""
    pools = agg.pools
    size = pools["size"].to_numpy()[:, None]
    minors = pools["minors"].to_numpy()[:, None]
    masks = [
        ("resolution", persons_left[None, :] >= size),
        ("minors", (minors == 0) | (minors_left[None, :] >= minors)),
    ]
    for s, service in enumerate(agg.problem.services):
        use = pools[f"use_{service}"].to_numpy()[:, None]
        masks.append((f"capacity_{service}", (use == 0) | (services_left[None, :, s] >= use)))
    if agg.problem.housing_modelled:
        masks.append(("housing", housing_left[pools["requirement"].to_numpy()] > 0))
    allowed = np.ones((len(pools), agg.n_municipalities), dtype=bool)
    for p, set_id in enumerate(pools["exclusion_set"].to_numpy()):
        if set_id >= 0:
            allowed[p, agg.exclusion_sets[set_id]] = False
    masks.append(("exclusions", allowed))
    return masks


def _never_possible(pool: pd.Series, rule: str, services: Sequence[str]) -> str:
    size = int(pool["size"])
    if rule == "resolution":
        return f"no municipality has {size} persons of resolution left"
    if rule == "minors":
        return (f"no municipality with {size} persons of resolution left takes "
                f"{int(pool['minors'])} unaccompanied minor(s)")
    if rule.startswith("capacity_"):
        service = rule[len("capacity_"):]
        return (f"no municipality with room for it has {rule} left for "
                f"{int(pool[f'use_{service}'])} member(s)")
    if rule == "housing":
        step = ", step-free" if pool["needs_step_free"] else ""
        return (f"no free dwelling with {int(pool['bedrooms'])} bedrooms for {size} persons{step} "
                f"in any municipality with {size} persons of resolution left")
    return "excluded from every municipality that could take it"


def unplaced_reasons(problem: Problem, agg: Aggregation, plan: pd.DataFrame, levels: Sequence) -> pd.DataFrame:
    """``case_id``, ``rule``, ``reason`` for every case the plan leaves unplaced."""
    free = agg.free_cases
    unplaced = free.index.difference(plan["case_id"])
    columns = ["case_id", "rule", "reason"]
    if unplaced.empty:
        return pd.DataFrame(columns=columns)

    # Before the plan: what each pool could ever get.
    supply0 = agg.compatible_supply
    before = _rule_masks(agg, agg.persons_left, agg.minors_left, agg.services_left, supply0)
    # After the plan: what is left.
    cases = problem.cases.loc[plan["case_id"]]
    m_of = pd.Index(agg.municipality_ids).get_indexer(plan["municipality_id"])
    n_m = agg.n_municipalities
    persons_after = problem.municipalities["resolution_persons"].to_numpy(float) - np.bincount(
        m_of, weights=cases["size"].to_numpy(), minlength=n_m)
    minors_after = problem.municipalities["resolution_minors"].to_numpy(float) - np.bincount(
        m_of, weights=cases["minors"].to_numpy(), minlength=n_m)
    services_after = np.zeros_like(agg.services_left)
    for s, service in enumerate(problem.services):
        services_after[:, s] = problem.municipalities[f"capacity_{service}"].to_numpy(float) - np.bincount(
            m_of, weights=cases[f"use_{service}"].to_numpy(), minlength=n_m)
    housing_after = supply0
    if problem.housing_modelled and len(agg.dwelling_types):
        types = dwelling_type_of(problem)
        used = plan.loc[plan["dwelling_id"] != "", "dwelling_id"]
        used = used[~plan.loc[used.index, "pinned"]]  # pinned dwellings were never in the supply
        used_types = np.bincount(types.reindex(used).dropna().astype(int).to_numpy(),
                                 minlength=len(agg.dwelling_types))
        left = agg.dwelling_types["supply"].to_numpy() - used_types
        owner = agg.dwelling_types["municipality"].to_numpy()
        weights = agg.compatible * left[None, :]
        housing_after = np.stack([np.bincount(owner, weights=w, minlength=n_m) for w in weights])
    after = _rule_masks(agg, persons_after, minors_after, services_after, housing_after)

    proven = all(getattr(level, "status", "") == "optimal" for level in levels)
    reasons: dict[int, tuple[str, str]] = {}
    for p in np.unique(free.loc[unplaced, "pool"].to_numpy()):
        pool = agg.pools.iloc[p]
        ok = np.ones(n_m, dtype=bool)
        rule_empty = None
        for rule, mask in before:
            ok &= mask[p]
            if not ok.any():
                rule_empty = rule
                break
        if rule_empty is not None:
            reasons[p] = (rule_empty, _never_possible(pool, rule_empty, problem.services))
            continue
        possible = ok
        blocked: dict[str, int] = {}
        still_open = possible.copy()
        for rule, mask in after:
            newly = still_open & ~mask[p]
            if newly.any():
                blocked[rule] = int(newly.sum())
            still_open &= mask[p]
        if still_open.any():
            why = ("placing it gains the objective nothing, or costs a higher-priority level" if proven
                   else "not reached within the time limit; the plan is not proven optimal")
            reasons[p] = ("objective", f"room remains in {int(still_open.sum())} municipalities; {why}")
            continue
        main = max(blocked, key=blocked.get)
        parts = ", ".join(f"{_label(rule)} in {n}" for rule, n in blocked.items())
        reasons[p] = (main, f"the {int(possible.sum())} municipalities that could take it are full "
                            f"({parts}); cases with higher priority were placed first")
    pool_of = free.loc[unplaced, "pool"].to_numpy()
    return pd.DataFrame(
        {
            "case_id": unplaced,
            "rule": [reasons[p][0] for p in pool_of],
            "reason": [reasons[p][1] for p in pool_of],
        },
        columns=columns,
    ).sort_values("case_id", ignore_index=True)


def _label(rule: str) -> str:
    return {
        "resolution": "resolution used up",
        "minors": "minors' resolution used up",
        "housing": "no fitting dwelling left",
        "exclusions": "excluded",
    }.get(rule, f"{rule} used up")


def municipality_table(problem: Problem, plan: pd.DataFrame) -> pd.DataFrame:
    """Placed persons and minors against resolution, dwellings and services used, per municipality."""
    munis = problem.municipalities
    cases = problem.cases.loc[plan["case_id"]]
    by = plan["municipality_id"].to_numpy()
    placed = cases.assign(m=by).groupby("m")
    out = pd.DataFrame(index=munis.index)
    out["name"] = munis["name"]
    out["resolution_persons"] = munis["resolution_persons"]
    out["placed_persons"] = placed["size"].sum().reindex(munis.index).fillna(0).astype(int)
    out["resolution_minors"] = munis["resolution_minors"]
    out["placed_minors"] = placed["minors"].sum().reindex(munis.index).fillna(0).astype(int)
    out["cases_placed"] = placed.size().reindex(munis.index).fillna(0).astype(int)
    if problem.housing_modelled:
        with_dwelling = plan[plan["dwelling_id"] != ""]
        used = with_dwelling.groupby("municipality_id")["dwelling_id"].nunique()
        out["dwellings_used"] = used.reindex(munis.index).fillna(0).astype(int)
        free = problem.free_dwellings
        out["dwellings_free"] = free.groupby("municipality_id").size().reindex(munis.index).fillna(0).astype(int)
    for service in problem.services:
        out[f"capacity_{service}"] = munis[f"capacity_{service}"]
        out[f"used_{service}"] = placed[f"use_{service}"].sum().reindex(munis.index).fillna(0).astype(int)
    resolution = out["resolution_persons"].replace(0, np.nan)
    out["share_of_resolution"] = (out["placed_persons"] / resolution).round(4).fillna(0.0)
    return out.reset_index()
