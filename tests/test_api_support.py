"""Shared pieces of the API tests: a tiny round, an app on a temporary database, waiting for a
solve and checking every solved plan with the independent verifier."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from allocator import verify_plan, write_problem
from api.config import ApiConfig
from api.main import create_app
from conftest import AS_OF, cases_and_persons, dwelling, family, muni, single, tiny_tables

COORDINATOR = {"X-API-Key": "coord-key"}
VIEWER = {"X-API-Key": "view-key"}
KEYS = "coord-key:coordinator:alice,view-key:viewer:victor"
SETTINGS = {"as_of": AS_OF.isoformat(), "solver": {"time_limit": 5.0}}


def tiny_round() -> dict[str, pd.DataFrame]:
    """Two municipalities with room for 8 of 10 persons; A is tied to 0301, H to 1103; M is an
    unaccompanied minor (only 1103 takes minors). B and H end up unplaced."""
    cases, persons = cases_and_persons(
        single("A", 200, tie_municipality_id="0301"), single("B", 10), family("F", [40, 35, 8, 3], 50),
        single("M", 30, category="unaccompanied_minor"), family("G", [30, 10], 20),
        single("H", 5, tie_municipality_id="1103"),
    )
    next(p for p in persons if p["case_id"] == "M")["age"] = "16"
    munis = [muni("0301", 5, school=1), muni("1103", 3, minors=1, school=1), muni("5001", 0)]
    dwellings = [dwelling("d1", "0301", 1), dwelling("d2", "0301", 2), dwelling("d3", "0301", 3, 6),
                 dwelling("d4", "1103", 1), dwelling("d5", "1103", 2), dwelling("d6", "1103", 1)]
    return {name: frame.fillna("") for name, frame in tiny_tables(munis, cases, persons, dwellings).items()}


def as_json(tables: dict[str, pd.DataFrame]) -> dict[str, list[dict[str, str]]]:
    return {name: frame.fillna("").astype(str).to_dict("records") for name, frame in tables.items()}


def as_zip(tables: dict[str, pd.DataFrame], settings_toml: str | None = None, folder: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, frame in tables.items():
            archive.writestr(folder + name, frame.to_csv(index=False))
        if settings_toml is not None:
            archive.writestr(folder + "settings.toml", settings_toml)
    return buffer.getvalue()


def make_config(folder: Path, **overrides: Any) -> ApiConfig:
    values = dict(data_dir=folder, api_keys=KEYS, max_workers=2, poll_interval=0.2, shutdown_grace=5.0,
                  recommend_time_limit=2.0, max_time_limit=120.0)
    values.update(overrides)
    return ApiConfig(**values)


@pytest.fixture(scope="module")
def api_client(tmp_path_factory):
    """A client of an app on its own SQLite database, with real worker processes."""
    folder = tmp_path_factory.mktemp("api")
    app = create_app(make_config(folder))
    with TestClient(app) as client:
        yield client


def upload(client: TestClient, tables: dict[str, pd.DataFrame], settings: dict | None = None,
           name: str = "") -> dict[str, Any]:
    response = client.post("/v1/problems", json={"name": name, "files": as_json(tables),
                                                  "settings": settings or SETTINGS}, headers=COORDINATOR)
    assert response.status_code == 201, response.text
    return response.json()


def start(client: TestClient, problem_id: str, settings: dict | None = None) -> dict[str, Any]:
    response = client.post("/v1/plans", json={"problem_id": problem_id, "settings": settings or {}},
                           headers=COORDINATOR)
    assert response.status_code == 202, response.text
    assert response.headers["ETag"] == f'"{response.json()["version"]}"'
    return response.json()


def wait_for(client: TestClient, plan_id: str, timeout: float = 90.0, statuses=("queued", "running"),
             headers: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """Poll until the plan's latest run leaves ``statuses``; returns the plan and its ETag."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/plans/{plan_id}", headers=headers or VIEWER)
        assert response.status_code == 200, response.text
        plan = response.json()
        if plan["status"] not in statuses:
            return plan, response.headers["ETag"]
        assert time.monotonic() < deadline, f"plan {plan_id} still {plan['status']} after {timeout}s"
        time.sleep(0.2)


def verify_result(tables: dict[str, pd.DataFrame], plan: dict[str, Any], folder: Path) -> None:
    """Check the plan's placements with :func:`allocator.verify_plan`, on the pins and
    exclusions of the run that produced them."""
    run = next(r for r in plan["runs"] if r["number"] == plan["result_run"])
    assert run["pins"] == len(plan["pins"]) and run["exclusions"] == len(plan["exclusions"]), \
        "verify right after the run, before pins or exclusions change"
    tables = dict(tables)
    tables["pins.csv"] = pd.DataFrame(plan["pins"], columns=["case_id", "municipality_id", "dwelling_id"])
    tables["exclusions.csv"] = pd.DataFrame(plan["exclusions"], columns=["case_id", "municipality_id", "reason"])
    problem_dir = write_problem(tables, folder / "problem", plan["settings"])
    placements = pd.DataFrame(plan["result"]["placements"], columns=["case_id", "municipality_id", "dwelling_id"])
    placements.to_csv(folder / "plan.csv", index=False)
    assert verify_plan(problem_dir, folder / "plan.csv") == []
    assert plan["result"]["verification"] == {"ok": True, "violations": []}


def solve_verified(client: TestClient, tables, folder: Path, settings: dict | None = None,
                   plan_settings: dict | None = None) -> tuple[dict[str, Any], str]:
    """Upload, solve, wait and verify; returns the finished plan and its ETag."""
    problem = upload(client, tables, settings)
    plan = start(client, problem["id"], plan_settings)
    finished, tag = wait_for(client, plan["id"])
    assert finished["status"] == "done", finished["run"]
    verify_result(tables, finished, folder)
    return finished, tag


def placed(plan: dict[str, Any]) -> dict[str, str]:
    return {p["case_id"]: p["municipality_id"] for p in plan["result"]["placements"]}
