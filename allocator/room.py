"""What a plan's counts leave in each municipality, kept up to date as cases are added, moved
or taken out: the bookkeeping the fast heuristics share."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .model import PlacementModel


class Room:
    """What a plan's counts leave in each municipality: persons, minors, services, Hall rows."""

    def __init__(self, model: PlacementModel, y: np.ndarray):
        agg = model.agg
        self.model = model
        units = model.units
        self.size = units["size"].to_numpy(dtype=float)
        self.minors = units["minors"].to_numpy(dtype=float)
        services = list(agg.problem.services)
        self.use = units[[f"use_{s}" for s in services]].to_numpy(dtype=float) if services \
            else np.zeros((len(units), 0))
        n = agg.n_municipalities
        u, m = model.y_unit, model.y_muni
        self.persons = agg.persons_left - np.bincount(m, weights=y * self.size[u], minlength=n)
        self.minors_left = agg.minors_left - np.bincount(m, weights=y * self.minors[u], minlength=n)
        self.services = agg.services_left.copy()
        for s in range(len(services)):
            self.services[:, s] -= np.bincount(m, weights=y * self.use[u, s], minlength=n)
        self.hall = model.hall_supply.copy()
        self.rows_of: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(0, dtype=int))
        if len(model.hall_row):
            demand = model.class_demand(y)
            np.subtract.at(self.hall, model.hall_row, demand[model.hall_class])
            for e in np.unique(model.hall_class):
                self.rows_of[int(e)] = model.hall_row[model.hall_class == e]
        # Hall entries grouped by housing class, to take each class's tightest row at once.
        by_class = np.argsort(model.hall_class, kind="stable")
        self._entry_rows = model.hall_row[by_class]
        self._classes, self._starts = np.unique(model.hall_class[by_class], return_index=True)

    def change(self, j: int, sign: int) -> None:
        """Add (sign=+1) or remove (-1) one case of column j."""
        unit, m = self.model.y_unit[j], self.model.y_muni[j]
        self.persons[m] -= sign * self.size[unit]
        self.minors_left[m] -= sign * self.minors[unit]
        self.services[m] -= sign * self.use[unit]
        e = self.model.y_class[j]
        if e >= 0:
            self.hall[self.rows_of[int(e)]] -= sign

    def fits(self, j: int) -> bool:
        """Would one more case of column j keep every capacity of its municipality?"""
        model = self.model
        unit, m = model.y_unit[j], model.y_muni[j]
        if self.persons[m] < self.size[unit] or self.minors_left[m] < self.minors[unit]:
            return False
        if (self.services[m] < self.use[unit]).any():
            return False
        e = model.y_class[j]
        return e < 0 or (self.hall[self.rows_of[int(e)]] >= 1).all()

    def holds(self) -> bool:
        """Do the counts keep every capacity (nothing left below zero)?"""
        tol = -1e-9
        return bool((self.persons >= tol).all() and (self.minors_left >= tol).all()
                    and (self.services >= tol).all() and (self.hall >= tol).all())

    def fits_many(self, columns: np.ndarray) -> np.ndarray:
        """:meth:`fits` for many columns at once."""
        model = self.model
        unit, m = model.y_unit[columns], model.y_muni[columns]
        ok = (self.persons[m] >= self.size[unit]) & (self.minors_left[m] >= self.minors[unit])
        if self.use.shape[1]:
            ok &= (self.services[m] >= self.use[unit]).all(axis=1)
        e = model.y_class[columns]
        housed = e >= 0
        if housed.any() and len(self._classes):
            tightest = np.minimum.reduceat(self.hall[self._entry_rows], self._starts)
            pos = np.searchsorted(self._classes, e[housed])
            known = (pos < len(self._classes)) & (self._classes[np.minimum(pos, len(self._classes) - 1)] == e[housed])
            room = np.where(known, tightest[np.minimum(pos, len(self._classes) - 1)], np.inf)
            ok[housed] &= room >= 1
        return ok

    def ok(self, columns: tuple[int, ...]) -> bool:
        """Do the municipalities and housing classes of these columns keep every capacity?"""
        for j in columns:
            m = self.model.y_muni[j]
            if self.persons[m] < -1e-9 or self.minors_left[m] < -1e-9 or (self.services[m] < -1e-9).any():
                return False
            e = self.model.y_class[j]
            if e >= 0 and (self.hall[self.rows_of[int(e)]] < -1e-9).any():
                return False
        return True
