"""Problem tables over HTTP: JSON rows, CSV text or a zip of the problem folder, to and from
the text DataFrames :func:`allocator.build_problem` takes.

Every reading problem is an :class:`~allocator.InputIssue`, so an upload reports all of them at
once, like the CLI.
"""

from __future__ import annotations

import base64
import io
import logging
import tomllib
import zipfile
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from allocator import InputIssue, ProblemValidationError
from allocator.problem import FILES
from allocator.reading import read_table

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.toml"

#: Stored form of a table: column names and the cells in Parquet (or, as stored before, rows
#: of cells).
StoredTable = dict[str, Any]


def _cell(value: Any) -> str | None:
    """Text of a JSON scalar as a CSV cell would hold it; ``None`` for non-scalars."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return None


def csv_text_to_frame(name: str, text: str, issues: list[InputIssue]) -> pd.DataFrame | None:
    """Read CSV text as text only, as a problem folder's files are read."""
    try:
        return read_table(text.encode("utf-8"), name)
    except ProblemValidationError as exc:
        issues += exc.issues
        return None


def json_to_frame(name: str, value: Any, issues: list[InputIssue]) -> pd.DataFrame | None:
    """One file given in JSON: a list of row objects, CSV text, or ``{"columns", "rows"}``."""
    if isinstance(value, str):
        return csv_text_to_frame(name, value, issues)
    if isinstance(value, Mapping) and set(value) == {"columns", "rows"}:
        columns, rows = value["columns"], value["rows"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            issues.append(InputIssue(name, None, None, "bad-table", "'columns' must be a list of names"))
            return None
        if not isinstance(rows, list):
            issues.append(InputIssue(name, None, None, "bad-table", "'rows' must be a list of lists"))
            return None
        records = []
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(columns):
                issues.append(InputIssue(name, i + 2, None, "bad-row",
                                         f"a row must be a list of {len(columns)} values"))
                continue
            records.append(dict(zip(columns, row)))
        value = records
        if any(i.file == name for i in issues):
            return None
    if not isinstance(value, list):
        issues.append(InputIssue(name, None, None, "bad-table",
                                 "a file is a list of row objects, CSV text, or {columns, rows}"))
        return None
    columns: dict[str, None] = {}
    cleaned: list[dict[str, str]] = []
    ok = True
    for i, row in enumerate(value):
        if not isinstance(row, Mapping):
            issues.append(InputIssue(name, i + 2, None, "bad-row", "each row must be an object of column: value"))
            ok = False
            continue
        out: dict[str, str] = {}
        for column, cell in row.items():
            text = _cell(cell)
            if text is None:
                issues.append(InputIssue(name, i + 2, str(column), "bad-cell",
                                         "a cell must be text, a number, true/false or null"))
                ok = False
                continue
            columns.setdefault(str(column), None)
            out[str(column)] = text
        cleaned.append(out)
    if not ok:
        return None
    frame = pd.DataFrame(cleaned, columns=list(columns), dtype=object)
    return frame.fillna("").astype(str)


def settings_from_toml(text: str, issues: list[InputIssue]) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        issues.append(InputIssue(SETTINGS_FILE, None, None, "invalid-toml", str(exc)))
        return None


def tables_from_zip(data: bytes, max_bytes: int, issues: list[InputIssue]) -> tuple[dict[str, pd.DataFrame], dict[str, Any] | None]:
    """The CSV files and ``settings.toml`` of a zipped problem folder.

    Files may sit at the top of the archive or in one folder; hidden files and ``__MACOSX``
    entries are skipped.
    """
    tables: dict[str, pd.DataFrame] = {}
    settings: dict[str, Any] | None = None
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        issues.append(InputIssue("upload.zip", None, None, "bad-zip", f"not a readable zip file: {exc}"))
        return tables, settings
    with archive:
        entries = [i for i in archive.infolist() if not i.is_dir()
                   and not any(part.startswith((".", "__MACOSX")) for part in PurePosixPath(i.filename).parts)]
        if sum(i.file_size for i in entries) > max_bytes:
            issues.append(InputIssue("upload.zip", None, None, "too-large",
                                     f"the files unpack to more than {max_bytes} bytes"))
            return tables, settings
        seen: dict[str, str] = {}
        for info in entries:
            name = PurePosixPath(info.filename).name
            if name in seen:
                issues.append(InputIssue(name, None, None, "duplicate-file",
                                         f"the zip holds '{seen[name]}' and '{info.filename}'"))
                continue
            seen[name] = info.filename
            try:
                raw = archive.read(info)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError) as exc:
                issues.append(InputIssue(name, None, None, "bad-zip", f"cannot unpack: {exc}"))
                continue
            if name.endswith(".csv"):
                try:  # the bytes as they are: the reader checks they are UTF-8
                    tables[name] = read_table(raw, name)
                except ProblemValidationError as exc:
                    issues += exc.issues
            elif name == SETTINGS_FILE:
                try:
                    settings = settings_from_toml(raw.decode("utf-8-sig"), issues)
                except UnicodeDecodeError as exc:
                    issues.append(InputIssue(name, None, None, "not-utf8", f"the file is not UTF-8 text: {exc}"))
            else:
                issues.append(InputIssue(name, None, None, "unknown-file",
                                         f"not part of the problem format ({', '.join(FILES)}, {SETTINGS_FILE})"))
    if not tables and not any(i.rule == "bad-zip" for i in issues):
        issues.append(InputIssue("upload.zip", None, None, "no-tables", "the zip holds no CSV files"))
    return tables, settings


