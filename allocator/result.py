"""The result of a round: the plan, why each unplaced case is unplaced, KPIs, and provenance."""

from __future__ import annotations

import datetime as dt
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .backend import highs_mip_options, relative_gap
from .problem import Problem
from .settings import Settings

#: Where a level's bound comes from (``LevelResult.bound_from``): a short label and what it is.
BOUND_SOURCES = {
    "lp_relaxation": ("LP", "the level's LP relaxation (of the round, or of a coarser model of it)"),
    "branch_and_bound": ("MIP", "the full model's branch and bound, tighter than the LP relaxation"),
    "ties_count": ("ties count", "the tied cases that fit in their municipality's persons and minors' places"),
    "earlier_solve": ("earlier solve", "the level's solve before its model was refined (it relaxes the refined one)"),
    "trivial": ("trivial", "nothing to optimise: every plan reaches it"),
}


@dataclass(frozen=True)
class LevelResult:
    """One priority level of the lexicographic objective."""

    terms: list[str]
    status: str  # optimal | feasible | no_solution | not_run (stopped) | out_of_time
    objective: float | None
    bound: float | None
    seconds: float
    nodes: int
    #: What the level reached when it ended: the levels below were held to at least this.
    locked: float | None = None
    #: Where ``bound`` comes from: a key of :data:`BOUND_SOURCES` ("" without one).
    bound_from: str = ""

    @property
    def bound_label(self) -> str:
        """The short label of ``bound_from`` ("" without one)."""
        return BOUND_SOURCES[self.bound_from][0] if self.bound_from else ""

    @property
    def gap(self) -> float | None:
        if self.status == "optimal" and self.objective is not None:
            return relative_gap(self.objective, self.bound) or 0.0
        return relative_gap(self.objective, self.bound)

    def to_dict(self) -> dict[str, Any]:
        return {
            "terms": self.terms,
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound,
            "bound_from": self.bound_from or None,
            "gap": self.gap,
            "locked": self.locked,
            "seconds": round(self.seconds, 3),
            "nodes": self.nodes,
        }


