"""Reading and writing problem folders: CSV files with a header row plus ``settings.toml``."""

from __future__ import annotations

import codecs
import csv
import io
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from pydantic import ValidationError

from .errors import InputIssue, ProblemValidationError
from .problem import FILES, Problem, build_problem
from .settings import Settings

SETTINGS_FILE = "settings.toml"


#: Every column is read as text, dictionary-encoded: ids and scores repeat, so a column of
#: millions of cells arrives as codes into its few distinct texts, which is how the checks work
#: on it (national-30k-scores, 10.7 million score rows: 1.2 s, where pandas' parser took 1.6 s
#: and factorising its text 1.8 s more).
_ARROW_TEXT = pa.dictionary(pa.int32(), pa.string())
#: Arrow's own pool (mimalloc) took 0.6-0.85 s to merge and convert the scores' columns in a
#: fresh process, the C library's 0.23 s.
_POOL = pa.system_memory_pool()


def read_table(source: str | Path | bytes, file: str) -> pd.DataFrame:
    """Read a CSV (a path, or the file's bytes) as text only, so ids keep their leading zeros
    and nothing is guessed.

    Columns are categoricals of their distinct texts (no cell is missing: an empty cell is
    ``""``); header names are stripped.

    Raises
    ------
    ProblemValidationError
        Naming ``file``: empty, not UTF-8, a column named twice in the header, or each row with
        more or fewer cells than the header.
    """
    header = _header(source, file)
    if not _is_utf8(source):
        # Named by row before arrow reads it: arrow cannot pass a row of the wrong length that
        # is not UTF-8 to our handler, and reports the decoding error as an ignored exception.
        raise ProblemValidationError([InputIssue(file, row, None, "unreadable-csv", "the row is not UTF-8 text")
                                      for row in _not_utf8_lines(source)])
    names = [name.strip() for name in header]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ProblemValidationError([InputIssue(file, 1, name, "duplicate-column",
                                                 "the header names this column more than once")
                                      for name in twice])
    table, bad_rows = _read_arrow(source, header, file, threads=True)
    if bad_rows:
        # Line numbers are known only to a reader on one thread: worth it for the message.
        _, bad_rows = _read_arrow(source, header, file, threads=False)
        raise ProblemValidationError([
            InputIssue(file, row.number, None, "wrong-cell-count",
                       f"the row has {row.actual_columns} cells where the header has {row.expected_columns}")
            for row in bad_rows])
    frame = table.unify_dictionaries(memory_pool=_POOL).to_pandas(memory_pool=_POOL)
    frame.columns = names
    return frame


def _read_arrow(
    source: str | Path | bytes, header: list[str], file: str, threads: bool
) -> tuple[pa.Table, list[pa_csv.InvalidRow]]:
    bad_rows: list[pa_csv.InvalidRow] = []

    def invalid_row(row: pa_csv.InvalidRow) -> str:
        bad_rows.append(row)
        return "skip"

    try:
        table = pa_csv.read_csv(
            pa.BufferReader(source) if isinstance(source, bytes) else source,
            read_options=pa_csv.ReadOptions(use_threads=threads),
            # Quoted cells may hold line breaks (pandas read them too); without this, a file of
            # more than one block (1 MB) with such cells is refused (0.1 s more on 202 MB).
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid_row),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: _ARROW_TEXT for name in header}, strings_can_be_null=False,
                quoted_strings_can_be_null=False, null_values=[]),
            memory_pool=_POOL,
        )
    except pa.ArrowInvalid as exc:
        raise ProblemValidationError(_unreadable(file, exc)) from None
    return table, bad_rows


def _unreadable(file: str, exc: pa.ArrowInvalid) -> list[InputIssue]:
    """What made arrow give up (text that is not UTF-8 is named by row before arrow reads)."""
    # Arrow's parse errors quote the row; its cells may name a person, so only the rest is told.
    return [InputIssue(file, None, None, "unreadable-csv", _ROW_TEXT.sub(r"\1", str(exc)).strip())]


#: The row's text that arrow appends to a parse error ("Expected 3 columns, got 2: <row>").
_ROW_TEXT = re.compile(r"(got \d+):.*$", re.DOTALL)


def _is_utf8(source: str | Path | bytes) -> bool:
    """Is the whole file UTF-8 text? Blocks of ASCII are skipped without decoding
    (national-30k-scores' 202 MB of scores: 0.06 s, where decoding all of it takes 0.5 s)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as stream:
            while block := stream.read(_BLOCK):
                if not block.isascii() or decoder.getstate()[0]:
                    decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


#: Bytes read at a time by :func:`_is_utf8`.
_BLOCK = 1 << 22


def _not_utf8_lines(source: str | Path | bytes) -> list[int]:
    """Numbers (from 1, the header) of the lines that are not UTF-8 text."""
    bad = []
    for number, line in enumerate(_raw_lines(source), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(number)
    return bad


def _header(source: str | Path | bytes, file: str) -> list[str]:
    try:
        first = next(csv.reader(_lines(source)), None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ProblemValidationError([InputIssue(file, 1, None, "unreadable-csv",
                                                 f"the header cannot be read: {exc}")]) from None
    if not first:
        raise ProblemValidationError([InputIssue(file, None, None, "unreadable-csv",
                                                 "the file is empty: a header row is needed")])
    return first


def _lines(source: str | Path | bytes) -> Iterator[str]:
    """The file's lines as text, read one at a time (the header needs only the first)."""
    for number, line in enumerate(_raw_lines(source)):
        yield line.decode("utf-8-sig" if number == 0 else "utf-8")


def _raw_lines(source: str | Path | bytes) -> Iterator[bytes]:
    """The file's lines as bytes, read one at a time."""
    with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as stream:
        yield from stream


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
            tables[name] = read_table(path, name)
        except ProblemValidationError as exc:
            issues += exc.issues
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
