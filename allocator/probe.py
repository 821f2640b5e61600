"""The probe: the first level's LP over the model with the fewest service rows, which shows
where services would come near their capacity (modelled before any search), and whose LP the
first level then carries."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from .aggregate import Aggregation
from .backend import MathOptBackend, Outcome, StopFlag
from .carry import carry_lp
from .extract import chosen_cases
from .level import LEVEL_LP_SHARE
from .model import LinearProgram, PlacementModel
from .plans import expand
from .settings import Settings

log = logging.getLogger(__name__)


#: A service is modelled from the start where an average mix filling the resolution would use
#: more than 1/BINDING_MARGIN of its capacity.
BINDING_MARGIN = 1.0
#: Share of the time limit for the probe's LP. It is the round's first LP, and without an LP
#: level 1 has only the greedy plan: on a machine where national-30k's probe LP takes 2.5-3.2 s,
#: 0.3 of a 10 s limit failed it, level 1's own LP failed as well, and the proposal placed
#: 19,212 cases instead of 26,424.
PROBE_SHARE = 0.6


def first_lp(
    backend: MathOptBackend,
    probed: tuple[PlacementModel, Outcome] | None,
    model: PlacementModel,
    program: LinearProgram,
    columns: np.ndarray,
    objective: np.ndarray,
    settings: Settings,
    *,
    alone: bool,
    budget: float,
) -> Outcome | None:
    """The first level's LP as the probe left it: solved on this model already (the same LP),
    or carried into it from the probe's model (national-2k: 0.2-0.3 s saved, 2 s on
    national-30k); None if the level must solve its own.

    The carry is used with urgency ``alone``. With levels to follow, only when the level's own
    LP is not expected to finish in its share of the ``budget``: the levels below start from
    level 1's plan, and the carried LP's vertex leads to other plans of the same urgency. The
    ties level no longer minds (it places the plan's cases first: national-5k 320 of 323 ties
    with the carry, 321 without), but ties with scores do: national-5k-scores, level 2 at 2,429
    of at most 2,609 with it, 2,573 without (the packing from its LP fails). Without an LP,
    though, level 1 has only the greedy plan."""
    if probed is None:
        return None
    coarse, lp = probed
    if coarse is model:  # the same LP
        return replace(lp, values=lp.values[columns], detail="the probe's LP, on this model")
    if not alone:
        expected = backend.expected_lp_seconds(program)
        if expected is None or expected <= budget * LEVEL_LP_SHARE:
            return None
        log.info("  level 1's own LP needs about %.1fs of %.1fs left: the probe's LP carried", expected, budget)
    # At least a second, even past the limit: without this LP, level 1 has only the greedy plan
    # (national-5k, urgency alone, in 1 s: 3,226 cases placed instead of 4,434).
    return carry_lp(backend, coarse, lp, model, program, columns, objective,
                    max(budget * LEVEL_LP_SHARE, 1.0), settings.solver.relative_gap)


@dataclass(frozen=True)
class Probe:
    """What the first level's LP over the model with the fewest service rows showed."""

    more: np.ndarray  # municipalities where it would come near a service capacity
    lp: Outcome | None  # that LP, when solved to optimality, with ``values`` a full vector


def probe_services(
    model: PlacementModel, backend: MathOptBackend, terms: list[str], settings: Settings,
    stop: StopFlag | None = None,
) -> Probe:
    """Municipalities without service rows where the first level's LP would fill a service's
    capacity, if its class slots held cases of the average
    service use of the cases the LP chooses from each class. Modelling them before any search
    saves most re-solves."""
    agg = model.agg
    program, columns = model.program(terms)
    objective = sum(settings.objective.weight(t) * model.objective_terms()[t] for t in terms)[columns]
    lp = backend.solve(program, objective, time_limit=max(settings.solver.time_limit * PROBE_SHARE, 1.0),
                       relative_gap=0.0, relax=True, stop=stop)
    probed = np.zeros(agg.n_municipalities, dtype=bool)
    if lp.values is None:
        return Probe(probed, None)
    values = expand(lp.values, columns, model.n_vars)
    solved = replace(lp, values=values) if lp.status == "optimal" else None
    chosen = chosen_cases(model, values)
    if chosen.empty:
        return Probe(probed, solved)
    problem = agg.problem
    y = values[model.blocks["y"]]
    coarse = model.y_unit >= len(agg.pools)
    cls = model.units["cls"].to_numpy()[model.y_unit[coarse]]
    for s, service in enumerate(problem.services):
        use = problem.cases.loc[chosen.index, f"use_{service}"].groupby(chosen["cls"].to_numpy()).mean()
        per_case = use.reindex(range(len(agg.classes))).fillna(0).to_numpy()[cls]
        expected = np.bincount(model.y_muni[coarse], weights=y[coarse] * per_case, minlength=agg.n_municipalities)
        probed |= (expected > 0) & (expected >= agg.services_left[:, s]) & ~model.fine
    return Probe(probed, solved)


def likely_binding_services(agg: Aggregation) -> np.ndarray:
    """Municipalities whose service capacities are modelled from the start: those where an
    average mix of cases filling the resolution would come near a capacity.
    Elsewhere classes are counted; a plan that breaks a capacity there makes the municipality
    modelled and the round solved again, so the answer is exact either way."""
    problem = agg.problem
    fine = np.zeros(agg.n_municipalities, dtype=bool)
    cases = problem.cases.loc[agg.free_cases.index]
    persons = max(int(cases["size"].sum()), 1)
    for s, service in enumerate(problem.services):
        share = cases[f"use_{service}"].sum() / persons
        fine |= agg.services_left[:, s] < BINDING_MARGIN * share * agg.persons_left
    return fine
