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
        if len(model.hall_row):
            demand = model.class_demand(y)
            np.subtract.at(self.hall, model.hall_row, demand[model.hall_class])
        # Hall entries grouped by housing class, to take each class's tightest row at once.
        by_class = np.argsort(model.hall_class, kind="stable")
        self._entry_rows = model.hall_row[by_class]
        self._classes, self._starts = np.unique(model.hall_class[by_class], return_index=True)
        # Each class's Hall rows (in the model's order), as an array and as a list of distinct
        # rows for Python loops (numpy's ``hall[rows] -= 1`` also changes a repeated row once).
        self.rows_of: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(0, dtype=int))
        self.class_rows: dict[int, list[int]] = {}
        ends = np.append(self._starts[1:], len(self._entry_rows)).astype(int)
        entries = self._entry_rows.tolist()
        key = model.hall_class.astype(np.int64) * (int(model.hall_row.max(initial=0)) + 1) + model.hall_row
        distinct = len(np.unique(key)) == len(key)
        for e, a, b in zip(self._classes.tolist(), self._starts.tolist(), ends.tolist()):
            self.rows_of[e] = self._entry_rows[a:b]
            self.class_rows[e] = entries[a:b] if distinct else list(dict.fromkeys(entries[a:b]))
        self._row_sets: dict[int, frozenset[int]] = {}
        self._tight_hall: np.ndarray | None = None  # the Hall rows ``_tight`` was taken at
        self._tight = np.zeros(0)
        self._per_column(model)

    def _per_column(self, model: PlacementModel) -> None:
        """What one case of each column takes, as plain Python values and per-column arrays:
        :meth:`change` and :meth:`fits` run tens of thousands of times per packing on single
        columns, where numpy's overhead per call costs more than the work."""
        u = model.y_unit
        self.col_muni: list[int] = model.y_muni.tolist()
        self.col_size: list[float] = self.size[u].tolist()
        self.col_minors: list[float] = self.minors[u].tolist()
        # Built per unit (a few hundred), shared by the unit's columns (thousands).
        unit_use = [tuple(row) for row in self.use.tolist()]
        # (service, use) pairs with use > 0: taking 0 away changes no count.
        unit_used = [tuple((s, v) for s, v in enumerate(row) if v != 0) for row in unit_use]
        col_unit = u.tolist()
        self.col_use: list[tuple[float, ...]] = [unit_use[i] for i in col_unit]
        self.col_used: list[tuple[tuple[int, float], ...]] = [unit_used[i] for i in col_unit]
        self.col_class: list[int] = model.y_class.tolist()
        # Per column, arrays for :meth:`fits_many`: the column's entry in ``_classes`` (-1 if its
        # class has no Hall row, or it has no class).
        self.col_size_arr = self.size[u]
        self.col_minors_arr = self.minors[u]
        self.col_use_arr = self.use[u]
        if len(self._classes):
            e = model.y_class
            pos = np.minimum(np.searchsorted(self._classes, e), len(self._classes) - 1)
            self.col_class_pos = np.where((e >= 0) & (self._classes[pos] == e), pos, -1)
        else:
            self.col_class_pos = np.full(len(u), -1)

    def row_set(self, e: int) -> frozenset[int]:
        """The Hall rows of housing class ``e`` (none if it has none), as a set."""
        rows = self._row_sets.get(e)
        if rows is None:
            rows = self._row_sets[e] = frozenset(self.class_rows.get(e, ()))
        return rows

    def change(self, j: int, sign: int) -> None:
        """Add (sign=+1) or remove (-1) one case of column j."""
        m = self.col_muni[j]
        self.persons[m] -= sign * self.col_size[j]
        self.minors_left[m] -= sign * self.col_minors[j]
        services = self.services
        for s, v in self.col_used[j]:
            services[m, s] -= sign * v
        e = self.col_class[j]
        if e >= 0:
            rows = self.class_rows.get(e)
            if rows is None:
                return
            if len(rows) <= 6:  # a loop is cheaper than fancy indexing on a few rows
                hall = self.hall
                for r in rows:
                    hall[r] -= sign
            else:
                self.hall[self.rows_of[e]] -= sign

    def fits(self, j: int) -> bool:
        """Would one more case of column j keep every capacity of its municipality?"""
        m = self.col_muni[j]
        if self.persons[m] < self.col_size[j] or self.minors_left[m] < self.col_minors[j]:
            return False
        services = self.services
        for s, v in enumerate(self.col_use[j]):
            if services[m, s] < v:
                return False
        e = self.col_class[j]
        if e < 0:
            return True
        rows = self.class_rows.get(e)
        if rows is None:
            return True
        if len(rows) <= 6:
            hall = self.hall
            for r in rows:
                if not hall[r] >= 1:
                    return False
            return True
        return bool((self.hall[self.rows_of[e]] >= 1).all())

    def holds(self) -> bool:
        """Do the counts keep every capacity (nothing left below zero)?"""
        tol = -1e-9
        return bool((self.persons >= tol).all() and (self.minors_left >= tol).all()
                    and (self.services >= tol).all() and (self.hall >= tol).all())

    def fits_many(self, columns: np.ndarray) -> np.ndarray:
        """:meth:`fits` for many columns at once."""
        m = self.model.y_muni[columns]
        ok = (self.persons[m] >= self.col_size_arr[columns]) & (self.minors_left[m] >= self.col_minors_arr[columns])
        if self.use.shape[1]:
            ok &= (self.services[m] >= self.col_use_arr[columns]).all(axis=1)
        pos = self.col_class_pos[columns]
        housed = pos >= 0
        if housed.any():
            ok[housed] &= self._tightest()[pos[housed]] >= 1
        return ok

    def _tightest(self) -> np.ndarray:
        """The least room left in each housing class's Hall rows (per ``_classes``). Moves tried
        and undone leave the rows as they were, so the last answer is often still right:
        comparing the rows is cheaper than taking the minima again."""
        if self._tight_hall is None or not (self._tight_hall == self.hall).all():
            self._tight_hall = self.hall.copy()
            self._tight = np.minimum.reduceat(self.hall[self._entry_rows], self._starts)
        return self._tight

    def ok(self, columns: tuple[int, ...]) -> bool:
        """Do the municipalities and housing classes of these columns keep every capacity?"""
        tol = -1e-9
        for j in columns:
            m = self.col_muni[j]
            if self.persons[m] < tol or self.minors_left[m] < tol or (self.services[m] < tol).any():
                return False
            e = self.col_class[j]
            if e >= 0 and any(self.hall[r] < tol for r in self.class_rows.get(e, ())):
                return False
        return True


