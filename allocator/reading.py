"""Reading and writing problem folders: CSV files with a header row plus ``settings.toml``."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from .errors import InputIssue, ProblemValidationError
from .problem import FILES, Problem, build_problem
from .settings import Settings

SETTINGS_FILE = "settings.toml"


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV as text only, so ids keep their leading zeros and nothing is guessed."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)


def settings_from_mapping(data: dict[str, Any], file: str = SETTINGS_FILE) -> Settings:
    """Validate settings, reporting every bad field as an :class:`InputIssue`."""
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        issues = [
            InputIssue(file, None, ".".join(str(p) for p in err["loc"]) or None, "invalid-setting",
                       err["msg"])
            for err in exc.errors()
        ]
        raise ProblemValidationError(issues) from None


def read_settings(folder: Path) -> Settings:
    path = folder / SETTINGS_FILE
    if not path.exists():
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProblemValidationError(
            [InputIssue(SETTINGS_FILE, None, None, "invalid-toml", str(exc))]
        ) from None
    return settings_from_mapping(data)


def read_problem(folder: str | Path, settings: Settings | None = None) -> Problem:
    """Read and validate a problem folder.

    Parameters
    ----------
    folder
        A folder with ``municipalities.csv``, ``cases.csv``, ``persons.csv`` and optionally
        ``dwellings.csv``, ``scores.csv``, ``exclusions.csv``, ``pins.csv``, ``settings.toml``.
    settings
        Replaces the folder's ``settings.toml`` when given.

    Raises
    ------
    ProblemValidationError
        Listing every issue in every file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ProblemValidationError(
            [InputIssue(str(folder), None, None, "not-a-folder", "problem folder not found")]
        )
    issues: list[InputIssue] = []
    try:
        settings = settings or read_settings(folder)
    except ProblemValidationError as exc:
        issues += exc.issues
        settings = Settings()
    tables: dict[str, pd.DataFrame] = {}
    for name in FILES:
        path = folder / name
        if not path.exists():
            continue
        try:
            tables[name] = read_table(path)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            issues.append(InputIssue(name, None, None, "unreadable-csv", str(exc).strip()))
    try:
        problem = build_problem(tables, settings, origin=str(folder))
    except ProblemValidationError as exc:
        raise ProblemValidationError(issues + exc.issues) from None
    if issues:
        raise ProblemValidationError(issues)
    return problem


def write_problem(problem_tables: dict[str, pd.DataFrame], folder: str | Path,
                  settings: dict[str, Any] | None = None) -> Path:
    """Write raw tables (and optionally settings) as a problem folder."""
    import tomli_w  # local: only writers need it

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in problem_tables.items():
        table.to_csv(folder / name, index=False)
    if settings is not None:
        (folder / SETTINGS_FILE).write_text(tomli_w.dumps(settings), encoding="utf-8")
    return folder
