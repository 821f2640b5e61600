"""An independent check of a plan against every hard rule.

It shares no code with the reader or the model builder on purpose: it re-reads the problem
folder with the standard library only, re-derives ages, bedroom needs and service use from the
settings, and tests each rule directly on the plan. If the model and this file ever disagree,
one of them is wrong, and the tests will say so.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

DEFAULT_SERVICES = {"school": (6, 15), "kindergarten": (1, 5), "introduction": (18, 55)}
TRUE_WORDS = {"true", "1", "yes", "y", "t"}
PLAN_COLUMNS = ("case_id", "municipality_id")


def _rows(path: Path) -> list[dict[str, str]]:
    return _read(path)[1] if path.exists() else []


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A CSV file's header and rows, names and cells stripped: blank lines skipped, missing
    cells empty, cells beyond the header dropped: as ``csv.DictReader`` reads them, faster (the
    check of a national-30k plan, 154k rows read: 1.4-1.7 s before, 0.9-1.5 s)."""
    with path.open(newline="", encoding="utf-8-sig") as f:  # as the reader, a BOM is no part of the header
        reader = csv.reader(f, skipinitialspace=True)
        names = [name.strip() for name in next(reader, [])]
        n = len(names)
        rows = []
        for row in reader:
            if not row:
                continue
            cells = [cell.strip() for cell in row[:n]]
            if len(cells) < n:
                cells += [""] * (n - len(cells))
            rows.append(dict(zip(names, cells)))
        return names, rows


def _plan_rows(path: Path) -> tuple[list[dict[str, str]], str | None]:
    """The plan's rows, or why it cannot be checked: a missing or unreadable file is no plan
    that keeps every rule."""
    if not path.is_file():
        return [], f"the plan {path} does not exist"
    try:
        header, rows = _read(path)
    except (UnicodeDecodeError, csv.Error) as exc:
        return [], f"the plan {path} cannot be read: {exc}"
    missing = [name for name in PLAN_COLUMNS if name not in header]
    if missing:
        return [], f"the plan {path} has no column {', '.join(missing)}"
    return rows, None


def _yes(text: str) -> bool:
    return text.strip().lower() in TRUE_WORDS


def _age(person: dict[str, str], as_of: dt.date) -> int:
    if person.get("age", "") != "":
        return int(float(person["age"]))
    born = dt.date.fromisoformat(person["birth_date"][:10])
    return as_of.year - born.year - ((as_of.month, as_of.day) < (born.month, born.day))


