"""The scenario file (TOML): policies to compare, horizon, arrivals, housing, solver, seeds.

See ``docs/scenarios.md`` for the format with an example; every field has a default except
the policies. Relative paths in the file are relative to the file itself.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .quotas import RULES

CATEGORIES = ("single", "family", "unaccompanied_minor", "resettlement")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # inf is no count or rate


class MunicipalitiesConfig(_Strict):
    """Which municipalities take part (default: the real 357 of 2025)."""

    file: Path | None = Field(None, description="own municipalities CSV instead of the real 357")
    ids: list[str] = Field(default_factory=list, description="only these municipality ids")
    sample: int = Field(0, ge=0, description="a seeded sample of this many municipalities (0: all)")
    sample_seed: int = 0
    inputs: Path | None = Field(None, description="CSV with extra per-municipality inputs for the rules "
                                "and an optional housing_factor")


class ArrivalsConfig(_Strict):
    """Settlement-ready cases arriving each month (or an explicit arrivals file)."""

    file: Path | None = Field(None, description="explicit arrivals CSV instead of generated ones")
    cases_per_month: float | list[float] = 300.0
    variation: Literal["poisson", "fixed"] = "poisson"
    initial_backlog: int = Field(0, ge=0, description="cases already waiting at the start")
    initial_wait_days_mean: float = Field(90.0, gt=0)
    initial_wait_days_max: int = Field(540, ge=1)
    composition: dict[str, float] = Field(
        default_factory=lambda: {"single": 0.55, "family": 0.35, "unaccompanied_minor": 0.05,
                                 "resettlement": 0.05})
    family_two_adults: float = Field(0.75, ge=0, le=1)
    children_p: float = Field(0.38, gt=0, le=1, description="geometric parameter of children per family")
    max_children: int = Field(7, ge=1)
    minor_siblings: float = Field(0.08, ge=0, le=1, description="share of minor cases that are two siblings")
    resettlement_family_share: float = Field(0.7, ge=0, le=1)
    tie_share: float = Field(0.08, ge=0, le=1)
    step_free_share: float = Field(0.03, ge=0, le=1)

    @field_validator("composition")
    @classmethod
    def _composition(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}; use {list(CATEGORIES)}")
        if any(v < 0 for v in value.values()) or sum(value.values()) <= 0:
            raise ValueError("composition shares must be >= 0 and not all 0")
        total = sum(value.values())
        return {k: v / total for k, v in value.items()}

    @field_validator("cases_per_month")
    @classmethod
    def _non_negative(cls, value: float | list[float]) -> float | list[float]:
        values = value if isinstance(value, list) else [value]
        if not values or any(v < 0 for v in values):
            raise ValueError("cases_per_month must be >= 0 (a number or a non-empty list)")
        return value

    def mean_cases(self, month: int) -> float:
        if isinstance(self.cases_per_month, list):
            return float(self.cases_per_month[month % len(self.cases_per_month)])
        return float(self.cases_per_month)


class HousingConfig(_Strict):
    """Dwellings the municipalities make available to refugees (or an explicit dwellings file)."""

    file: Path | None = Field(None, description="explicit dwellings CSV instead of generated ones")
    initial_per_1000: float = Field(0.12, ge=0, description="free dwellings at the start per 1,000 inhabitants")
    monthly_per_1000: float = Field(0.055, ge=0, description="new dwellings a month per 1,000 inhabitants")
    monthly_growth: float = Field(0.0, ge=-0.5, le=1.0, description="relative growth of the monthly rate")
    turnover: float = Field(0.0, ge=0, le=1, description="share of occupied dwellings freed each month")
    announce_days: int = Field(31, ge=0, description="dwellings known this many days before they are free")
    bedrooms: dict[int, float] = Field(default_factory=lambda: {1: 0.33, 2: 0.30, 3: 0.20, 4: 0.12, 5: 0.05})
    step_free_share: float = Field(0.15, ge=0, le=1)
    shared_share: float = Field(0.12, ge=0, le=1, description="of 3+ bedroom dwellings: shared flats")

    @field_validator("bedrooms")
    @classmethod
    def _bedrooms(cls, value: dict[int, float]) -> dict[int, float]:
        if not value or any(k < 1 for k in value) or any(v < 0 for v in value.values()) \
                or sum(value.values()) <= 0:
            raise ValueError("bedrooms: shares by bedroom count >= 1, not all 0")
        total = sum(value.values())
        return {int(k): v / total for k, v in sorted(value.items())}


class NationalConfig(_Strict):
    """The national number the rules split, per year: a number, a list per year, or "auto"
    (persons waiting at the year's start plus expected arrivals over the next 12 months)."""

    persons: Literal["auto"] | int | list[int] = "auto"
    minors: Literal["auto"] | int | list[int] = "auto"


class SolverConfig(_Strict):
    """Settings of each monthly round (see the allocator's settings.toml)."""

    time_limit: float = Field(5.0, gt=0)
    priorities: list[list[str]] = Field(default_factory=lambda: [["urgency"], ["ties"]])
    relative_gap: float = Field(1e-4, ge=0, le=1)
    threads: int = Field(1, ge=1)
    seed: int = Field(0, ge=0)
    backend: Literal["highs", "scip"] = "highs"


class ReportConfig(_Strict):
    bed_day_cost: float = Field(0.0, ge=0, description="cost of one reception bed-day (an assumption)")
    currency: str = "NOK"


class PolicyConfig(_Strict):
    """One policy: a request or quota rule and how municipalities behave under it."""

    name: str
    rule: str
    rule_params: dict[str, Any] = Field(default_factory=dict)
    behaviour: Literal["voluntary", "binding"] | None = Field(
        None, description="default: voluntary for the Norwegian request, binding otherwise")
    decline_rate: float = Field(0.0, ge=0, le=1)
    refuse_share: float = Field(0.0, ge=0, le=1)
    lead_time_days: int | tuple[int, int] = Field(
        30, description="days from acceptance to moving in: a number, or [low, high] drawn uniformly")

    housing_duty: float = Field(
        0.0, ge=0, le=1, description="binding quotas only: share of the monthly housing shortfall against "
        "the quota's pace that municipalities close by procuring dwellings (an assumption; 0: none)")
    housing_duty_days: int = Field(30, ge=0, description="days until a procured dwelling is free")

    @field_validator("lead_time_days")
    @classmethod
    def _lead_time(cls, value: int | tuple[int, int]) -> int | tuple[int, int]:
        low, high = (value, value) if isinstance(value, int) else value
        if low < 0 or high < low:
            raise ValueError("lead_time_days must be >= 0 (and low <= high)")
        return value

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, value: str) -> str:
        if value not in RULES:
            raise ValueError(f"unknown rule '{value}'; choose one of {sorted(RULES)}")
        return value

    @property
    def behaviour_kind(self) -> str:
        return self.behaviour or ("voluntary" if self.rule == "norwegian" else "binding")