@dataclass(frozen=True, eq=False)
class Result:
    """A proposal for one round.

    ``status`` is ``optimal`` when every level is proven within the relative gap setting,
    ``feasible`` when a level stopped on the time limit (its gap says how far it may be) or
    the time ran out before a level could start, ``stopped`` when stopped early on request.
    """

    problem: Problem
    settings: Settings
    plan: pd.DataFrame  # case_id, municipality_id, dwelling_id, pinned
    unplaced: pd.DataFrame  # case_id, rule, reason
    municipalities: pd.DataFrame
    levels: list[LevelResult]
    term_values: dict[str, float]
    model_sizes: dict[str, int]
    solver: str
    build_seconds: float
    total_seconds: float
    #: CP-SAT's own parameters where one of its plans was used (:attr:`.MathOptBackend.cp_sat_options`).
    cp_sat_options: dict[str, int] = field(default_factory=dict)
    created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    @property
    def status(self) -> str:
        statuses = {level.status for level in self.levels}
        if "not_run" in statuses:
            return "stopped"
        if statuses <= {"optimal"}:
            return "optimal"
        if all(level.gap is not None and level.gap <= self.settings.solver.relative_gap + 1e-12
               for level in self.levels):
            return "optimal"
        return "feasible"

    @property
    def gap(self) -> float | None:
        """The largest proven relative gap over the levels (None if a level has no bound)."""
        gaps = [level.gap for level in self.levels if level.status != "not_run"]
        if not gaps or any(g is None for g in gaps):
            return None
        return max(gaps)  # type: ignore[arg-type]

    @property
    def objective(self) -> list[float | None]:
        return [level.objective for level in self.levels]

    @property
    def bound(self) -> list[float | None]:
        return [level.bound for level in self.levels]

    def kpis(self) -> dict[str, float | int]:
        cases = self.problem.cases
        placed = cases.loc[self.plan["case_id"]]
        total_long = int(cases["long_waiting"].sum())
        persons_placed = int(placed["size"].sum())
        wait = (placed["wait_days"] * placed["size"]).sum() / persons_placed if persons_placed else 0.0
        return {
            "cases": len(cases),
            "persons": int(cases["size"].sum()),
            "cases_placed": len(placed),
            "persons_placed": persons_placed,
            "minors_placed": int(placed["minors"].sum()),
            "long_waiting_persons": total_long,
            "long_waiting_placed": int(placed["long_waiting"].sum()),
            "share_long_waiting_placed": float(placed["long_waiting"].sum() / total_long) if total_long else 1.0,
            "mean_wait_days_placed": round(float(wait), 1),
            "cases_unplaced": len(self.unplaced),
            "ties_honoured": int((placed["tie_municipality_id"].to_numpy()
                                  == self.plan["municipality_id"].to_numpy()).sum()),
        }

    def provenance(self) -> dict[str, Any]:
        return {
            "input_digest": self.problem.digest,
            "settings": self.settings.model_dump(mode="json"),
            "seed": self.settings.solver.seed,
            "solver": self.solver,
            "solver_parameters": {
                "backend": self.settings.solver.backend,
                "time_limit": self.settings.solver.time_limit,
                "relative_gap": self.settings.solver.relative_gap,
                "threads": self.settings.solver.threads,
                "seed": self.settings.solver.seed,
                **({"highs_mip_options": highs_mip_options()} if self.settings.solver.backend == "highs" else {}),
                **({"cp_sat_options": self.cp_sat_options} if "CP-SAT" in self.solver else {}),
            },
            "python": platform.python_version(),
            "created": self.created,
        }

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (``summary.json``)."""
        return {
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "levels": [level.to_dict() for level in self.levels],
            "terms": self.term_values,
            "kpis": self.kpis(),
            "unplaced_by_rule": self.unplaced["rule"].value_counts().to_dict() if len(self.unplaced) else {},
            "model": self.model_sizes,
            "seconds": {"build": round(self.build_seconds, 3), "total": round(self.total_seconds, 3),
                        "solve": round(sum(level.seconds for level in self.levels), 3)},
            "problem": self.problem.describe(),
            **self.provenance(),
        }

    def summary(self) -> str:
        """A short text table: status, gap, objective per level and KPIs."""
        k = self.kpis()
        gap = "n/a" if self.gap is None else f"{self.gap:.4%}"
        lines = [
            f"status {self.status}   gap {gap}   time {self.total_seconds:.2f}s   solver {self.solver}",
            f"placed {k['cases_placed']}/{k['cases']} cases, {k['persons_placed']}/{k['persons']} persons; "
            f"long-waiting placed {k['share_long_waiting_placed']:.1%}; mean wait {k['mean_wait_days_placed']} days",
        ]
        for i, level in enumerate(self.levels, 1):
            objective = "-" if level.objective is None else f"{level.objective:.4f}"
            bound = "-" if level.bound is None else f"{level.bound:.4f}"
            lgap = "-" if level.gap is None else f"{level.gap:.4%}"
            source = f" (bound by {level.bound_label})" if level.bound_from else ""
            lines.append(f"  level {i} {'+'.join(level.terms):<22} {level.status:<9} "
                         f"objective {objective:>14} bound {bound:>14} gap {lgap}{source}")
        return "\n".join(lines)

    def write(self, folder: str | Path) -> Path:
        """Write ``plan.csv``, ``unplaced.csv``, ``municipalities.csv`` and ``summary.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.plan[["case_id", "municipality_id", "dwelling_id"]].to_csv(folder / "plan.csv", index=False)
        self.unplaced.to_csv(folder / "unplaced.csv", index=False)
        self.municipalities.to_csv(folder / "municipalities.csv", index=False)
        (folder / "summary.json").write_text(json.dumps(self.to_dict(), indent=2, default=_json_default),
                                             encoding="utf-8")
        return folder


def _json_default(value: object) -> object:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
