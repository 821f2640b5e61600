"""Settings of one placement round: objective priorities, service age ranges, the housing rule
and the solver's limits.

Settings come from an optional ``settings.toml`` in the problem folder (or a dict over HTTP);
every field has a default, so an empty file is valid. They are recorded in every result.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Objective terms, each a small named function in :mod:`allocator.model`.
TermName = Literal["urgency", "ties", "scores", "housing_fit", "spread"]


class _Frozen(BaseModel):
    # "inf" and "nan" are floats to TOML and JSON, but no setting means them.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ObjectiveSettings(_Frozen):
    """Which terms the round optimises, in which priority, with which weights.

    ``priorities`` is a list of levels; each level is a list of terms summed with their
    weights. Levels are optimised lexicographically: a lower level never costs a higher level
    anything beyond the relative gap.
    """

    priorities: list[list[TermName]] = Field(
        default_factory=lambda: [["urgency"], ["ties", "scores"], ["housing_fit", "spread"]]
    )
    weights: dict[TermName, float] = Field(
        default_factory=lambda: {
            "urgency": 1.0,
            "ties": 1.0,
            "scores": 1.0,
            "housing_fit": 1.0,
            "spread": 1.0,
        }
    )

    @field_validator("priorities")
    @classmethod
    def _each_term_once(cls, levels: list[list[str]]) -> list[list[str]]:
        seen = [t for level in levels for t in level]
        if not seen:
            raise ValueError("at least one objective term is needed")
        if len(seen) != len(set(seen)):
            raise ValueError("a term may appear in only one priority level")
        if any(not level for level in levels):
            raise ValueError("a priority level may not be empty")
        return levels

    @field_validator("weights")
    @classmethod
    def _weights_non_negative(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = [t for t, w in weights.items() if w < 0]
        if bad:
            raise ValueError(f"weights must be >= 0 (terms {', '.join(bad)})")
        return weights

    def weight(self, term: str) -> float:
        return float(self.weights.get(term, 1.0))


class UrgencySettings(_Frozen):
    """How a member's waiting time becomes urgency.

    A member placed adds ``base + days_waited / target_days``: the base rewards settling anyone
    at all, the ratio grows with the wait against the member's target (6 months for adults,
    3 months for children and unaccompanied minors).
    """

    base: float = Field(1.0, ge=0)
    adult_target_months: float = Field(6.0, gt=0)
    child_target_months: float = Field(3.0, gt=0)
    adult_age: int = Field(18, ge=1)


class HousingSettings(_Frozen):
    """The bedroom rule: adults share a bedroom in pairs, children in pairs, by default."""

    adults_per_bedroom: int = Field(2, ge=1)
    children_per_bedroom: int = Field(2, ge=1)


class SolverSettings(_Frozen):
    backend: Literal["highs", "scip"] = "highs"
    time_limit: float = Field(60.0, gt=0, description="seconds of wall time for the whole solve")
    relative_gap: float = Field(1e-4, ge=0, le=1)
    seed: int = Field(0, ge=0)
    threads: int = Field(
        2, ge=1,
        description="SCIP's threads, and steps of the case-moving search solved at once; HiGHS keeps one "
                    "pool per process, its own size",
    )


def _default_services() -> dict[str, tuple[int, int]]:
    return {"school": (6, 15), "kindergarten": (1, 5), "introduction": (18, 55)}


class Settings(_Frozen):
    """All settings of a round. ``as_of`` defaults to today."""

    as_of: dt.date = Field(default_factory=dt.date.today)
    objective: ObjectiveSettings = Field(default_factory=ObjectiveSettings)
    urgency: UrgencySettings = Field(default_factory=UrgencySettings)
    housing: HousingSettings = Field(default_factory=HousingSettings)
    services: dict[str, tuple[int, int]] = Field(
        default_factory=_default_services,
        description="which ages (inclusive) use each capacity_<service>",
    )
    solver: SolverSettings = Field(default_factory=SolverSettings)

    @model_validator(mode="after")
    def _service_ranges(self) -> "Settings":
        for name, (low, high) in self.services.items():
            if low > high:
                raise ValueError(f"services.{name}: lowest age {low} is above highest {high}")
        return self

    def with_overrides(self, **fields: object) -> "Settings":
        """A copy with some top-level or nested (``solver__time_limit``) fields replaced."""
        data = self.model_dump()
        for key, value in fields.items():
            node = data
            *path, leaf = key.split("__")
            for part in path:
                node = node[part]
            node[leaf] = value
        return Settings.model_validate(data)