def verify_plan(problem_dir: str | Path, plan_csv: str | Path) -> list[str]:
    """Every hard-rule violation of the plan, as sentences naming cases by id (empty if none)."""
    folder = Path(problem_dir)
    settings_path = folder / "settings.toml"
    settings = tomllib.loads(settings_path.read_text(encoding="utf-8")) if settings_path.exists() else {}
    as_of = settings.get("as_of", dt.date.today())
    if isinstance(as_of, str):
        as_of = dt.date.fromisoformat(as_of)
    if isinstance(as_of, dt.datetime):
        as_of = as_of.date()
    services = {name: tuple(r) for name, r in settings.get("services", DEFAULT_SERVICES).items()}
    housing = settings.get("housing", {})
    adults_per_room = int(housing.get("adults_per_bedroom", 2))
    children_per_room = int(housing.get("children_per_bedroom", 2))
    adult_age = int(settings.get("urgency", {}).get("adult_age", 18))

    munis = {r["municipality_id"]: r for r in _rows(folder / "municipalities.csv")}
    cases = {r["case_id"]: r for r in _rows(folder / "cases.csv")}
    members: dict[str, list[int]] = defaultdict(list)
    for person in _rows(folder / "persons.csv"):
        members[person["case_id"]].append(_age(person, as_of))
    has_dwellings = (folder / "dwellings.csv").exists()
    dwellings = {r["dwelling_id"]: r for r in _rows(folder / "dwellings.csv")}
    excluded = {(r["case_id"], r["municipality_id"]) for r in _rows(folder / "exclusions.csv")}
    pins = {r["case_id"]: r for r in _rows(folder / "pins.csv")}
    plan, unreadable = _plan_rows(Path(plan_csv))
    if unreadable:
        return [unreadable]

    problems: list[str] = []
    seen: Counter[str] = Counter(row.get("case_id", "") for row in plan)
    for case_id, n in seen.items():
        if n > 1:
            problems.append(f"case {case_id} is placed {n} times; a case goes whole to one municipality")

    persons_in: Counter[str] = Counter()
    minors_in: Counter[str] = Counter()
    service_in: dict[str, Counter[str]] = defaultdict(Counter)
    dwelling_cases: dict[str, list[str]] = defaultdict(list)
    placed_at: dict[str, dict[str, str]] = {}
    for line, row in enumerate(plan, start=2):
        case_id, muni = row.get("case_id", ""), row.get("municipality_id", "")
        if case_id not in cases:
            problems.append(f"plan row {line}: unknown case {case_id!r}")
            continue
        if muni not in munis:
            problems.append(f"plan row {line}: case {case_id} placed in unknown municipality {muni!r}")
            continue
        placed_at[case_id] = row
        ages = members.get(case_id, [])
        size = len(ages)
        adults = sum(a >= adult_age for a in ages)
        children = size - adults
        unaccompanied = cases[case_id].get("category", "") == "unaccompanied_minor"
        persons_in[muni] += size
        if unaccompanied:
            minors_in[muni] += size
        for name, (low, high) in services.items():
            service_in[name][muni] += sum(low <= a <= high for a in ages)
        if (case_id, muni) in excluded:
            problems.append(f"case {case_id} is placed in {muni}, an excluded pair")

        if not has_dwellings:
            continue
        dwelling_id = row.get("dwelling_id", "")
        if dwelling_id == "":
            problems.append(f"case {case_id} in {muni} has no dwelling")
            continue
        d = dwellings.get(dwelling_id)
        if d is None:
            problems.append(f"case {case_id} got unknown dwelling {dwelling_id!r}")
            continue
        dwelling_cases[dwelling_id].append(case_id)
        if d["municipality_id"] != muni:
            problems.append(f"case {case_id} is placed in {muni} but dwelling {dwelling_id} is in {d['municipality_id']}")
        available = d.get("available_from", "")
        if available and dt.date.fromisoformat(available[:10]) > as_of:
            problems.append(f"dwelling {dwelling_id} for case {case_id} is not free until {available}")
        if _yes(cases[case_id].get("needs_step_free", "")) and not _yes(d.get("step_free", "")):
            problems.append(f"case {case_id} needs step-free housing; dwelling {dwelling_id} is not step-free")
        if _yes(d.get("shared", "")):
            if not (size == 1 and adults == 1):
                problems.append(f"case {case_id} is not one adult but got shared dwelling {dwelling_id}")
        else:
            rooms = max(1, math.ceil(adults / adults_per_room) + math.ceil(children / children_per_room))
            if int(d["bedrooms"]) < rooms:
                problems.append(f"case {case_id} needs {rooms} bedrooms; dwelling {dwelling_id} has {d['bedrooms']}")
            if int(d["max_occupants"]) < size:
                problems.append(f"case {case_id} has {size} persons; dwelling {dwelling_id} takes {d['max_occupants']}")

    for dwelling_id, who in dwelling_cases.items():
        d = dwellings[dwelling_id]
        limit = int(d["max_occupants"]) if _yes(d.get("shared", "")) else 1
        if len(who) > limit:
            problems.append(f"dwelling {dwelling_id} holds {len(who)} cases ({', '.join(sorted(who))}); it takes {limit}")

    for muni, row in munis.items():
        allowed = int(row.get("resolution_persons") or 0)
        if persons_in[muni] > allowed:
            problems.append(f"{muni} gets {persons_in[muni]} persons; its resolution is {allowed}")
        allowed_minors = int(row.get("resolution_minors") or 0)
        if minors_in[muni] > allowed_minors:
            problems.append(f"{muni} gets {minors_in[muni]} unaccompanied minors; it resolved {allowed_minors}")
        for column, value in row.items():
            if column.startswith("capacity_") and value != "":
                name = column[len("capacity_"):]
                if service_in[name][muni] > int(value):
                    problems.append(f"{muni} gets {service_in[name][muni]} users of {name}; capacity is {value}")

    for case_id, pin in pins.items():
        row = placed_at.get(case_id)
        if row is None:
            problems.append(f"pinned case {case_id} is not placed")
            continue
        if row["municipality_id"] != pin["municipality_id"]:
            problems.append(f"pinned case {case_id} is in {row['municipality_id']}, not {pin['municipality_id']}")
        if pin.get("dwelling_id", "") and row.get("dwelling_id", "") != pin["dwelling_id"]:
            problems.append(f"pinned case {case_id} is not in its pinned dwelling {pin['dwelling_id']}")
    return problems
