"""What a case's members make of it: size, ages, service use, bedrooms needed and urgency.

Each rule is one small function over the persons table, so that the model builder, the
explanations and the documentation all speak of the same rule by name.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .settings import HousingSettings, Settings, UrgencySettings

DAYS_PER_MONTH = 365.25 / 12


def age_at(birth_dates: pd.Series, as_of: pd.Timestamp) -> pd.Series:
    """Whole years of age on ``as_of``."""
    had_birthday = (birth_dates.dt.month < as_of.month) | (
        (birth_dates.dt.month == as_of.month) & (birth_dates.dt.day <= as_of.day)
    )
    return as_of.year - birth_dates.dt.year - (~had_birthday).astype(int)


def bedrooms_needed(adults: np.ndarray, children: np.ndarray, rule: HousingSettings) -> np.ndarray:
    """Bedrooms a case needs: adults share in pairs, children in pairs; at least one."""
    rooms = -(-adults // rule.adults_per_bedroom) + -(-children // rule.children_per_bedroom)
    return np.maximum(rooms, 1)


def member_target_days(ages: np.ndarray, unaccompanied: np.ndarray, rule: UrgencySettings) -> np.ndarray:
    """Target wait of each member: 6 months for adults, 3 for children and unaccompanied minors."""
    child = (ages < rule.adult_age) | unaccompanied
    months = np.where(child, rule.child_target_months, rule.adult_target_months)
    return months * DAYS_PER_MONTH


def member_urgency(wait_days: np.ndarray, target_days: np.ndarray, rule: UrgencySettings) -> np.ndarray:
    """Urgency a member adds when placed: a base plus the wait measured in targets."""
    return rule.base + np.maximum(wait_days, 0) / target_days


def uses_service(ages: np.ndarray, age_range: tuple[int, int]) -> np.ndarray:
    low, high = age_range
    return (ages >= low) & (ages <= high)


def case_attributes(
    cases: pd.DataFrame, persons: pd.DataFrame, settings: Settings, services: list[str]
) -> pd.DataFrame:
    """Per-case derived columns, indexed like ``cases``.

    ``cases`` needs ``category`` and ``residence_date``; ``persons`` needs ``case_id`` and
    ``age``. Returns size, adults, children, minors (members of unaccompanied-minor cases),
    single_adult, bedrooms, wait_days, urgency, long_waiting (persons past their target) and
    ``use_<service>`` for each capacity service.
    """
    as_of = pd.Timestamp(settings.as_of)
    members = persons[["case_id", "age"]].copy()
    category = cases["category"].reindex(members["case_id"]).to_numpy()
    residence = cases["residence_date"].reindex(members["case_id"])
    wait = (as_of - residence).dt.days.to_numpy(dtype=float)
    ages = members["age"].to_numpy(dtype=int)
    unaccompanied = category == "unaccompanied_minor"
    target = member_target_days(ages, unaccompanied, settings.urgency)

    members["adult"] = ages >= settings.urgency.adult_age
    members["minor"] = unaccompanied
    members["urgency"] = member_urgency(wait, target, settings.urgency)
    members["long_waiting"] = wait > target
    for service in services:
        members[f"use_{service}"] = uses_service(ages, settings.services[service])

    per_case = members.groupby("case_id", sort=False).agg(
        size=("age", "size"),
        adults=("adult", "sum"),
        minors=("minor", "sum"),
        urgency=("urgency", "sum"),
        long_waiting=("long_waiting", "sum"),
        **{f"use_{s}": (f"use_{s}", "sum") for s in services},
    )
    out = per_case.reindex(cases.index).fillna(0)
    int_columns = ["size", "adults", "minors", "long_waiting"] + [f"use_{s}" for s in services]
    out[int_columns] = out[int_columns].astype(int)
    out["children"] = out["size"] - out["adults"]
    out["single_adult"] = (out["size"] == 1) & (out["adults"] == 1)
    out["bedrooms"] = bedrooms_needed(
        out["adults"].to_numpy(), out["children"].to_numpy(), settings.housing
    )
    out["wait_days"] = (as_of - cases["residence_date"]).dt.days.clip(lower=0).astype(int)
    return out
