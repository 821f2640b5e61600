"""The immutable problem-data layer: a validated placement round.

A :class:`Problem` is built from raw tables (a problem folder on disk, JSON over HTTP, or tables
a simulation makes) by :func:`build_problem`, which checks every rule of the input contract and
raises :class:`~allocator.errors.ProblemValidationError` listing all issues at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from .columns import TEXT, TableReader, isin_text, text_codes, with_python_text
from .composition import age_at, case_attributes
from .errors import InputIssue, ProblemValidationError
from .settings import Settings

CATEGORIES = ("family", "single", "unaccompanied_minor", "resettlement")
FILES = (
    "municipalities.csv",
    "cases.csv",
    "persons.csv",
    "dwellings.csv",
    "scores.csv",
    "exclusions.csv",
    "pins.csv",
)
REQUIRED_FILES = ("municipalities.csv", "cases.csv", "persons.csv")
CAPACITY_PREFIX = "capacity_"


def positions(index: pd.Index, ids: pd.Series) -> np.ndarray:
    """Position in ``index`` of each of ``ids`` (-1 where absent); for categorical ids, one
    lookup per distinct id."""
    if isinstance(ids.dtype, pd.CategoricalDtype):
        return index.get_indexer(ids.cat.categories)[ids.cat.codes.to_numpy()]
    return index.get_indexer(ids)


@dataclass(frozen=True, eq=False)
class Problem:
    """One validated placement round. Treat every table as read-only.

    Attributes
    ----------
    municipalities
        Indexed by ``municipality_id``: ``name``, ``resolution_persons``,
        ``resolution_minors``, ``population``, ``county_id`` and ``capacity_<service>``.
    cases
        Indexed by ``case_id``: input columns plus the derived ``size``, ``adults``,
        ``children``, ``minors``, ``single_adult``, ``bedrooms``, ``wait_days``, ``urgency``,
        ``long_waiting`` and ``use_<service>``.
    persons
        ``person_id``, ``case_id``, ``age``.
    dwellings
        Indexed by ``dwelling_id``: ``municipality_id``, ``bedrooms``, ``max_occupants``,
        ``step_free``, ``shared``, ``available_from``, ``free`` (available by ``as_of``);
        ``None`` when housing is not modelled.
    scores, exclusions, pins
        Long tables keyed by ``case_id`` and ``municipality_id`` (empty when not given).
    digest
        SHA-256 of the input tables and settings: what produced a result.
    """

    settings: Settings
    municipalities: pd.DataFrame
    cases: pd.DataFrame
    persons: pd.DataFrame
    dwellings: pd.DataFrame | None
    scores: pd.DataFrame
    exclusions: pd.DataFrame
    pins: pd.DataFrame
    services: tuple[str, ...]
    digest: str
    origin: str = "tables"
    raw: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def housing_modelled(self) -> bool:
        return self.dwellings is not None

    @property
    def has_scores(self) -> bool:
        return not self.scores.empty

    @cached_property
    def score_matrix(self) -> np.ndarray:
        """Supplied scores as a cases x municipalities array (rows in the order of ``cases``,
        columns in that of ``municipalities``; 0 where no score is given)."""
        out = np.zeros((len(self.cases), len(self.municipalities)))
        if self.has_scores:
            out[positions(self.cases.index, self.scores["case_id"]),
                positions(self.municipalities.index, self.scores["municipality_id"])] = self.scores["score"].to_numpy()
        return out

    @cached_property
    def free_dwellings(self) -> pd.DataFrame | None:
        if self.dwellings is None:
            return None
        return self.dwellings[self.dwellings["free"]]

    def describe(self) -> dict[str, int]:
        return {
            "municipalities": len(self.municipalities),
            "cases": len(self.cases),
            "persons": len(self.persons),
            "dwellings": 0 if self.dwellings is None else len(self.dwellings),
            "free_dwellings": 0 if self.free_dwellings is None else len(self.free_dwellings),
            "scores": len(self.scores),
            "exclusions": len(self.exclusions),
            "pins": len(self.pins),
        }

    def with_settings(self, settings: Settings) -> "Problem":
        """The same round under other settings (derived columns follow ``as_of`` and rules)."""
        return build_problem(self.raw_tables(), settings, origin=self.origin)

    def with_pins_and_exclusions(
        self, pins: pd.DataFrame | None = None, exclusions: pd.DataFrame | None = None
    ) -> "Problem":
        """The same round with pins and/or exclusions replaced (validated again)."""
        tables = self.raw_tables()
        if pins is not None:
            tables["pins.csv"] = pins.astype(str)
        if exclusions is not None:
            tables["exclusions.csv"] = exclusions.astype(str)
        return build_problem(tables, self.settings, origin=self.origin)

    def raw_tables(self) -> dict[str, pd.DataFrame]:
        """The input tables as given (text), e.g. to write the problem back as a folder."""
        return dict(self.raw)


def _canonical_digest(
    tables: dict[str, pd.DataFrame],
    settings: Settings,
    codes: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] | None = None,
) -> str:
    """SHA-256 of every table and of the settings. A table is hashed as its name, its number of
    rows and its columns, then per column its distinct cells (sorted) and each row's index into
    them: the cells in order, without hashing millions of texts one by one
    (national-30k-scores, 10.7 million score rows: 0.24 s, where pandas' hash of each row took
    1.3-1.5 s and writing the tables out as CSV took seconds).

    ``codes``: each table's factorised columns (as :func:`_as_text` gives them), where known;
    the others are factorised here, so the digest is the same either way.
    """
    codes = codes or {}
    sha = hashlib.sha256()
    for name in sorted(tables):
        table = tables[name]
        table_codes = codes.get(name, {})
        sha.update(json.dumps([name, len(table), [str(c) for c in table.columns]]).encode())
        for i, column in enumerate(table.columns):
            if column in table_codes:
                column_codes, uniques = table_codes[column]
            else:
                _, column_codes, uniques = text_codes(table.iloc[:, i])
            column_codes, distinct = _sorted_codes(column_codes, uniques)
            sha.update(json.dumps(distinct.tolist()).encode())
            sha.update(np.ascontiguousarray(column_codes, dtype=np.int32).tobytes())
    sha.update(json.dumps(settings.model_dump(mode="json"), sort_keys=True).encode())
    return sha.hexdigest()


def _sorted_codes(codes: np.ndarray, uniques: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same cells as codes into their distinct texts in sorted order: one form for equal
    cells, whatever order (or unused or repeated entries) the factorisation gave ``uniques``."""
    texts = np.asarray(uniques, dtype=object)
    used = np.flatnonzero(np.bincount(codes, minlength=len(texts)))
    if len(used) == len(texts) and (texts[1:] > texts[:-1]).all():
        return codes, texts  # sorted already, as ids often are: no sort and no copy
    order = used[np.argsort(texts[used], kind="stable")]
    ordered = texts[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    rank = np.zeros(len(texts), dtype=np.int32)
    rank[order] = np.cumsum(first) - 1
    return rank[codes], ordered[first]


def _as_text(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The table as text, missing cells as ``""`` (``table.fillna("").astype(str)``), and the
    codes of each column (:func:`~allocator.columns.text_codes`), which the checks reuse.

    Columns that already are text without missing cells are kept as they are (no copy).
    """
    if not table.columns.is_unique:
        return table.fillna("").astype(str), {}
    out = table.copy(deep=False)
    codes = {}
    for column in table.columns:
        values = table[column]
        text, column_codes, uniques = text_codes(values)
        if text is not values:
            out[column] = text
        codes[column] = (column_codes, uniques)
    return out, codes


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _places_left(pins: pd.DataFrame, dwellings: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per municipality, its free dwellings, each repeated once per place the pins to them leave
    (one for a private dwelling, one per occupant for a shared flat)."""
    free = dwellings[dwellings["free"]]
    places = pd.Series(np.where(free["shared"], free["max_occupants"], 1), index=free.index)
    taken = pins.loc[pins["dwelling_id"] != "", "dwelling_id"].value_counts()
    left = (places - taken.reindex(free.index).fillna(0)).clip(lower=0).astype(int)
    free = free.loc[free.index.repeat(left.to_numpy())]
    return {str(m): group for m, group in free.groupby("municipality_id")}


def _fitting(cases: pd.DataFrame, places: pd.DataFrame | None) -> np.ndarray:
    """Which of ``places`` (one municipality's) fit each case (cases x places): step-free if
    needed, and a shared flat for one adult or enough bedrooms and occupants."""
    if places is None:
        return np.zeros((len(cases), 0), dtype=bool)
    private_fits = (places["bedrooms"].to_numpy() >= cases["bedrooms"].to_numpy()[:, None]) & \
        (places["max_occupants"].to_numpy() >= cases["size"].to_numpy()[:, None])
    fits = np.where(places["shared"].to_numpy(), cases["single_adult"].to_numpy()[:, None], private_fits)
    return fits & (places["step_free"].to_numpy() | ~cases["needs_step_free"].to_numpy(dtype=bool)[:, None])


def _all_housed(fits: np.ndarray) -> bool:
    """Can every case (row) have a place (column) of its own?"""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    if fits.shape[1] < fits.shape[0]:
        return False
    matched = maximum_bipartite_matching(csr_matrix(fits.astype(np.int8)), perm_type="column")
    return bool((matched >= 0).all())


@with_python_text
def build_problem(
    tables: dict[str, pd.DataFrame], settings: Settings | None = None, *, origin: str = "tables"
) -> Problem:
    """Validate raw text tables (file name -> DataFrame of strings) and build a :class:`Problem`.

    Raises
    ------
    ProblemValidationError
        With every issue found, each naming file, row, column and rule.
    """
    settings = settings or Settings()
    texts = {name: _as_text(df) for name, df in tables.items()}
    tables = {name: table for name, (table, _) in texts.items()}
    issues: list[InputIssue] = []
    unknown = sorted(set(tables) - set(FILES))
    for name in unknown:
        issues.append(InputIssue(name, None, None, "unknown-file", "not part of the problem format"))
    for name in REQUIRED_FILES:
        if name not in tables:
            issues.append(InputIssue(name, None, None, "missing-file", "required file is missing"))
    if any(i.rule == "missing-file" for i in issues):
        raise ProblemValidationError(issues)

    checker = _Checker(tables, settings, issues, {name: codes for name, (_, codes) in texts.items()})
    problem = checker.run()
    if issues:
        raise ProblemValidationError(issues)
    assert problem is not None
    return replace(problem, origin=origin, raw=tables)


class _Checker:
    """Runs every input rule; each ``_rule`` method reports into the shared issue list."""

    def __init__(self, tables: dict[str, pd.DataFrame], settings: Settings, issues: list[InputIssue],
                 codes: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] | None = None):
        self.tables = tables
        self.settings = settings
        self.issues = issues
        self.codes = codes or {}
        self._readers: dict[str, TableReader] = {}

    def reader(self, name: str) -> TableReader:
        """The reader of one table; kept, so each column is factorised once."""
        if name not in self._readers:
            self._readers[name] = TableReader(name, self.tables[name], self.issues,
                                              self.codes.get(name))
        return self._readers[name]

    def run(self) -> Problem | None:
        municipalities, services = self.municipalities()
        cases = self.cases(municipalities.index)
        persons = self.persons(cases)
        dwellings = self.dwellings(municipalities.index) if "dwellings.csv" in self.tables else None
        scores = self.pairs("scores.csv", cases.index, municipalities.index, ["score"])
        exclusions = self.pairs("exclusions.csv", cases.index, municipalities.index, ["reason"])
        pins = self.pairs("pins.csv", cases.index, municipalities.index, ["dwelling_id"])
        if self.issues:
            return None

        attributes = case_attributes(cases, persons, self.settings, services)
        cases = cases.join(attributes)
        self.composition_rules(cases)
        if dwellings is not None:
            self.fits_some_dwelling(cases, dwellings)
        self.pin_rules(pins, exclusions, cases, municipalities, dwellings, services)
        if self.issues:
            return None
        digest = _canonical_digest(self.tables, self.settings, self.codes)
        return Problem(
            settings=self.settings,
            municipalities=municipalities,
            cases=cases,
            persons=persons,
            dwellings=dwellings,
            scores=scores.assign(score=scores["score"].astype(float)) if len(scores) else scores,
            exclusions=exclusions,
            pins=pins,
            services=tuple(services),
            digest=digest,
        )

    # -- municipalities.csv -------------------------------------------------------------
    def municipalities(self) -> tuple[pd.DataFrame, list[str]]:
        r = self.reader("municipalities.csv")
        r.require_columns(["municipality_id", "name", "resolution_persons"])
        ids = r.text("municipality_id")
        r.unique("municipality_id", ids)
        out = pd.DataFrame(index=pd.Index(ids, name="municipality_id"))
        out["name"] = r.text("name").to_numpy()
        out["resolution_persons"] = r.integer("resolution_persons", minimum=0).to_numpy()
        out["resolution_minors"] = r.integer("resolution_minors", minimum=0, default=0).to_numpy()
        out["population"] = (
            r.integer("population", minimum=0).to_numpy() if r.has("population") else pd.NA
        )
        out["county_id"] = r.text("county_id", required=False).to_numpy()
        above = (out["resolution_minors"] > out["resolution_persons"]).fillna(False).to_numpy()
        for row in r.rows[above]:
            r.add(int(row), "resolution_minors", "minors-above-persons",
                  "unaccompanied minors are part of resolution_persons and cannot exceed it")
        services = []
        for column in r.raw.columns:
            if not column.startswith(CAPACITY_PREFIX):
                continue
            service = column[len(CAPACITY_PREFIX):]
            if service not in self.settings.services:
                r.add(1, column, "service-without-ages",
                      f"no age range for service '{service}' in settings [services]; "
                      f"add e.g. {service} = [0, 120]")
                continue
            services.append(service)
            out[column] = r.integer(column, minimum=0).to_numpy()
        return out, services

    # -- cases.csv ------------------------------------------------------------------------
    def cases(self, municipality_ids: pd.Index) -> pd.DataFrame:
        r = self.reader("cases.csv")
        r.require_columns(["case_id", "residence_date"])
        ids = r.text("case_id")
        r.unique("case_id", ids)
        out = pd.DataFrame(index=pd.Index(ids, name="case_id"))
        out["residence_date"] = r.date("residence_date").to_numpy()
        out["category"] = r.choice("category", CATEGORIES).to_numpy()
        for column in ("reception_municipality_id", "tie_municipality_id"):
            values = r.text(column, required=False)
            r.reference(column, municipality_ids, "municipality", optional=True)
            out[column] = values.to_numpy()
        out["needs_step_free"] = r.boolean("needs_step_free").to_numpy()
        future = (out["residence_date"] > pd.Timestamp(self.settings.as_of)).to_numpy()
        resettlement = (out["category"] == "resettlement").to_numpy()
        for row in r.rows[future & ~resettlement]:
            r.add(int(row), "residence_date", "date-after-as-of",
                  f"residence decision after as_of {self.settings.as_of}")
        return out

    # -- persons.csv ----------------------------------------------------------------------
    def persons(self, cases: pd.DataFrame) -> pd.DataFrame:
        r = self.reader("persons.csv")
        r.require_columns(["person_id", "case_id"])
        if not (r.has("age") or r.has("birth_date")):
            r.add(1, "age", "missing-column", "either 'age' or 'birth_date' is required")
        ids = r.text("person_id")
        r.unique("person_id", ids)
        case_ids = r.text("case_id")
        r.reference("case_id", cases.index, "case")
        ages = pd.Series(pd.NA, index=r.raw.index, dtype="Int64")
        if r.has("age"):
            given = (r._cells("age") != "").to_numpy()
            ages[given] = r.integer("age", minimum=0)[given]
        if r.has("birth_date"):
            born = r.date("birth_date", required=False)
            fill = ages.isna().to_numpy() & born.notna().to_numpy()
            ages[fill] = age_at(born[fill], pd.Timestamp(self.settings.as_of)).astype("Int64")
        neither = ages.isna().to_numpy()
        if r.has("age") or r.has("birth_date"):
            for row in r.rows[neither]:
                r.add(int(row), "age", "required", "each person needs an age or a birth_date")
        out = pd.DataFrame({"person_id": ids, "case_id": case_ids, "age": ages})
        without = ~isin_text(cases.index, case_ids)
        rows = np.arange(len(cases)) + 2
        for row, case_id in zip(rows[without], cases.index[without]):
            self.issues.append(InputIssue("cases.csv", int(row), "case_id", "case-without-persons",
                                          f"case '{case_id}' has no member in persons.csv"))
        return out

    # -- dwellings.csv --------------------------------------------------------------------
    def dwellings(self, municipality_ids: pd.Index) -> pd.DataFrame:
        r = self.reader("dwellings.csv")
        r.require_columns(["dwelling_id", "municipality_id", "bedrooms", "max_occupants"])
        ids = r.text("dwelling_id")
        r.unique("dwelling_id", ids)
        out = pd.DataFrame(index=pd.Index(ids, name="dwelling_id"))
        municipality = r.text("municipality_id")
        r.reference("municipality_id", municipality_ids, "municipality")
        out["municipality_id"] = municipality.to_numpy()
        out["bedrooms"] = r.integer("bedrooms", minimum=1).to_numpy()
        out["max_occupants"] = r.integer("max_occupants", minimum=1).to_numpy()
        out["step_free"] = r.boolean("step_free").to_numpy()
        out["shared"] = r.boolean("shared").to_numpy()
        available = r.date("available_from", required=False)
        out["available_from"] = available.to_numpy()
        as_of = pd.Timestamp(self.settings.as_of)
        out["free"] = (available.isna() | (available <= as_of)).to_numpy()
        return out

    # -- scores / exclusions / pins ---------------------------------------------------------
    def pairs(
        self, name: str, case_ids: pd.Index, municipality_ids: pd.Index, extra: list[str]
    ) -> pd.DataFrame:
        columns = ["case_id", "municipality_id", *extra]
        if name not in self.tables:
            return _empty(columns)
        r = self.reader(name)
        required = ["case_id", "municipality_id"] + (["score"] if name == "scores.csv" else [])
        r.require_columns(required)
        for column in ("case_id", "municipality_id"):
            r.require(column)
        r.reference("case_id", case_ids, "case")
        r.reference("municipality_id", municipality_ids, "municipality")
        # Ids as categories of their codes: finding the case and municipality of millions of
        # pairs then looks up each distinct id once (see ``positions``).
        case_codes, case_uniques = r.codes("case_id")
        muni_codes, muni_uniques = r.codes("municipality_id")
        out = pd.DataFrame({"case_id": pd.Categorical.from_codes(case_codes, case_uniques),
                            "municipality_id": pd.Categorical.from_codes(muni_codes, muni_uniques)})
        if name == "scores.csv":
            out["score"] = r.number("score").to_numpy()
        else:
            out = out.astype(TEXT)
            if name == "exclusions.csv":
                out["reason"] = r.text("reason", required=False).to_numpy()
            else:
                out["dwelling_id"] = r.text("dwelling_id", required=False).to_numpy()
        # Duplicates among keys from the codes: two integers per row, not strings; counted
        # first where the keys are few enough, as most files have none.
        key = case_codes.astype(np.int64)
        if name != "pins.csv":
            key = key * max(len(muni_uniques), 1) + muni_codes
        if len(key) and (key.max() >= 10 * len(key) or np.bincount(key).max() > 1):
            what = "case" if name == "pins.csv" else "(case_id, municipality_id) pair"
            dup = pd.Series(key).duplicated().to_numpy() & (case_uniques != "")[case_codes]
            for row, case in zip(r.rows[dup], case_uniques[case_codes[dup]]):
                r.add(int(row), "case_id", "duplicate-id", f"{what} for '{case}' appears more than once")
        return out

    # -- rules across files -----------------------------------------------------------------
    def composition_rules(self, cases: pd.DataFrame) -> None:
        rows = np.arange(len(cases)) + 2
        em = (cases["category"] == "unaccompanied_minor").to_numpy()
        adult_in_em = em & (cases["adults"] > 0).to_numpy()
        for row, case_id in zip(rows[adult_in_em], cases.index[adult_in_em]):
            self.issues.append(InputIssue("cases.csv", int(row), "category", "adult-in-minor-case",
                                          f"case '{case_id}' is an unaccompanied minor case but has "
                                          f"a member aged {self.settings.urgency.adult_age} or more"))
        single = (cases["category"] == "single").to_numpy() & ~cases["single_adult"].to_numpy()
        for row, case_id in zip(rows[single], cases.index[single]):
            self.issues.append(InputIssue("cases.csv", int(row), "category", "single-not-one-adult",
                                          f"case '{case_id}' is 'single' but is not one adult"))

    def fits_some_dwelling(self, cases: pd.DataFrame, dwellings: pd.DataFrame) -> None:
        """A case that no dwelling in the file could ever house is an input error."""
        private = dwellings[~dwellings["shared"]]
        rows = np.arange(len(cases)) + 2
        size = cases["size"].to_numpy()
        rooms = cases["bedrooms"].to_numpy()
        fits = np.zeros(len(cases), dtype=bool)
        if len(private):
            order = private.sort_values("bedrooms")
            # Most occupants among dwellings with at least b bedrooms, for each b.
            best = order.groupby("bedrooms")["max_occupants"].max().sort_index(ascending=False).cummax()
            levels = best.index.to_numpy()[::-1]
            occupants = best.to_numpy()[::-1]
            pos = np.searchsorted(levels, rooms, side="left")
            has = pos < len(levels)
            fits[has] = occupants[pos[has]] >= size[has]
        if dwellings["shared"].any():
            fits |= cases["single_adult"].to_numpy()
        for row, case_id, n, b in zip(rows[~fits], cases.index[~fits], size[~fits], rooms[~fits]):
            self.issues.append(InputIssue("cases.csv", int(row), "case_id", "fits-no-dwelling",
                                          f"case '{case_id}' ({n} persons, {b} bedrooms) fits no "
                                          "dwelling in dwellings.csv"))

    def pin_rules(
        self,
        pins: pd.DataFrame,
        exclusions: pd.DataFrame,
        cases: pd.DataFrame,
        municipalities: pd.DataFrame,
        dwellings: pd.DataFrame | None,
        services: list[str],
    ) -> None:
        if pins.empty:
            return
        rows = np.arange(len(pins)) + 2

        def add(row: int | None, column: str | None, rule: str, message: str) -> None:
            self.issues.append(InputIssue("pins.csv", row, column, rule, message))

        excluded = set(zip(exclusions["case_id"], exclusions["municipality_id"]))
        places = _places_left(pins, dwellings) if dwellings is not None else None
        unhoused = False
        for row, case, muni, dwelling in zip(rows, pins["case_id"], pins["municipality_id"],
                                              pins["dwelling_id"]):
            if (case, muni) in excluded:
                add(int(row), "municipality_id", "pin-excluded",
                    f"case '{case}' is pinned to '{muni}' but that pair is in exclusions.csv")
            if dwelling == "":
                # The solver houses it in a free dwelling there: one must fit (found only when the
                # model was built before, so a re-solve failed instead of the pin being refused).
                if places is not None and not _fitting(cases.loc[[case]], places.get(muni)).any():
                    add(int(row), "municipality_id", "pin-without-dwelling",
                        f"case '{case}' fits no free dwelling in '{muni}'")
                    unhoused = True
                continue
            if dwellings is None or dwelling not in dwellings.index:
                add(int(row), "dwelling_id", "unknown-dwelling", f"'{dwelling}' is not a known dwelling")
                continue
            d = dwellings.loc[dwelling]
            c = cases.loc[case]
            if d["municipality_id"] != muni:
                add(int(row), "dwelling_id", "dwelling-elsewhere",
                    f"dwelling '{dwelling}' is in '{d['municipality_id']}', not '{muni}'")
            if not d["free"]:
                add(int(row), "dwelling_id", "dwelling-not-free",
                    f"dwelling '{dwelling}' is not free by {self.settings.as_of}")
            if c["needs_step_free"] and not d["step_free"]:
                add(int(row), "dwelling_id", "step-free", f"case '{case}' needs a step-free dwelling")
            if d["shared"]:
                if not c["single_adult"]:
                    add(int(row), "dwelling_id", "shared-single-adults",
                        f"dwelling '{dwelling}' is shared; case '{case}' is not one adult")
            elif c["bedrooms"] > d["bedrooms"] or c["size"] > d["max_occupants"]:
                add(int(row), "dwelling_id", "dwelling-too-small",
                    f"case '{case}' needs {c['bedrooms']} bedrooms for {c['size']} persons")
        if places is not None and not unhoused:
            # Each fits alone; together they need a dwelling each (or a place in a shared flat).
            loose = pins[pins["dwelling_id"] == ""]
            for muni, group in loose.groupby("municipality_id"):
                if not _all_housed(_fitting(cases.loc[group["case_id"]], places.get(muni))):
                    add(None, "municipality_id", "pins-without-dwellings",
                        f"the {len(group)} cases pinned to '{muni}' without a dwelling do not all fit "
                        "its free dwellings at once")
        with_dwelling = pins[pins["dwelling_id"] != ""]
        if dwellings is not None and len(with_dwelling):
            per = with_dwelling.groupby("dwelling_id").size()
            limit = dwellings["max_occupants"].where(dwellings["shared"], 1).reindex(per.index)
            for dwelling in per.index[(per > limit.fillna(np.inf)).to_numpy()]:
                add(None, "dwelling_id", "dwelling-overfull",
                    f"dwelling '{dwelling}' is pinned to more cases than it takes")

        load = cases.loc[pins["case_id"], ["size", "minors"] + [f"use_{s}" for s in services]]
        load = load.groupby(pins["municipality_id"].to_numpy()).sum()
        for muni, used in load.iterrows():
            m = municipalities.loc[muni]
            checks = [("resolution_persons", used["size"]), ("resolution_minors", used["minors"])]
            checks += [(f"capacity_{s}", used[f"use_{s}"]) for s in services]
            for column, amount in checks:
                if amount > m[column]:
                    add(None, "municipality_id", "pins-over-capacity",
                        f"pins to '{muni}' use {amount} of {column} but it has {m[column]}")
