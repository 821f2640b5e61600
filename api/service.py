"""Turning stored rows into :mod:`allocator` objects and results back into JSON.

Shared by the request handlers and the worker processes; no placement logic lives here.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator import InputIssue, Problem, ProblemValidationError, Result, build_problem, verify_plan
from allocator.reading import settings_from_mapping, write_problem
from allocator.settings import Settings

from .tables import frame_records, load_tables, rows_frame

log = logging.getLogger(__name__)

PIN_COLUMNS = ["case_id", "municipality_id", "dwelling_id"]
EXCLUSION_COLUMNS = ["case_id", "municipality_id", "reason"]


def jsonable(value: Any) -> Any:
    """Plain JSON data: numpy scalars to Python, NaN and infinities to ``None``, dates to ISO."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.date, dt.datetime, pd.Timestamp)):
        return value.isoformat()
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as plain JSON data, as ``jsonable(frame.to_dict("records"))`` gives them,
    built column by column (national-30k's 26,000 placements: 0.05 s instead of 0.4 s)."""
    columns = [str(c) for c in frame.columns]
    cells = [_cells(frame.iloc[:, i]) for i in range(frame.shape[1])]
    return [dict(zip(columns, row)) for row in zip(*cells)]


def _cells(column: pd.Series) -> list[Any]:
    """A column's cells as :func:`jsonable` makes them."""
    kind = column.dtype.kind if isinstance(column.dtype, np.dtype) else "extension"
    if kind in "biu":
        return column.tolist()  # numpy integers and booleans: Python's, never missing
    if kind == "f":
        values = column.to_numpy(dtype=float)
        return [v if finite else None for v, finite in zip(values.tolist(), np.isfinite(values).tolist())]
    return [v if type(v) is str else jsonable(v) for v in column.tolist()]


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied; nested tables merge, other values replace."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def settings_json(settings: Settings) -> dict[str, Any]:
    return jsonable(settings.model_dump(mode="json"))


def plan_settings(base: Mapping[str, Any], overrides: Mapping[str, Any], max_time_limit: float) -> Settings:
    """The problem's settings with a plan's overrides, validated; issues name ``settings.toml``.

    Raises
    ------
    ProblemValidationError
        For a bad setting, or a time limit above the service's maximum.
    """
    settings = settings_from_mapping(deep_merge(base, overrides))
    if settings.solver.time_limit > max_time_limit:
        raise ProblemValidationError([InputIssue(
            "settings.toml", None, "solver.time_limit", "above-maximum",
            f"time_limit {settings.solver.time_limit:g} s is above this service's maximum of "
            f"{max_time_limit:g} s (ALLOCATOR_MAX_TIME_LIMIT)")])
    return settings


def problem_tables(stored: Mapping[str, Any], pins: list[dict[str, str]] | None,
                   exclusions: list[dict[str, str]] | None) -> dict[str, pd.DataFrame]:
    """The raw tables of a stored problem with a plan's pins and exclusions in place of its own."""
    tables = load_tables(stored)
    if pins is not None and (pins or "pins.csv" in tables):
        tables["pins.csv"] = rows_frame(pins, PIN_COLUMNS)
    if exclusions is not None and (exclusions or "exclusions.csv" in tables):
        tables["exclusions.csv"] = rows_frame(exclusions, EXCLUSION_COLUMNS)
    return tables


def build(stored: Mapping[str, Any], settings: Settings | Mapping[str, Any],
          pins: list[dict[str, str]] | None = None,
          exclusions: list[dict[str, str]] | None = None) -> Problem:
    """Validate a stored problem under settings with pins and exclusions.

    Raises
    ------
    ProblemValidationError
        Every issue, as from :func:`allocator.build_problem`.
    """
    if not isinstance(settings, Settings):
        settings = settings_from_mapping(dict(settings))
    tables = problem_tables(stored, pins, exclusions)
    try:
        return build_problem(tables, settings)
    except ProblemValidationError:
        raise
    except Exception as exc:  # the validator should report every bad input; never answer 500
        log.exception("build_problem failed on input it did not report")
        raise ProblemValidationError([InputIssue("problem", None, None, "invalid-input",
                                                 f"the input could not be read: {exc}")]) from exc


def initial_pins_and_exclusions(stored: Mapping[str, Any]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The pins and exclusions a problem came with: a new plan starts from them."""
    tables = load_tables({k: v for k, v in stored.items() if k in ("pins.csv", "exclusions.csv")})
    return (frame_records(tables.get("pins.csv"), PIN_COLUMNS),
            frame_records(tables.get("exclusions.csv"), EXCLUSION_COLUMNS))


class ProblemCache:
    """A few built problems, by run id, so explanations do not rebuild them every time."""

    def __init__(self, size: int = 4):
        self._size = size
        self._items: OrderedDict[Any, Problem] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, make) -> Problem:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        problem = make()
        with self._lock:
            self._items[key] = problem
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return problem


def verify(problem: Problem, plan: pd.DataFrame) -> list[str]:
    """Run the independent verifier on a plan (it reads a folder, so write one)."""
    with tempfile.TemporaryDirectory(prefix="allocator-verify-") as tmp:
        folder = write_problem(problem.raw_tables(), Path(tmp) / "problem", settings_json(problem.settings))
        plan_csv = Path(tmp) / "plan.csv"
        plan[["case_id", "municipality_id", "dwelling_id"]].to_csv(plan_csv, index=False)
        return verify_plan(folder, plan_csv)


def result_payload(result: Result, violations: list[str]) -> dict[str, Any]:
    """What a run stores: summary, KPIs, placements, unplaced, municipalities, verification."""
    summary = jsonable(result.to_dict())
    plan = result.plan.copy()
    plan["pinned"] = plan["pinned"].astype(bool)
    return {
        "status": summary["status"],
        "gap": summary["gap"],
        "objective": summary["objective"],
        "bound": summary["bound"],
        "kpis": summary["kpis"],
        "summary": summary,
        "verification": {"ok": not violations, "violations": violations},
        "placements": records(plan[["case_id", "municipality_id", "dwelling_id", "pinned"]]),
        "unplaced": records(result.unplaced[["case_id", "rule", "reason"]]),
        "municipalities": records(result.municipalities),
    }


def placements_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """A stored result's plan as a DataFrame (case_id, municipality_id, dwelling_id, pinned)."""
    rows = result.get("placements") or []
    frame = pd.DataFrame(rows, columns=["case_id", "municipality_id", "dwelling_id", "pinned"])
    frame[["case_id", "municipality_id", "dwelling_id"]] = (
        frame[["case_id", "municipality_id", "dwelling_id"]].fillna("").astype(str))
    frame["pinned"] = frame["pinned"].astype(bool)
    return frame
