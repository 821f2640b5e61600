"""Typed reading of one raw (all-text) input table, collecting every issue instead of stopping
at the first."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import ParamSpec, TypeVar

import numpy as np
import pandas as pd

from .errors import InputIssue

P = ParamSpec("P")
R = TypeVar("R")

#: Text as pandas holds it without pyarrow: Python strings. The solver makes and looks up
#: small text indexes all the time (ids, column names); with arrow strings, pandas' default
#: once pyarrow is installed, national-2k's level 1 took 8% longer (mean of 32 seeds, 0.80-0.85
#: s against 0.87-0.93 s).
TEXT = pd.StringDtype("python", na_value=np.nan)


def with_python_text(func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func`` with pandas making new text as :data:`TEXT` (the same values and dtype
    ``"str"``; only the storage differs)."""
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with pd.option_context("mode.string_storage", "python"):
            return func(*args, **kwargs)
    return wrapper

#: Whole numbers in the input (persons, capacities, ages, bedrooms) are no larger than this.
MAX_INTEGER = 1_000_000_000

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def text_codes(values: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """A column as text with missing cells as ``""`` (``values.fillna("").astype(str)``), and
    its cells factorised.

    Returns
    -------
    text, codes, uniques
        ``text`` is ``values`` itself when it already is text without missing cells, or a
        categorical of texts (as :func:`~allocator.reading.read_table` gives them);
        ``uniques[codes]`` are its cells, ``uniques`` an object array of distinct texts.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        uniques = np.asarray(values.cat.categories.astype(str), dtype=object)
        if (codes < 0).any():  # missing cells: one more text, ""
            codes = np.where(codes < 0, len(uniques), codes)
            uniques = np.append(uniques, "")
            values = pd.Series(pd.Categorical.from_codes(codes, uniques), index=values.index,
                               name=values.name)
        return values, codes, uniques
    if not isinstance(values.dtype, pd.StringDtype):
        values = values.fillna("").astype(str)
    elif values.hasnans:
        values = values.fillna("")
    if getattr(values.dtype, "storage", None) == "pyarrow":
        codes, uniques = pd.factorize(values)  # arrow's own dictionary encoding
    else:
        # On the object array: a little faster than through the string array.
        codes, uniques = pd.factorize(values.to_numpy(dtype=object))
    if values.dtype != "str":
        values = values.astype(str)
    return values, codes, np.asarray(uniques, dtype=object)


def isin_text(values: Iterable[str], known: Iterable[str]) -> np.ndarray:
    """Mask of ``values`` found in ``known``, both as object arrays: pandas' ``isin`` on arrow
    text turns ``known`` into a Python list first (30,000 ids: 0.005 s against 0.15 s)."""
    return pd.Index(np.asarray(values, dtype=object), dtype=object).isin(np.asarray(known, dtype=object))


class TableReader:
    """Parses the columns of one raw table (strings, missing as ``""``) into typed series.

    Every method records an :class:`InputIssue` for each bad cell and returns a series in which
    bad cells are missing, so all issues of a file are found in one pass.
    """

    def __init__(self, file: str, raw: pd.DataFrame, issues: list[InputIssue],
                 raw_codes: dict[str, tuple[np.ndarray, np.ndarray]] | None = None):
        """``raw_codes``: :meth:`raw_codes` of columns already factorised, when ``raw`` is
        text without missing cells (as :func:`text_codes` returns it)."""
        self.file = file
        self.raw = raw
        self.issues = issues
        self._raw_codes: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {
            column: (codes, uniques, True) for column, (codes, uniques) in (raw_codes or {}).items()
        }
        # Per column: codes and distinct stripped texts, and whether the column as read already
        # holds exactly those texts (then it is returned as is, without a copy).
        self._codes: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {}

    @cached_property
    def rows(self) -> np.ndarray:
        """Spreadsheet row of each cell: the header is row 1."""
        return np.arange(len(self.raw)) + 2

    def add(self, row: int | None, column: str | None, rule: str, message: str) -> None:
        self.issues.append(InputIssue(self.file, row, column, rule, message))

    def has(self, column: str) -> bool:
        return column in self.raw.columns

    def require_columns(self, columns: Iterable[str]) -> bool:
        missing = [c for c in columns if c not in self.raw.columns]
        for column in missing:
            self.add(1, column, "missing-column", f"required column '{column}' is missing")
        return not missing

    def raw_codes(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """The column's cells as given (missing as ``""``), factorised.

        Returns
        -------
        codes, uniques
            ``uniques[codes]`` are the cells; ``uniques`` is an object array of distinct texts.
        """
        if column not in self._raw_codes:
            values = self.raw[column]
            text, codes, uniques = text_codes(values)
            self._raw_codes[column] = (codes, uniques, text is values)
        codes, uniques, _ = self._raw_codes[column]
        return codes, uniques

    def codes(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """The column's stripped cells, factorised (a missing column is all ``""``).

        Every check works on the distinct values and broadcasts through the codes: a column of
        millions of cells holds few distinct texts (ids, scores), so this is where the speed is.

        Returns
        -------
        codes, uniques
            ``uniques[codes]`` are the stripped cells; ``uniques`` holds each text once.
        """
        if column not in self._codes:
            if column not in self.raw.columns:
                codes = np.zeros(len(self.raw), dtype=np.intp)
                self._codes[column] = (codes, np.array([""], dtype=object), False)
            else:
                raw_codes, raw_uniques = self.raw_codes(column)
                stripped = pd.Series(raw_uniques, dtype=object).str.strip().to_numpy(dtype=object)
                # Stripping can make two texts one ("7" and " 7 "): factorise again.
                merged, uniques = pd.factorize(stripped)
                same = bool((stripped == raw_uniques).all())
                as_read = self._raw_codes[column][2] and same
                # Distinct texts that stripping left alone keep their codes.
                codes = raw_codes if same and len(uniques) == len(raw_uniques) else merged[raw_codes]
                self._codes[column] = (codes, np.asarray(uniques, dtype=object), as_read)
        codes, uniques, _ = self._codes[column]
        return codes, uniques

    def _cells(self, column: str) -> pd.Series:
        """The stripped cells as text (``""`` for missing)."""
        if column not in self.raw.columns:
            return pd.Series([""] * len(self.raw), index=self.raw.index, dtype=object)
        codes, uniques = self.codes(column)
        as_read = self.raw[column]
        if self._codes[column][2] and as_read.dtype == TEXT:
            # Nothing to strip and no missing cells: the column as read (copy-on-write).
            return as_read.copy(deep=False)
        return pd.Series(uniques[codes], index=self.raw.index, dtype=TEXT, name=column)

    def _report(self, mask: np.ndarray, column: str, rule: str, message: str) -> None:
        if not mask.any():
            return
        codes, uniques = self.codes(column)
        for row, cell in zip(self.rows[mask], uniques[codes[mask]]):
            self.add(int(row), column, rule, message.format(value=cell))

    def require(self, column: str) -> None:
        """Report the cells of ``column`` left empty."""
        self._report_distinct(self.codes(column)[1] == "", column, "required", "a value is required")

    def text(self, column: str, required: bool = True) -> pd.Series:
        if required:
            self.require(column)
        return self._cells(column)

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
        # "inf" and "1e400" are numbers to pandas, but no count: they would break the cast below.
        known = numbers.fillna(0)
        whole = numbers.notna() & np.isfinite(known) & (numbers == np.floor(known))
        bad = ~whole.to_numpy() & ~(empty & (default is not None))
        self._report(bad, column, "not-an-integer", "'{value}' is not a whole number")
        huge = (whole & (numbers.abs() > MAX_INTEGER)).to_numpy()
        self._report(huge, column, "above-maximum", f"'{{value}}' is beyond {MAX_INTEGER:,}")
        values = numbers.where(whole & ~huge)
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
        codes, uniques = self.codes(column)
        # Each distinct text once, then broadcast: same values as converting every cell.
        distinct = pd.to_numeric(pd.Series(uniques, dtype=TEXT), errors="coerce").to_numpy(dtype=float)
        self._report_distinct(np.isnan(distinct), column, "not-a-number", "'{value}' is not a number")
        # "inf" and "1e400" parse, but no plan can be priced by them.
        self._report_distinct(np.isinf(distinct), column, "not-a-number", "'{value}' is not a finite number")
        distinct = np.where(np.isinf(distinct), np.nan, distinct)
        if minimum is not None:
            below = distinct < minimum
            self._report_distinct(below, column, "below-minimum", f"'{{value}}' is below {minimum}")
            distinct = np.where(below, np.nan, distinct)
        if maximum is not None:
            above = distinct > maximum
            self._report_distinct(above, column, "above-maximum", f"'{{value}}' is above {maximum}")
            distinct = np.where(above, np.nan, distinct)
        return pd.Series(distinct[codes], index=self.raw.index,
                         name=column if column in self.raw.columns else None)

    def _report_distinct(self, bad: np.ndarray, column: str, rule: str, message: str) -> None:
        """Report the cells whose distinct (stripped) text is ``bad``: the cells are looked for
        only if one is."""
        if bad.any():
            self._report(bad[self.codes(column)[0]], column, rule, message)

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
        self, column: str, known: pd.Index, what: str, *, optional: bool = False
    ) -> np.ndarray:
        """Report cells that name no known id; returns the mask of good references."""
        codes, uniques = self.codes(column)
        known_u = isin_text(uniques, known)
        present_u = uniques != ""
        self._report_distinct(present_u & ~known_u, column, f"unknown-{what}",
                              f"'{{value}}' is not a known {what}")
        good_u = known_u if not optional else known_u | ~present_u
        return good_u[codes] if not good_u.all() else np.ones(len(codes), dtype=bool)
