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


def case_terms(problem: Problem, case_id: str, municipality_id: str, dwelling_id: str = "") -> dict[str, float]:
    """One placed case's own share of the additive terms (spread is per municipality)."""
    case = problem.cases.loc[case_id]
    score = 0.0
    if problem.has_scores:
        score = float(problem.score_matrix[problem.cases.index.get_loc(case_id),
                                           problem.municipalities.index.get_loc(municipality_id)])
    waste = 0.0
    if problem.housing_modelled and dwelling_id:
        d = problem.dwellings.loc[dwelling_id]
        waste = 0.0 if bool(d["shared"]) else float(d["bedrooms"] - case["bedrooms"])
    return {
        "urgency": float(case["urgency"]),
        "ties": float(case["tie_municipality_id"] == municipality_id),
        "scores": score,
        "housing_fit": -waste,
    }


def plan_terms(problem: Problem, plan: pd.DataFrame) -> dict[str, float]:
    """Every objective term of a concrete plan (``case_id``, ``municipality_id``, ``dwelling_id``).

    Unlike ``Result.term_values`` (the model's values, over the cases not pinned) this counts
    every placed case, pinned ones too, so plans with different pins compare.
    """
    cases = problem.cases.loc[plan["case_id"].to_numpy()]
    munis = plan["municipality_id"].to_numpy()
    terms = {"urgency": float(cases["urgency"].sum()),
             "ties": float((cases["tie_municipality_id"].to_numpy() == munis).sum()),
             "scores": 0.0, "housing_fit": 0.0}
    if problem.has_scores and len(plan):
        terms["scores"] = float(problem.score_matrix[problem.cases.index.get_indexer(plan["case_id"]),
                                                     problem.municipalities.index.get_indexer(munis)].sum())
    if problem.housing_modelled and len(plan):
        dwelling = plan["dwelling_id"].to_numpy()
        housed = dwelling != ""
        d = problem.dwellings.loc[dwelling[housed]]
        waste = d["bedrooms"].to_numpy(float) - cases["bedrooms"].to_numpy(float)[housed]
        terms["housing_fit"] = -float(np.where(d["shared"].to_numpy(bool), 0.0, waste).sum())
    persons = cases["size"].groupby(munis).sum()
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
