"""Random coordinator weeks against the service: upload a round, solve, then pins, exclusions,
answers, re-solves, stops, explanations and recommendations in a random order. Whatever the
order, no request gets a 5xx, no run fails, and every result that matches the plan's pins and
exclusions keeps every hard rule (the independent verifier)."""

from __future__ import annotations

import random

import pytest

from allocator.demo import InstanceSpec, generate_tables
from test_api_support import (  # noqa: F401 - api_client is a fixture
    COORDINATOR,
    SETTINGS,
    VIEWER,
    api_client,
    start,
    upload,
    verify_result,
    wait_for,
)

STEPS = 25


def _pick(rnd: random.Random, proposals: list[dict], most: int) -> list[dict]:
    return rnd.sample(proposals, min(len(proposals), rnd.randint(0, most)))


@pytest.mark.parametrize("seed", range(3))
def test_a_random_week_of_requests_never_fails(api_client, tmp_path, seed):
    rnd = random.Random(seed)
    tables = generate_tables(InstanceSpec(cases=rnd.choice([8, 30, 80]), seed=seed, with_scores=seed % 2 == 1,
                                          tie_share=0.3, capacity_ratio=rnd.choice([0.3, 0.9, 2.0])))
    problem = upload(api_client, tables, {**SETTINGS, "as_of": "2026-12-01", "solver": {"time_limit": 2.0}})
    url = f"/v1/plans/{start(api_client, problem['id'])['id']}"
    case_ids = list(tables["cases.csv"]["case_id"])
    for step in range(STEPS):
        current = api_client.get(url, headers=VIEWER)
        body, write = current.json(), {**COORDINATOR, "If-Match": current.headers["ETag"]}
        proposals = (body.get("result") or {}).get("placements", [])
        op = rnd.choice(["wait", "pins", "exclusions", "answers", "resolve", "stop", "explain", "recommend"])
        if op == "wait":
            body, _ = wait_for(api_client, body["id"])
            last = body["runs"][-1]
            if body["status"] == "done" and body["result_run"] == last["number"] \
                    and (last["pins"], last["exclusions"]) == (len(body["pins"]), len(body["exclusions"])):
                verify_result(tables, body, tmp_path / f"step-{step}")
            continue
        if op == "pins":
            pins = [{"case_id": p["case_id"], "municipality_id": p["municipality_id"],
                     "dwelling_id": p.get("dwelling_id") or ""} for p in _pick(rnd, proposals, 3)]
            if rnd.random() < 0.3:  # one the rules may refuse (422)
                pins.append({"case_id": rnd.choice(case_ids), "municipality_id": rnd.choice(["0301", "9999"]),
                             "dwelling_id": ""})
            response = api_client.put(f"{url}/pins", json={"pins": pins}, headers=write)
        elif op == "exclusions":
            response = api_client.put(f"{url}/exclusions", headers=write, json={"exclusions": [
                {"case_id": p["case_id"], "municipality_id": p["municipality_id"], "reason": "test"}
                for p in _pick(rnd, proposals, 3)]})
        elif op == "answers":
            response = api_client.post(f"{url}/responses", headers=write, json={"responses": [
                {"case_id": p["case_id"], "decision": rnd.choice(["accepted", "declined"])}
                for p in _pick(rnd, proposals, 4)]})
        elif op == "resolve":
            response = api_client.post(f"{url}/resolve", headers=write,
                                       json={"settings": {"solver": {"time_limit": rnd.choice([1.0, 2.0])}}})
        elif op == "stop":
            response = api_client.delete(url, headers=write)
        else:
            response = api_client.get(f"{url}/cases/{rnd.choice(case_ids)}/"
                                      f"{'explanation' if op == 'explain' else 'recommendations'}", headers=VIEWER)
        assert response.status_code < 500, (step, op, response.text[:500])
        if response.status_code >= 400:
            assert isinstance(response.json()["detail"], list), response.text[:500]
    body, _ = wait_for(api_client, url.rsplit("/", 1)[1])
    assert body["status"] in ("done", "stopped", "cancelled"), body["run"]
