"""Typed reading of one raw (all-text) input table, collecting every issue instead of stopping
at the first."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .errors import InputIssue

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


class TableReader:
    """Parses the columns of one raw table (strings, missing as ``""``) into typed series.

    Every method records an :class:`InputIssue` for each bad cell and returns a series in which
    bad cells are missing, so all issues of a file are found in one pass.
    """

    def __init__(self, file: str, raw: pd.DataFrame, issues: list[InputIssue]):
        self.file = file
        self.raw = raw
        self.issues = issues
        # Spreadsheet rows: header is row 1.
        self.rows = np.arange(len(raw)) + 2

    def add(self, row: int | None, column: str | None, rule: str, message: str) -> None:
        self.issues.append(InputIssue(self.file, row, column, rule, message))

    def has(self, column: str) -> bool:
        return column in self.raw.columns

    def require_columns(self, columns: Iterable[str]) -> bool:
        missing = [c for c in columns if c not in self.raw.columns]
        for column in missing:
            self.add(1, column, "missing-column", f"required column '{column}' is missing")
        return not missing

    def _cells(self, column: str) -> pd.Series:
        if column not in self.raw.columns:
            return pd.Series([""] * len(self.raw), index=self.raw.index, dtype=object)
        return self.raw[column].fillna("").astype(str).str.strip()

    def _report(self, mask: np.ndarray, column: str, rule: str, message: str) -> None:
        cells = self._cells(column).to_numpy()
        for row, cell in zip(self.rows[mask], cells[mask]):
            self.add(int(row), column, rule, message.format(value=cell))

    def text(self, column: str, required: bool = True) -> pd.Series:
        cells = self._cells(column)
        if required:
            self._report((cells == "").to_numpy(), column, "required", "a value is required")
        return cells

    def unique(self, column: str, values: pd.Series) -> None:
        present = values != ""
        dup = (values.duplicated(keep="first") & present).to_numpy()
        self._report(dup, column, "duplicate-id", "'{value}' appears more than once")

    def integer(
        self, column: str, *, minimum: int | None = None, default: int | None = None
    ) -> pd.Series:
        cells = self._cells(column)
        empty = (cells == "").to_numpy()
        numbers = pd.to_numeric(cells, errors="coerce")
        whole = numbers.notna() & (numbers == np.floor(numbers.fillna(0)))
        bad = ~whole.to_numpy() & ~(empty & (default is not None))
        self._report(bad, column, "not-an-integer", "'{value}' is not a whole number")
        values = numbers.where(whole)
        if default is not None:
            values = values.where(~empty, default)
        if minimum is not None:
            below = (values < minimum).fillna(False).to_numpy()
            self._report(below, column, "below-minimum", f"'{{value}}' is below {minimum}")
            values = values.where(~below)
        return values.astype("Int64")

    def number(
        self, column: str, *, minimum: float | None = None, maximum: float | None = None
    ) -> pd.Series:
        cells = self._cells(column)
        numbers = pd.to_numeric(cells, errors="coerce")
        self._report(numbers.isna().to_numpy(), column, "not-a-number", "'{value}' is not a number")
        if minimum is not None:
            below = (numbers < minimum).fillna(False).to_numpy()
            self._report(below, column, "below-minimum", f"'{{value}}' is below {minimum}")
            numbers = numbers.where(~below)
        if maximum is not None:
            above = (numbers > maximum).fillna(False).to_numpy()
            self._report(above, column, "above-maximum", f"'{{value}}' is above {maximum}")
            numbers = numbers.where(~above)
        return numbers.astype(float)

    def boolean(self, column: str) -> pd.Series:
        cells = self._cells(column).str.lower()
        ok = cells.isin(_TRUE | _FALSE).to_numpy()
        self._report(~ok, column, "not-a-boolean", "'{value}' is not true/false")
        return cells.isin(_TRUE)

    def date(self, column: str, *, required: bool = True) -> pd.Series:
        cells = self._cells(column)
        empty = (cells == "").to_numpy()
        dates = pd.to_datetime(cells, format="ISO8601", errors="coerce")
        bad = dates.isna().to_numpy() & ~(empty & (not required))
        self._report(bad, column, "not-a-date", "'{value}' is not an ISO 8601 date (YYYY-MM-DD)")
        return dates.dt.normalize()

    def choice(self, column: str, allowed: Iterable[str]) -> pd.Series:
        allowed = set(allowed)
        cells = self._cells(column)
        bad = ~(cells.isin(allowed) | (cells == "")).to_numpy()
        options = ", ".join(sorted(allowed))
        self._report(bad, column, "unknown-value", f"'{{value}}' is not one of: {options}")
        return cells

    def reference(
        self, column: str, values: pd.Series, known: pd.Index, what: str, *, optional: bool = False
    ) -> np.ndarray:
        """Report values that name no known id; returns the mask of good references."""
        present = (values != "").to_numpy()
        ok = values.isin(known).to_numpy()
        bad = present & ~ok
        self._report(bad, column, f"unknown-{what}", f"'{{value}}' is not a known {what}")
        if not optional:
            return ok
        return ok | ~present