class Scenario(_Strict):
    """A scenario file: everything a simulation run needs, besides the run's seed."""

    name: str = "scenario"
    description: str = ""
    start: dt.date = dt.date(2026, 1, 1)
    months: int = Field(24, ge=1, le=240)
    seeds: list[int] = Field(default_factory=lambda: [1])
    municipalities: MunicipalitiesConfig = Field(default_factory=MunicipalitiesConfig)
    arrivals: ArrivalsConfig = Field(default_factory=ArrivalsConfig)
    housing: HousingConfig = Field(default_factory=HousingConfig)
    national: NationalConfig = Field(default_factory=NationalConfig)
    solver: SolverConfig = Field(default_factory=SolverConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    policies: list[PolicyConfig]
    verify_plans: bool = Field(False, description="re-check every round's plan with the verifier (slow)")
    base_dir: Path = Field(Path("."), exclude=True, description="where relative paths start")

    @model_validator(mode="after")
    def _unique_policies(self) -> "Scenario":
        names = [p.name for p in self.policies]
        if not names:
            raise ValueError("at least one [[policies]] entry is needed")
        if len(names) != len(set(names)):
            raise ValueError("policy names must be unique")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        return self

    def path(self, value: Path | None) -> Path | None:
        """A path from the file, resolved against the file's folder."""
        if value is None:
            return None
        return value if value.is_absolute() else (self.base_dir / value)


class ScenarioError(ValueError):
    """A scenario file that cannot be read or breaks the format; lists every problem."""


def load_scenario(path: str | Path, **overrides: Any) -> Scenario:
    """Read and validate a scenario TOML file.

    Parameters
    ----------
    path
        The file.
    overrides
        Top-level fields to replace (e.g. ``seeds=[1]``, ``months=6``).

    Raises
    ------
    ScenarioError
        Naming every invalid field.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    return scenario_from_mapping(data, base_dir=path.resolve().parent, source=str(path))


def scenario_from_mapping(data: dict[str, Any], base_dir: Path | str = ".", source: str = "scenario") -> Scenario:
    """Validate a scenario given as a mapping (as parsed from TOML)."""
    try:
        return Scenario.model_validate({**data, "base_dir": Path(base_dir)})
    except ValidationError as exc:
        lines = [f"{source}: {len(exc.errors())} problem(s)"]
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(file)"
            lines.append(f"  {where}: {err['msg']}")
        raise ScenarioError("\n".join(lines)) from None
