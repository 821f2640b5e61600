"""A plan as the model's vector and back: the counts of a concrete plan (case_id ->
municipality), the blocks its counts determine, and the concrete plan of counts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .aggregate import Aggregation
from .columns import isin_text
from .extract import choose_cases, housing_flow
from .model import SPREAD_SEGMENTS, PlacementModel
from .ties import split_class_ties


def assignment_of(agg: Aggregation, plan: pd.DataFrame) -> pd.Series:
    """A plan frame (case_id, municipality_id) as free case_id -> municipality number."""
    plan = plan[isin_text(plan["case_id"], agg.free_cases.index)]
    return pd.Series(pd.Index(agg.municipality_ids).get_indexer(plan["municipality_id"]),
                     index=plan["case_id"].to_numpy(), dtype=int)


def values_of(model: PlacementModel, assignment: pd.Series) -> np.ndarray:
    """A concrete plan (free case_id -> municipality number) as a complete vector of the model."""
    return complete_hint(model, hint_from_plan(model, plan_frame(model.agg, assignment)))


def plan_frame(agg: Aggregation, assignment: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"case_id": assignment.index,
                         "municipality_id": agg.municipality_ids[assignment.to_numpy(dtype=int)]})


def concrete_plan(model: PlacementModel, columns: np.ndarray, values: np.ndarray) -> pd.Series | None:
    """The concrete plan (free case_id -> municipality number) of counts ``values`` over
    ``columns``, or None where its class slots break a service capacity."""
    found, broken = choose_cases(model, complete_hint(model, expand(values, columns, model.n_vars)))
    return None if len(broken) else found


def most_urgent(model: PlacementModel, totals: np.ndarray) -> np.ndarray:
    """A full vector choosing the ``totals[p]`` most urgent cases of every pool p (its w and s
    blocks; the rest zero): what a plan of those totals scores on urgency."""
    free = model.agg.free_cases
    order = free.assign(_key=free.index).sort_values(["urgency", "_key"], ascending=[False, True])
    pool = order["pool"].to_numpy()
    chosen = order[order.groupby("pool").cumcount().to_numpy() < np.rint(totals)[pool]]
    values = np.zeros(model.n_vars)
    add_chosen(model, values, chosen)
    return values


def add_chosen(model: PlacementModel, values: np.ndarray, chosen: pd.DataFrame) -> None:
    """Add chosen free cases (rows of ``free_cases``: pool, urgency, tie) to ``values``: tied
    ones in the s block, the others counted at their pool's urgency level in the w block."""
    free = model.agg.free_cases
    tied = chosen["tie"].to_numpy() >= 0
    s_pos = pd.Index(free.index[model.s_case]).get_indexer(chosen.index[tied])
    values[model.blocks["s"].start + s_pos[s_pos >= 0]] = 1.0
    untied = chosen[~tied]
    w_pos = pd.MultiIndex.from_arrays([model.w_pool, model.w_urgency]).get_indexer(
        pd.MultiIndex.from_arrays([untied["pool"].to_numpy(), untied["urgency"].to_numpy().round(9)]))
    np.add.at(values, model.blocks["w"].start + w_pos[w_pos >= 0], 1.0)


def expand(values: np.ndarray, columns: np.ndarray, n: int) -> np.ndarray:
    """A vector over ``columns`` as a full vector of ``n`` (zero elsewhere)."""
    full = np.zeros(n)
    full[columns] = values
    return full


def complete_hint(model: PlacementModel, values: np.ndarray) -> np.ndarray:
    """Fill the blocks a plan's counts determine (class demand, spread, a feasible housing flow)
    so that a plan found at one level is a complete, feasible start for the next."""
    out = values.copy()
    agg = model.agg
    y = np.rint(values[model.blocks["y"]])
    if model.blocks["d"].stop > model.blocks["d"].start:
        out[model.blocks["d"]] = model.class_demand(y)
        out[model.blocks["x"]] = housing_flow(model, out[model.blocks["d"]])
    if len(model.a_pool_pool):
        out[model.blocks["a"]], out[model.blocks["a_pool"]] = split_class_ties(model, out)
    if model.blocks["z"].stop > model.blocks["z"].start:
        persons = np.bincount(model.y_muni, weights=y * model.units["size"].to_numpy()[model.y_unit],
                              minlength=agg.n_municipalities)
        z = np.zeros(len(model.z_muni))
        left = persons[model.z_muni]
        for q in range(SPREAD_SEGMENTS):
            at = model.z_segment == q
            z[at] = np.minimum(left[at], model.upper[model.blocks["z"]][at])
            left[at] -= z[at]
            if q + 1 < SPREAD_SEGMENTS:
                left[model.z_segment == q + 1] = left[at]
        out[model.blocks["z"]] = z
    return out


def hint_from_plan(model: PlacementModel, plan: pd.DataFrame) -> np.ndarray | None:
    """A previous plan (case_id, municipality_id) as a complete start: its counts, the cases
    it chose (urgency levels and tied cases) and the ties it honoured."""
    agg = model.agg
    free = agg.free_cases
    # A plan from outside (a warm start, a stored plan) may hold arrow text: pandas' isin
    # against the solver's index then took national-30k 0.35 s a call.
    plan = plan[isin_text(plan["case_id"], free.index)]
    hint = np.zeros(model.n_vars)
    if plan.empty:
        return hint
    munis = pd.Index(agg.municipality_ids)
    placed = free.loc[plan["case_id"]]
    pool = placed["pool"].to_numpy()
    muni = munis.get_indexer(plan["municipality_id"])
    n_pools = len(agg.pools)
    unit = np.where(model.fine[muni], pool, n_pools + agg.pools["cls"].to_numpy()[pool])

    def add(block: str, keys: pd.MultiIndex, index: pd.MultiIndex) -> None:
        counts = pd.Series(1, index=keys).groupby(level=list(range(keys.nlevels))).sum()
        pos = index.get_indexer(counts.index)
        ok = pos >= 0
        np.add.at(hint, model.blocks[block].start + pos[ok], counts.to_numpy()[ok])

    add("y", pd.MultiIndex.from_arrays([unit, muni]), pd.MultiIndex.from_arrays([model.y_unit, model.y_muni]))
    add_chosen(model, hint, placed)
    tied = placed["tie"].to_numpy() >= 0
    at_tie = tied & (placed["tie"].to_numpy() == muni)
    add("a", pd.MultiIndex.from_arrays([unit[at_tie], muni[at_tie]]),
        pd.MultiIndex.from_arrays([model.a_unit, model.a_muni]))
    return hint