class Lack:
    """What one more case of column k lacks at its municipality, as plain numbers, for trying
    which cases there to take out (the packer's making way): :meth:`Room.fits` and
    :meth:`Room.change` on the counts give the same answers, and cost more than the search, as
    most trials are undone. Keep the three in step."""

    def __init__(self, room: Room, k: int):
        m = room.col_muni[k]
        self.room = room
        self.size, self.minors_needed, self.use = room.col_size[k], room.col_minors[k], room.col_use[k]
        self.persons, self.minors = float(room.persons[m]), float(room.minors_left[m])
        self.services: list[float] = room.services[m].tolist()
        e = room.col_class[k]
        self.rows: list[int] = room.class_rows.get(e, []) if e >= 0 else []
        self.hall = {r: float(room.hall[r]) for r in self.rows}

    def fits(self) -> bool:
        return (self.persons >= self.size and self.minors >= self.minors_needed
                and all(left >= v for left, v in zip(self.services, self.use))
                and all(left >= 1 for left in self.hall.values()))

    def shortfalls(self) -> int:
        """How many of persons, minors' places, services' places and dwellings the case lacks."""
        return (int(self.persons < self.size) + int(self.minors < self.minors_needed)
                + int(any(left < v for left, v in zip(self.services, self.use)))
                + int(any(left < 1 for left in self.hall.values())))

    def relieved_by(self, j: int) -> bool:
        """Does taking a case of column j out free something the case lacks?"""
        room = self.room
        if self.persons < self.size and room.col_size[j] > 0:
            return True
        if self.minors < self.minors_needed and room.col_minors[j] > 0:
            return True
        use_j = room.col_use[j]
        if any(left < v and use_j[s] > 0 for s, (left, v) in enumerate(zip(self.services, self.use))):
            return True
        e = room.col_class[j]
        if e >= 0 and self.rows:
            # A row of the case's class with no room left that j's class gives back to.
            rows_j = room.row_set(e)
            return any(self.hall[r] < 1 for r in self.rows if r in rows_j)
        return False

    def take_out(self, j: int) -> None:
        room = self.room
        self.persons += room.col_size[j]
        self.minors += room.col_minors[j]
        for s, v in room.col_used[j]:
            self.services[s] += v
        e = room.col_class[j]
        if e >= 0:
            for r in room.class_rows.get(e, ()):
                if r in self.hall:
                    self.hall[r] += 1
