"""Scoring a concrete plan from the input alone: every objective term, pinned cases included.

The model scores counts; this scores a plan (``case_id``, ``municipality_id``, ``dwelling_id``)
exactly as the objective is defined, so results, explanations and recommendations report what
the plan really achieves and plans with different pins compare.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .model import spread_cost  # noqa: F401 - part of scoring's interface
from .problem import Problem
from .settings import Settings


def row_terms(problem: Problem, case_ids, municipality_ids, dwelling_ids) -> dict[str, np.ndarray]:
    """Each placed row's share of the additive terms (spread is per municipality), for rows of
    case, municipality and dwelling ("" for none)."""
    cases = problem.cases
    pos = cases.index.get_indexer(case_ids)
    if (pos < 0).any():
        raise KeyError(str(np.asarray(case_ids, dtype=object)[pos < 0][0]))
    munis = np.asarray(municipality_ids, dtype=object)
    n = len(pos)
    terms = {"urgency": cases["urgency"].iloc[pos].to_numpy(dtype=float),
             "ties": (cases["tie_municipality_id"].iloc[pos].to_numpy(dtype=object) == munis).astype(float),
             "scores": np.zeros(n), "housing_fit": np.zeros(n)}
    if problem.has_scores and n:
        where = problem.municipalities.index.get_indexer(munis)
        if (where < 0).any():
            raise KeyError(str(munis[where < 0][0]))
        terms["scores"] = problem.score_matrix[pos, where].astype(float)
    if problem.housing_modelled and n:
        dwelling = np.asarray(dwelling_ids, dtype=object)
        housed = dwelling != ""
        d = problem.dwellings.index.get_indexer(dwelling[housed])
        if (d < 0).any():
            raise KeyError(str(dwelling[housed][d < 0][0]))
        waste = (problem.dwellings["bedrooms"].to_numpy(float)[d]
                 - cases["bedrooms"].iloc[pos[housed]].to_numpy(float))
        terms["housing_fit"][housed] = -np.where(problem.dwellings["shared"].to_numpy(bool)[d], 0.0, waste)
    return terms


def case_terms(problem: Problem, case_id: str, municipality_id: str, dwelling_id: str = "") -> dict[str, float]:
    """One placed case's own share of the additive terms (spread is per municipality)."""
    return {t: float(v[0]) for t, v in row_terms(problem, [case_id], [municipality_id], [dwelling_id]).items()}


def plan_terms(problem: Problem, plan: pd.DataFrame) -> dict[str, float]:
    """Every objective term of a concrete plan (``case_id``, ``municipality_id``, ``dwelling_id``).

    Unlike ``Result.term_values`` (the model's values, over the cases not pinned) this counts
    every placed case, pinned ones too, so plans with different pins compare.
    """
    munis = plan["municipality_id"].to_numpy()
    rows = row_terms(problem, plan["case_id"].to_numpy(), munis, plan["dwelling_id"].to_numpy())
    terms = {t: float(v.sum()) for t, v in rows.items()}
    persons = problem.cases["size"].reindex(plan["case_id"].to_numpy()).groupby(munis).sum()
    resolution = problem.municipalities["resolution_persons"].reindex(persons.index).to_numpy(float)
    terms["spread"] = -float(np.sum(spread_cost(resolution, persons.to_numpy(float))))
    return terms


def level_values(settings: Settings, terms: dict[str, float]) -> list[float]:
    """The objective of each priority level: its terms summed with their weights."""
    return [sum(settings.objective.weight(t) * terms.get(t, 0.0) for t in level)
            for level in settings.objective.priorities]


def pinned_offsets(problem: Problem) -> dict[str, float]:
    """What pinned cases add to each term that the model (which counts free cases) leaves out.

    Pinned persons fill the first quarters of a resolution, and a pinned case without a pinned
    dwelling is housed through the model's flow, which prices the dwelling's bedrooms but not
    the bedrooms the case needs.
    """
    pins = problem.pins
    if pins.empty:
        return {}
    frame = pins.assign(dwelling_id=pins["dwelling_id"].where(pins["dwelling_id"] != "", ""))
    offsets = plan_terms(problem, frame)
    if problem.housing_modelled:
        unhoused = frame["dwelling_id"] == ""
        offsets["housing_fit"] += float(problem.cases.loc[frame.loc[unhoused, "case_id"], "bedrooms"].sum())
    return offsets
