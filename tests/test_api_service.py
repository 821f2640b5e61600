"""What a run stores: result tables as JSON data."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd

from api.service import jsonable, records


def test_records_are_the_frames_rows_as_json_data():
    """Column by column, the same rows, keys, values and types as ``jsonable(to_dict("records"))``:
    missing and infinite numbers as None, numpy scalars as Python's, dates as ISO text."""
    frame = pd.DataFrame({
        "case_id": pd.Series(["C1", "C2", None, "C4"], dtype="str"),
        "n": np.array([1, 2, 3, 4], dtype=np.int64),
        "pinned": [True, False, True, False],
        "share": [0.5, np.nan, np.inf, -1.25],
        "maybe": pd.array([1, None, 3, 4], dtype="Int64"),
        "mixed": [np.int64(7), "x", None, np.float64(2.5)],
        "day": pd.to_datetime(["2026-01-15", None, "2026-02-01", "2026-03-01"]),
        "on": [dt.date(2026, 1, 1), dt.date(2026, 1, 2), None, dt.date(2026, 1, 4)],
        "kind": pd.Categorical(["a", "b", "a", None]),
        3: ["p", "q", "r", "s"],  # a column name that is no text
    })
    expected = jsonable(frame.to_dict("records"))
    got = records(frame)
    assert got == expected
    assert json.dumps(got, allow_nan=False) == json.dumps(expected, allow_nan=False)
    assert got[1]["share"] is None and got[2]["share"] is None and got[2]["case_id"] is None
    assert type(got[0]["n"]) is int and type(got[0]["pinned"]) is bool and got[0]["day"] == "2026-01-15T00:00:00"
    assert records(frame.iloc[:0]) == []
