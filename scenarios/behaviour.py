"""What municipalities do with a request or a quota, and how they answer proposals.

Voluntary model (Norway today): each municipality resolves a share of its request, drawn
from a distribution calibrated on the 2016-2017 county figures (:func:`calibrate`), and
declines some proposals. Binding model (Denmark, Sweden): the quota is the resolution and every
proposal is accepted.

Calibration
-----------
The data hold, per county and year (19 x 2 = 38 observations), the persons requested and
resolved, and the same for unaccompanied minors. The ratio resolution / request is fitted by
maximum likelihood as a Beta distribution scaled to ``[0, upper]`` (location 0 and scale
``upper`` fixed): ``upper = 1.1`` for persons (a few counties resolved slightly more than
asked, up to 1.023), ``upper = 2.0`` for minors (2017 ratios reach 1.73). The fit is computed
from the bundled CSV each time (deterministic); ``docs/scenarios.md`` states the values.

County ratios average over their municipalities, so municipal ratios vary more than this
fit; ``refuse_share`` (the probability that a council resolves nothing) is an explicit
assumption the scenario may add (default 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats

from . import reference


@dataclass(frozen=True)
class RatioFit:
    """A Beta distribution on ``[0, upper]`` fitted to resolution / request ratios."""

    what: str
    a: float
    b: float
    upper: float
    n: int
    observed_mean: float
    observed_sd: float

    @property
    def mean(self) -> float:
        return self.upper * self.a / (self.a + self.b)

    @property
    def sd(self) -> float:
        a, b = self.a, self.b
        return self.upper * float(np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1))))

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.upper * rng.beta(self.a, self.b, size=n)

    def describe(self) -> str:
        return (f"{self.what}: Beta(a={self.a:.3f}, b={self.b:.3f}) on [0, {self.upper:g}] fitted to "
                f"{self.n} county-year ratios (observed mean {self.observed_mean:.3f}, sd "
                f"{self.observed_sd:.3f}; fitted mean {self.mean:.3f}, sd {self.sd:.3f})")


def observed_ratios() -> pd.DataFrame:
    """Resolution / request per county and year, for persons and for minors (38 rows)."""
    data = reference.county_requests()
    rows = []
    for year in (2016, 2017):
        rows.append(pd.DataFrame({
            "county": data["county_2016"],
            "year": year,
            "persons_ratio": data[f"resolution_{year}"] / data[f"request_{year}"],
            "minors_ratio": data[f"resolution_{year}_unaccompanied_minors"]
            / data[f"request_{year}_unaccompanied_minors"],
        }))
    return pd.concat(rows, ignore_index=True)


def _fit(values: np.ndarray, upper: float, what: str) -> RatioFit:
    clipped = np.clip(values, 1e-6, upper * (1 - 1e-6))
    a, b, _, _ = stats.beta.fit(clipped, floc=0.0, fscale=upper)
    return RatioFit(what, float(a), float(b), float(upper), len(values), float(values.mean()),
                    float(values.std(ddof=1)))


@lru_cache(maxsize=4)
def calibrate(persons_upper: float = 1.1, minors_upper: float = 2.0) -> tuple[RatioFit, RatioFit]:
    """Fit the resolution / request ratio for persons and for unaccompanied minors."""
    ratios = observed_ratios()
    return (_fit(ratios["persons_ratio"].to_numpy(), persons_upper, "persons"),
            _fit(ratios["minors_ratio"].to_numpy(), minors_upper, "unaccompanied minors"))


@dataclass(frozen=True)
class Behaviour:
    """How municipalities turn a request or quota into a resolution, and answer proposals.

    Parameters
    ----------
    kind
        ``"voluntary"`` or ``"binding"``.
    decline_rate
        Voluntary only: probability that a municipality declines one proposed case.
    refuse_share
        Voluntary only: probability that a council resolves nothing (an assumption, default 0).
    """

    kind: str = "binding"
    decline_rate: float = 0.0
    refuse_share: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("voluntary", "binding"):
            raise ValueError("behaviour must be 'voluntary' or 'binding'")
        if not 0 <= self.decline_rate <= 1 or not 0 <= self.refuse_share <= 1:
            raise ValueError("decline_rate and refuse_share must be within [0, 1]")

    @property
    def binding(self) -> bool:
        return self.kind == "binding"

    def resolve(self, persons: np.ndarray, minors: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Resolutions (persons, minors) from requests or quotas.

        Binding: the quota itself. Voluntary: ``round(request * ratio)`` with the ratio drawn
        per municipality from the calibrated fits (persons and minors separately), minors
        capped by persons; with probability ``refuse_share`` a council resolves nothing.
        """
        persons = np.asarray(persons, dtype=int)
        minors = np.asarray(minors, dtype=int)
        if self.binding:
            return persons.copy(), np.minimum(minors, persons)
        fit_persons, fit_minors = calibrate()
        n = len(persons)
        ratio = fit_persons.draw(rng, n)
        ratio_minors = fit_minors.draw(rng, n)
        refuses = rng.random(n) < self.refuse_share
        resolved = np.where(refuses, 0, np.floor(persons * ratio + 0.5)).astype(int)
        resolved_minors = np.where(refuses, 0, np.floor(minors * ratio_minors + 0.5)).astype(int)
        return resolved, np.minimum(resolved_minors, resolved)

    def answer(self, n_proposals: int, rng: np.random.Generator) -> np.ndarray:
        """Whether each proposal is accepted (binding: all are)."""
        if self.binding or self.decline_rate <= 0:
            return np.ones(n_proposals, dtype=bool)
        return rng.random(n_proposals) >= self.decline_rate
