"""From the model's counts to a concrete plan: which case, which municipality, which dwelling.

The model decides how many cases of each pool go where; here the most urgent cases of each pool
are chosen, tied cases are sent to their tie municipality where the model counted them, and the
concrete dwellings are chosen by a min-cost flow that wastes the fewest bedrooms.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
from ortools.graph.python import min_cost_flow

from .aggregate import REQUIREMENT_COLUMNS, dwelling_type_of
from .model import PlacementModel


def choose_cases(model: PlacementModel, values: np.ndarray) -> pd.Series:
    """Municipality number of every placed free case (case_id -> municipality number)."""
    agg = model.agg
    free = agg.free_cases
    y = np.rint(values[model.blocks["y"]]).astype(int)
    s = np.rint(values[model.blocks["s"]]).astype(int)
    a = np.rint(values[model.blocks["a"]]).astype(int)

    slots: dict[int, dict[int, int]] = defaultdict(dict)  # pool -> municipality -> free slots
    for p, m, n in zip(model.y_pool[y > 0], model.y_muni[y > 0], y[y > 0]):
        slots[int(p)][int(m)] = int(n)
    placed_total = {p: sum(d.values()) for p, d in slots.items()}

    tied_chosen = free.index[model.s_case[s > 0]]
    chosen_tied = free.loc[tied_chosen]
    # Most urgent first; then the longest wait, then id, so the choice is deterministic.
    order = free.assign(_key=free.index).sort_values(["urgency", "_key"], ascending=[False, True])
    untied = order[order["tie"] < 0]

    assignment: dict[str, int] = {}
    for p, total in placed_total.items():
        tied_here = chosen_tied[chosen_tied["pool"] == p]
        n_untied = total - len(tied_here)
        chosen = list(untied.index[untied["pool"].to_numpy() == p][: max(n_untied, 0)])
        # Tied cases counted at their tie municipality go there first.
        pool_slots = slots[p]
        remaining_tied = []
        counted = {int(m): int(n) for pp, m, n in zip(model.a_pool, model.a_muni, a) if pp == p and n > 0}
        for case_id, tie in zip(tied_here.index, tied_here["tie"].to_numpy()):
            tie = int(tie)
            if counted.get(tie, 0) > 0 and pool_slots.get(tie, 0) > 0:
                assignment[case_id] = tie
                counted[tie] -= 1
                pool_slots[tie] -= 1
            else:
                remaining_tied.append((case_id, tie))
        # Any other tied case still gets its tie municipality if a slot is left there.
        rest = []
        for case_id, tie in remaining_tied:
            if pool_slots.get(tie, 0) > 0:
                assignment[case_id] = tie
                pool_slots[tie] -= 1
            else:
                rest.append(case_id)
        rest += chosen
        munis = [m for m in sorted(pool_slots) for _ in range(pool_slots[m])]
        assignment.update(zip(rest, munis))
    return pd.Series(assignment, dtype=int)


def housing_flow(model: PlacementModel, demand: np.ndarray) -> np.ndarray:
    """A feasible housing flow ``x`` (per x column) for class demands, wasting few bedrooms."""
    agg = model.agg
    x = np.zeros(len(model.x_type))
    if not len(x):
        return x
    types = agg.dwelling_types
    cost = np.where(types["shared"].to_numpy(), 1, types["bedrooms"].to_numpy())[model.x_type]
    flow = min_cost_flow.SimpleMinCostFlow()
    n_class = len(demand)
    source, sink = n_class, n_class + 1
    type_node = n_class + 2 + model.x_type
    arcs = flow.add_arcs_with_capacity_and_unit_cost(
        model.x_class, type_node, np.full(len(x), 10**9, dtype=np.int64), cost.astype(np.int64))
    need = np.rint(demand).astype(np.int64)
    flow.add_arcs_with_capacity_and_unit_cost(np.full(n_class, source), np.arange(n_class), need,
                                              np.zeros(n_class, dtype=np.int64))
    used = np.unique(model.x_type)
    supply = types["supply"].to_numpy().astype(np.int64)[used]
    flow.add_arcs_with_capacity_and_unit_cost(n_class + 2 + used, np.full(len(used), sink), supply,
                                              np.zeros(len(used), dtype=np.int64))
    flow.set_node_supply(source, int(need.sum()))
    flow.set_node_supply(sink, -int(need.sum()))
    if flow.solve() != flow.OPTIMAL:
        return x  # not housable: leave the hint to the solver
    return flow.flows(arcs).astype(float)


def choose_dwellings(model: PlacementModel, placed: pd.DataFrame) -> pd.Series:
    """Dwelling of every placed case (case_id -> dwelling_id), wasting the fewest bedrooms.

    ``placed`` holds ``municipality`` numbers (free and pinned cases) and ``dwelling_id`` for
    pins that name one. The flow is always feasible: the model's housing rows guarantee it.
    """
    agg = model.agg
    problem = agg.problem
    if not problem.housing_modelled:
        return pd.Series(dtype=object)
    result = placed["dwelling_id"].where(placed["dwelling_id"] != "", None).dropna()
    todo = placed[placed["dwelling_id"] == ""]
    if todo.empty:
        return result
    req_index = pd.MultiIndex.from_frame(agg.requirements)
    cases = problem.cases.loc[todo.index]
    req = req_index.get_indexer(pd.MultiIndex.from_frame(cases[REQUIREMENT_COLUMNS]))
    demand = pd.DataFrame({"m": todo["municipality"].to_numpy(), "r": req}).value_counts()

    types = agg.dwelling_types
    compatible = agg.compatible
    t_muni = types["municipality"].to_numpy()
    waste = types["bedrooms"].to_numpy()[None, :] - agg.requirements["bedrooms"].to_numpy()[:, None]
    waste = np.where(types["shared"].to_numpy()[None, :], 0, waste)

    flow = min_cost_flow.SimpleMinCostFlow()
    n_demand = len(demand)
    source, sink = 0, 1
    demand_node = {key: 2 + i for i, key in enumerate(demand.index)}
    type_node0 = 2 + n_demand
    total = int(demand.sum())
    for (m, r), n in demand.items():
        flow.add_arc_with_capacity_and_unit_cost(source, demand_node[(m, r)], int(n), 0)
        for t in np.flatnonzero(compatible[r] & (t_muni == m)):
            flow.add_arc_with_capacity_and_unit_cost(demand_node[(m, r)], type_node0 + int(t), int(n), int(waste[r, t]))
    for t, supply in enumerate(types["supply"].to_numpy()):
        if supply > 0:
            flow.add_arc_with_capacity_and_unit_cost(type_node0 + t, sink, int(supply), 0)
    flow.set_node_supply(source, total)
    flow.set_node_supply(sink, -total)
    status = flow.solve()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"no housing for the chosen cases (min-cost flow status {status})")

    # Units of each (m, r) going to each type.
    routed: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    node_key = {v: k for k, v in demand_node.items()}
    for arc in range(flow.num_arcs()):
        tail, head, used = flow.tail(arc), flow.head(arc), flow.flow(arc)
        if used > 0 and tail in node_key and head >= type_node0:
            routed[node_key[tail]].append((head - type_node0, used))

    # Concrete dwellings (or shared places) of each type, pinned ones excluded.
    type_of = dwelling_type_of(problem)
    free = problem.free_dwellings
    pinned_use = problem.pins.loc[problem.pins["dwelling_id"] != "", "dwelling_id"].value_counts()
    places: dict[int, list[str]] = defaultdict(list)
    for dwelling_id, t in type_of.sort_index().items():
        row = free.loc[dwelling_id]
        n = (int(row["max_occupants"]) if row["shared"] else 1) - int(pinned_use.get(dwelling_id, 0))
        places[int(t)].extend([dwelling_id] * max(n, 0))

    todo_key = pd.DataFrame({"m": todo["municipality"].to_numpy(), "r": req}, index=todo.index)
    assigned = {}
    for (m, r), group in todo_key.groupby(["m", "r"], sort=True):
        queue = [t for t, used in routed[(int(m), int(r))] for _ in range(used)]
        for case_id, t in zip(sorted(group.index), queue):
            assigned[case_id] = places[t].pop(0)
    return pd.concat([result, pd.Series(assigned, dtype=object)])
