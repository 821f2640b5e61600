"""The Danish municipal quota (Integrationsloven; the order on housing placement of refugees).

With ``p_k`` the municipality's share of the population and ``i_k`` its share of refugees and
non-Western immigrants already resident:

1. share ``a_k = p_k - (i_k - p_k) = 2 p_k - i_k`` (the shares ``a_k`` add up to 1);
2. computed number ``c_k = a_k * (L + F) - F_k``, with ``L`` the national number ("landstal"),
   ``F`` the family members reunified to refugees in the previous year, ``F_k`` those who came
   to ``k`` (``F`` is the sum of the ``F_k``); the ``c_k`` add up to ``L``;
3. a negative ``c_k`` becomes a zero quota;
4. the positive ``c_k`` are scaled so that the quotas add up to ``L``, in whole persons
   (largest-remainder method, see :mod:`scenarios.quotas.rounding`).

Regional quotas are the sums over each region's municipalities (:func:`regional_sums`; the
Norwegian county stands for the Danish region). Municipalities of a region may agree on
another split; this rule gives the computed one.

Inputs: ``immigrants`` (persons, or any number proportional to ``i_k``) and
``family_reunified`` (``F_k``, persons) columns in the inputs CSV. Without them a seeded
SYNTHETIC proxy is generated (:mod:`scenarios.reference`); results built on it are
illustrations, not real quotas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import reference
from .base import base_output, check_input, shares, supplied
from .rounding import largest_remainder


@dataclass(frozen=True)
class DanishQuota:
    """Binding municipal quotas by the published Danish rule.

    Parameters
    ----------
    family_reunified_share
        Only for the synthetic proxy: ``F = round(share * L)`` when the inputs lack
        ``family_reunified``.
    seed
        Seed of the synthetic proxies.
    allow_synthetic
        If ``False``, missing ``immigrants`` or ``family_reunified`` inputs are an error.
    """

    family_reunified_share: float = 0.2
    seed: int = 0
    allow_synthetic: bool = True
    name: str = "danish"

    def inputs(self, munis: pd.DataFrame, total: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """``i_k`` (shares adding up to 1) and ``F_k`` (persons), and where they came from."""
        notes = ["p_k: 2025 population (real)"]
        if supplied(munis, "immigrants"):
            i = shares(pd.to_numeric(munis["immigrants"]))
            notes.append("i_k: supplied in the inputs")
        elif self.allow_synthetic:
            i = reference.synthetic_immigrant_share(munis, self.seed).to_numpy()
            notes.append(f"i_k: SYNTHETIC proxy (seed {self.seed}), not real figures")
        else:
            raise ValueError("the Danish rule needs an 'immigrants' column (or allow_synthetic)")
        if supplied(munis, "family_reunified"):
            f = pd.to_numeric(munis["family_reunified"]).to_numpy(dtype=float)
            if (f < 0).any():
                raise ValueError("family_reunified must be >= 0")
            notes.append("F_k: supplied in the inputs")
        elif self.allow_synthetic:
            f_total = int(np.floor(self.family_reunified_share * int(total) + 0.5))
            f = reference.synthetic_family_reunified(munis, pd.Series(i, index=munis.index), f_total,
                                                     self.seed).to_numpy(dtype=float)
            notes.append(f"F_k: SYNTHETIC proxy (seed {self.seed}), F = {self.family_reunified_share} x L, "
                         "not real figures")
        else:
            raise ValueError("the Danish rule needs a 'family_reunified' column (or allow_synthetic)")
        return i, f, notes

    def compute(self, municipalities: pd.DataFrame, total: int) -> pd.DataFrame:
        """Quotas adding up to ``total`` (the landstal); see the module docstring."""
        munis = check_input(municipalities, total)
        total = int(total)
        p = shares(munis["population"])
        i, f, notes = self.inputs(munis, total)
        a = 2.0 * p - i
        family = float(f.sum())
        computed = a * (total + family) - f
        positive = np.clip(computed, 0.0, None)
        if total > 0 and positive.sum() <= 0:
            raise ValueError("every computed number is zero or negative: no quota can be set")
        scaled = positive * total / positive.sum() if positive.sum() > 0 else positive
        quota = largest_remainder(positive, total) if total > 0 else np.zeros(len(munis), dtype=int)
        out = base_output(munis, scaled / total if total else scaled, quota)
        out["population_share"] = p
        out["immigrant_share"] = i
        out["a"] = a
        out["family_reunified"] = f
        out["computed"] = computed
        out["scaled"] = scaled
        out.attrs["notes"] = notes
        out.attrs["family_reunified_total"] = family
        out.attrs["rule"] = self.name
        return out