def store_tables(tables: Mapping[str, pd.DataFrame]) -> dict[str, StoredTable]:
    """Tables as JSON: ``{file: {"columns": [...], "parquet": "..."}}``, the cells as text in
    Parquet (zstd), base64 (national-30k-scores: 11 MB in 0.9 s, read back in 0.4 s; as lists
    of cells it was 326 MB in 26 s, at a peak of 4.7 GiB)."""
    return {name: {"columns": [str(c) for c in frame.columns], "parquet": _parquet_text(frame)}
            for name, frame in tables.items()}


def _parquet_text(frame: pd.DataFrame) -> str:
    # Categoricals (as read) keep their codes: no string per cell. Columns are named by
    # position, as a table's names may repeat.
    text = pd.DataFrame({str(i): c if isinstance(c.dtype, pd.CategoricalDtype) else c.fillna("").astype(str)
                         for i, (_, c) in enumerate(frame.items())})
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(text, preserve_index=False), out, compression="zstd")
    return base64.b64encode(out.getvalue()).decode("ascii")


def load_tables(stored: Mapping[str, StoredTable]) -> dict[str, pd.DataFrame]:
    """The inverse of :func:`store_tables`; also reads tables stored as ``"rows"`` of cells,
    as they were before."""
    out = {}
    for name, table in stored.items():
        if "parquet" in table:
            frame = pq.read_table(io.BytesIO(base64.b64decode(table["parquet"]))).to_pandas()
            frame.columns = table["columns"]
        elif table["rows"]:
            frame = pd.DataFrame(table["rows"], columns=table["columns"], dtype=object).astype(str)
        else:
            frame = pd.DataFrame({c: pd.Series(dtype=str) for c in table["columns"]})
        out[name] = frame
    return out


def rows_frame(rows: list[dict[str, str]], columns: list[str]) -> pd.DataFrame:
    """A text DataFrame of pins or exclusions (empty with its columns when there are none)."""
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=str) for c in columns})
    return pd.DataFrame([{c: str(r.get(c, "") or "") for c in columns} for r in rows], columns=columns)


def frame_records(frame: pd.DataFrame | None, columns: list[str]) -> list[dict[str, str]]:
    """Rows of a text table as dicts over ``columns`` (missing columns read as empty)."""
    if frame is None or frame.empty:
        return []
    present = [c for c in columns if c in frame.columns]
    out = frame[present].fillna("").astype(str)
    for c in columns:
        if c not in out.columns:
            out[c] = ""
    return out[columns].to_dict("records")
