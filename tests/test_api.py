"""The HTTP API through a client against the app: every endpoint and its errors.

Solves run in real worker processes on a temporary SQLite database; every plan solved is
checked with the independent verifier.
"""

from __future__ import annotations

import io
import json
import time
import zipfile

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from allocator import ProblemValidationError, build_problem, read_problem, write_problem
from allocator.demo import NAMED, demo_settings, generate_tables
from allocator.result import BOUND_SOURCES
from allocator.reading import settings_from_mapping
from api.tables import load_tables, store_tables
from test_api_support import (
    COORDINATOR,
    SETTINGS,
    VIEWER,
    api_client,  # noqa: F401 - fixture
    as_json,
    as_zip,
    placed,
    solve_verified,
    start,
    tiny_round,
    upload,
    verify_result,
    wait_for,
)

ISSUE_KEYS = {"file", "row", "column", "rule", "message"}


def assert_error(response, status: int, rule: str | None = None) -> list[dict]:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    for item in detail:
        assert set(item) == ISSUE_KEYS, item
    if rule is not None:
        assert rule in {i["rule"] for i in detail}, detail
    return detail


@pytest.fixture(scope="module")
def solved(api_client, tmp_path_factory):
    """The tiny round solved once; read-only tests share it."""
    plan, tag = solve_verified(api_client, tiny_round(), tmp_path_factory.mktemp("solved"))
    return plan


# -- health, auth, OpenAPI ---------------------------------------------------------------------

def test_health_needs_no_key(api_client):
    response = api_client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["jobs"]["max_workers"] == 2


def test_missing_and_unknown_keys_are_401(api_client):
    detail = assert_error(api_client.get("/v1/plans"), 401, "missing-api-key")
    assert detail[0]["column"] == "X-API-Key"
    assert "WWW-Authenticate" in api_client.get("/v1/plans").headers
    assert_error(api_client.get("/v1/plans", headers={"X-API-Key": "nope"}), 401, "unknown-api-key")
    assert_error(api_client.post("/v1/problems", json={}), 401)


def test_bearer_token_works_and_viewer_cannot_write(api_client, solved):
    assert api_client.get("/v1/plans", headers={"Authorization": "Bearer view-key"}).status_code == 200
    pid = solved["id"]
    writes = [
        ("post", "/v1/problems", {"json": {"files": {}}}),
        ("post", "/v1/plans", {"json": {"problem_id": solved["problem_id"]}}),
        ("put", f"/v1/plans/{pid}/pins", {"json": {"pins": []}}),
        ("put", f"/v1/plans/{pid}/exclusions", {"json": {"exclusions": []}}),
        ("post", f"/v1/plans/{pid}/resolve", {}),
        ("post", f"/v1/plans/{pid}/responses", {"json": {"responses": []}}),
        ("delete", f"/v1/plans/{pid}", {}),
    ]
    for method, url, kwargs in writes:
        response = api_client.request(method.upper(), url, headers={**VIEWER, "If-Match": '"1"'}, **kwargs)
        assert_error(response, 403, "read-only")


def test_openapi_documents_every_endpoint_with_error_bodies(api_client):
    schema = api_client.get("/openapi.json").json()
    assert "ProblemIn" in schema["components"]["schemas"]
    assert "HTTPValidationError" not in json.dumps(schema["paths"])
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if path != "/health":
                assert "401" in codes, (method, path)
            for code, response in operation["responses"].items():
                if code.startswith("4"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (method, path, code)
    upload_body = schema["paths"]["/v1/problems"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/zip", "multipart/form-data"} <= set(upload_body)


def test_unknown_route_and_method_have_the_error_body(api_client):
    assert_error(api_client.get("/v1/nothing", headers=VIEWER), 404)
    assert_error(api_client.patch("/v1/plans", headers=VIEWER), 405)


# -- problems ----------------------------------------------------------------------------------

def test_upload_json_rows_and_read_it_back(api_client):
    tables = tiny_round()
    body = upload(api_client, tables, name="tiny")
    expected = build_problem(tables, settings_from_mapping(SETTINGS))
    assert body["digest"] == expected.digest
    assert body["counts"]["cases"] == 6 and body["counts"]["dwellings"] == 6
    assert body["files"] == sorted(tables)
    assert body["settings"]["as_of"] == SETTINGS["as_of"] and body["created_by"] == "alice"
    got = api_client.get(f"/v1/problems/{body['id']}", headers=VIEWER)
    assert got.status_code == 200 and got.json() == body
    listed = api_client.get("/v1/problems", headers=VIEWER).json()
    assert body["id"] in {p["id"] for p in listed["items"]} and listed["total"] >= 1


def test_upload_csv_text_and_column_rows_give_the_same_problem(api_client):
    tables = tiny_round()
    files = {name: frame.to_csv(index=False) for name, frame in tables.items()}
    first = api_client.post("/v1/problems", json={"files": files, "settings": SETTINGS}, headers=COORDINATOR)
    assert first.status_code == 201, first.text
    files = {name: {"columns": list(frame.columns), "rows": frame.to_numpy().tolist()}
             for name, frame in tables.items()}
    second = api_client.post("/v1/problems", json={"files": files, "settings": SETTINGS}, headers=COORDINATOR)
    assert second.status_code == 201, second.text
    assert first.json()["digest"] == second.json()["digest"] == upload(api_client, tables)["digest"]


def test_stored_tables_give_back_every_cell_and_the_same_digest():
    tables = tiny_round()
    tables["cases.csv"].loc[0, "case_id"] = ' q"uo,te\n '  # quotes, a comma, a newline, spaces
    tables["persons.csv"].loc[0, "case_id"] = ' q"uo,te\n '
    tables["exclusions.csv"] = pd.DataFrame({"case_id": pd.Series(dtype=str), "municipality_id": pd.Series(dtype=str)})
    stored = json.loads(json.dumps(store_tables(tables)))
    loaded = load_tables(stored)
    for name, frame in tables.items():
        assert list(loaded[name].columns) == list(frame.columns), name
        assert loaded[name].astype(str).to_numpy().tolist() == frame.astype(str).to_numpy().tolist(), name
    settings = settings_from_mapping(SETTINGS)
    assert build_problem(loaded, settings).digest == build_problem(tables, settings).digest
    as_rows = {name: {"columns": list(f.columns), "rows": f.astype(str).to_numpy().tolist()} for name, f in tables.items()}
    assert build_problem(load_tables(as_rows), settings).digest == build_problem(tables, settings).digest


def test_upload_zip_raw_and_as_form(api_client):
    tables = tiny_round()
    toml = 'as_of = 2026-01-15\n[solver]\ntime_limit = 5.0\n'
    raw = api_client.post("/v1/problems?name=zipped", content=as_zip(tables, toml, folder="round/"),
                          headers={**COORDINATOR, "Content-Type": "application/zip"})
    assert raw.status_code == 201, raw.text
    assert raw.json()["name"] == "zipped"
    form = api_client.post("/v1/problems", files={"file": ("round.zip", as_zip(tables, toml), "application/zip")},
                           data={"name": "form"}, headers=COORDINATOR)
    assert form.status_code == 201, form.text
    assert raw.json()["digest"] == form.json()["digest"] == upload(api_client, tables)["digest"]


def test_invalid_upload_lists_every_error_like_the_cli(api_client, tmp_path):
    tables = tiny_round()
    tables["persons.csv"].loc[0, "age"] = "old"
    tables["municipalities.csv"].loc[1, "resolution_persons"] = "-3"
    tables["cases.csv"].loc[2, "tie_municipality_id"] = "9999"
    response = api_client.post("/v1/problems", json={"files": as_json(tables), "settings": SETTINGS},
                               headers=COORDINATOR)
    detail = assert_error(response, 422)
    folder = write_problem(tables, tmp_path / "bad", SETTINGS)
    with pytest.raises(ProblemValidationError) as cli:
        read_problem(folder)
    assert detail == [i.to_dict() for i in cli.value.issues]
    assert {(i["file"], i["row"], i["column"]) for i in detail} >= {
        ("persons.csv", 2, "age"), ("municipalities.csv", 3, "resolution_persons"),
        ("cases.csv", 4, "tie_municipality_id")}


def test_upload_errors_are_4xx_with_detail(api_client):
    post = lambda **kw: api_client.post("/v1/problems", headers={**COORDINATOR, **kw.pop("headers", {})}, **kw)  # noqa: E731
    assert_error(post(content=b"{not json", headers={"Content-Type": "application/json"}), 422, "json_invalid")
    assert_error(post(json=[1, 2]), 422)
    assert_error(post(json={"files": {"cases.csv": 5}}), 422)
    assert_error(post(json={"files": {}, "surprise": 1}), 422, "extra_forbidden")
    detail = assert_error(post(json={"files": {"cases.csv": [{"case_id": {"nested": 1}}]}}), 422, "bad-cell")
    assert detail[0]["file"] == "cases.csv" and detail[0]["row"] == 2
    assert_error(post(json={"files": {}}), 422, "missing-file")
    bad_settings = post(json={"files": as_json(tiny_round()), "settings": {"solver": {"time_limit": -1}}})
    detail = assert_error(bad_settings, 422, "invalid-setting")
    assert detail[0]["file"] == "settings.toml" and detail[0]["column"] == "solver.time_limit"
    assert_error(post(json={"files": {**as_json(tiny_round()), "settings.toml": "as_of = ["}}), 422, "invalid-toml")
    assert_error(post(content=b"PK\x03\x04 broken", headers={"Content-Type": "application/zip"}), 422, "bad-zip")
    assert_error(post(content=as_zip({}) , headers={"Content-Type": "application/zip"}), 422, "no-tables")
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("cases.csv", "case_id,residence_date,category\nA,2026-01-01\n")  # a cell short
        archive.writestr("persons.csv", b"person_id,case_id,age\nP1,A,\xff\n")  # not UTF-8
    detail = assert_error(post(content=broken.getvalue(), headers={"Content-Type": "application/zip"}), 422)
    assert {(i["file"], i["row"], i["rule"]) for i in detail} >= {("cases.csv", 2, "wrong-cell-count"),
                                                                 ("persons.csv", 2, "unreadable-csv")}
    assert_error(post(content=b"x", headers={"Content-Type": "text/plain"}), 415)
    assert_error(post(files={"other": ("a.txt", b"x")}), 422, "missing-file")
    assert_error(api_client.get("/v1/problems/prb_nope", headers=VIEWER), 404, "not-found")
    assert_error(api_client.get("/v1/problems?limit=0", headers=VIEWER), 422)
    config = api_client.app.state.config
    api_client.app.state.config = config.model_copy(update={"max_upload_mb": 0.0001})
    try:
        assert_error(post(json={"files": as_json(tiny_round())}), 413, "too-large")
        assert_error(post(content=as_zip(tiny_round()), headers={"Content-Type": "application/zip"}), 413)
    finally:
        api_client.app.state.config = config


cells = st.one_of(st.none(), st.booleans(), st.integers(-5, 20), st.floats(allow_nan=False, allow_infinity=False, width=16),
                  st.sampled_from(["", "0301", "1103", "A", "B", "2026-01-01", "true", "x"]))
rows = st.lists(st.dictionaries(st.sampled_from(["case_id", "municipality_id", "age", "person_id", "name",
                                                 "residence_date", "resolution_persons", "bedrooms"]), cells,
                                max_size=5), max_size=4)


@hsettings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(files=st.dictionaries(st.sampled_from(["municipalities.csv", "cases.csv", "persons.csv", "pins.csv",
                                              "dwellings.csv", "other.csv"]), rows, max_size=4))
def test_random_uploads_never_give_500(api_client, files):
    response = api_client.post("/v1/problems", json={"files": files, "settings": SETTINGS}, headers=COORDINATOR)
    assert response.status_code in (201, 422), response.text
    if response.status_code == 422:
        assert all(set(i) == ISSUE_KEYS for i in response.json()["detail"])


# -- plans -------------------------------------------------------------------------------------

def test_solved_plan_has_placements_reasons_kpis_and_provenance(solved):
    result = solved["result"]
    assert solved["status"] == "done" and solved["result_status"] == result["status"] == "optimal"
    assert solved["version"] == 2  # created (1), run finished (2)
    assert placed(solved) == {"A": "0301", "F": "0301", "G": "1103", "M": "1103"}
    assert {u["case_id"]: u["rule"] for u in result["unplaced"]} == {"B": "resolution", "H": "resolution"}
    assert all(len(u["reason"]) > 20 for u in result["unplaced"])
    assert result["kpis"]["cases_placed"] == 4 and result["kpis"]["ties_honoured"] == 1
    summary = result["summary"]
    for key in ("input_digest", "settings", "seed", "solver", "levels", "seconds"):
        assert key in summary
    # An optimal plan says what proves it, level by level.
    assert all(level["bound_from"] in BOUND_SOURCES for level in summary["levels"])
    assert len(result["municipalities"]) == 3
    run = solved["run"]
    assert run["progress"]["phase"] == "finished" and run["progress"]["elapsed"] > 0
    assert run["started_at"] and run["finished_at"] and run["created_by"] == "alice"


def test_list_and_get_plans(api_client, solved):
    listed = api_client.get("/v1/plans", headers=VIEWER).json()
    mine = next(p for p in listed["items"] if p["id"] == solved["id"])
    assert mine["status"] == "done" and mine["kpis"]["cases_placed"] == 4
    assert api_client.get(f"/v1/plans?problem_id={solved['problem_id']}", headers=VIEWER).json()["total"] >= 1
    assert all(p["status"] == "done" for p in api_client.get("/v1/plans?status=done", headers=VIEWER).json()["items"])
    light = api_client.get(f"/v1/plans/{solved['id']}?result=false", headers=VIEWER)
    assert light.json()["result"] is None and light.headers["ETag"] == '"2"'
    assert_error(api_client.get("/v1/plans/pln_nope", headers=VIEWER), 404, "not-found")


def test_plan_creation_errors(api_client, solved):
    post = lambda body: api_client.post("/v1/plans", json=body, headers=COORDINATOR)  # noqa: E731
    assert_error(post({"problem_id": "prb_nope"}), 422, "unknown-problem")
    detail = assert_error(post({"problem_id": solved["problem_id"], "settings": {"solver": {"seed": -1}}}), 422,
                          "invalid-setting")
    assert detail[0]["column"] == "solver.seed"
    assert_error(post({"problem_id": solved["problem_id"], "settings": {"solver": {"time_limit": 10_000}}}), 422,
                 "above-maximum")
    # as_of before some residence dates makes the round itself invalid
    assert_error(post({"problem_id": solved["problem_id"], "settings": {"as_of": "2025-01-01"}}), 422,
                 "date-after-as-of")
    assert_error(post({"problem_id": solved["problem_id"], "colour": "red"}), 422, "extra_forbidden")
    assert_error(post({}), 422, "missing")


def test_stop_keeps_the_best_plan_and_cancel_a_queued_one(api_client, tmp_path):
    tables = generate_tables(NAMED["small"])
    settings = demo_settings(60.0)
    settings["as_of"] = settings["as_of"].isoformat()
    problem = upload(api_client, tables, settings)
    first = start(api_client, problem["id"])
    second = start(api_client, problem["id"])
    queued = start(api_client, problem["id"])  # two workers: this one waits
    for plan in (first, second):
        wait_for(api_client, plan["id"], statuses=("queued",))
    # wait until the solver reports: then there is a plan to keep
    deadline = time.monotonic() + 30
    while api_client.get(f"/v1/plans/{first['id']}", headers=VIEWER).json()["run"]["progress"]["phase"] == "building":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    running = api_client.get(f"/v1/plans/{first['id']}?result=false", headers=VIEWER)
    assert running.json()["status"] == "running"
    assert running.json()["run"]["progress"]["elapsed"] > 0
    assert_error(api_client.delete(f"/v1/plans/{first['id']}", headers={**COORDINATOR, "If-Match": '"99"'}), 409,
                 "stale-version")
    cancelled = api_client.delete(f"/v1/plans/{queued['id']}", headers=COORDINATOR)
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    for plan in (first, second):
        response = api_client.delete(f"/v1/plans/{plan['id']}",
                                     headers={**COORDINATOR, "If-Match": running.headers["ETag"]}
                                     if plan is first else COORDINATOR)
        assert response.status_code == 202, response.text
        assert response.json()["run"]["stop_requested"] is True
    for plan in (first, second):
        stopped, _ = wait_for(api_client, plan["id"], timeout=30)
        assert stopped["status"] == "stopped", stopped["run"]
        assert stopped["run"]["stop_reason"] == "stopped by alice"
        assert stopped["result"]["placements"], "the best plan found is kept"
        verify_result(tables, stopped, tmp_path / plan["id"])
    assert_error(api_client.delete(f"/v1/plans/{first['id']}", headers=COORDINATOR), 409, "not-running")
    gone = api_client.get(f"/v1/plans/{queued['id']}", headers=VIEWER).json()
    assert gone["status"] == "cancelled" and gone["result"] is None
    assert_error(api_client.post(f"/v1/plans/{queued['id']}/responses", json={"responses": [
        {"case_id": "C000001", "decision": "accepted"}]}, headers={**COORDINATOR, "If-Match": f'"{gone["version"]}"'}),
        409, "no-proposal")
    actions = [e["action"] for e in api_client.get(f"/v1/plans/{first['id']}/audit", headers=VIEWER).json()["items"]]
    assert actions == ["plan-created", "stop-requested", "solve-stopped"]


# -- pins, exclusions, re-solve ----------------------------------------------------------------

def test_pins_and_exclusions_then_resolve(api_client, tmp_path):
    tables = tiny_round()
    plan, tag = solve_verified(api_client, tables, tmp_path / "first")
    url = f"/v1/plans/{plan['id']}"
    pins = {"pins": [{"case_id": "H", "municipality_id": "1103"}]}
    assert_error(api_client.put(f"{url}/pins", json=pins, headers=COORDINATOR), 428, "if-match-required")
    assert_error(api_client.put(f"{url}/pins", json=pins, headers={**COORDINATOR, "If-Match": "yesterday"}), 400,
                 "bad-if-match")
    assert_error(api_client.put(f"{url}/pins", json=pins, headers={**COORDINATOR, "If-Match": '"1"'}), 409,
                 "stale-version")
    bad = {"pins": [{"case_id": "NOPE", "municipality_id": "1103"}, {"case_id": "A", "municipality_id": "7777"}]}
    detail = assert_error(api_client.put(f"{url}/pins", json=bad, headers={**COORDINATOR, "If-Match": tag}), 422)
    assert {(i["file"], i["row"], i["column"]) for i in detail} == {("pins.csv", 2, "case_id"),
                                                                   ("pins.csv", 3, "municipality_id")}
    assert_error(api_client.put(f"{url}/pins", json={"pins": [{"case_id": "A"}]},
                                headers={**COORDINATOR, "If-Match": tag}), 422, "missing")

    response = api_client.put(f"{url}/pins", json=pins, headers={**COORDINATOR, "If-Match": tag})
    assert response.status_code == 200, response.text
    assert response.json()["pins"] == [{"case_id": "H", "municipality_id": "1103", "dwelling_id": ""}]
    tag = response.headers["ETag"]
    assert tag == '"3"'
    exclusions = {"exclusions": [{"case_id": "F", "municipality_id": "0301", "reason": "safety"}]}
    response = api_client.put(f"{url}/exclusions", json=exclusions, headers={**COORDINATOR, "If-Match": tag})
    assert response.status_code == 200, response.text
    tag = response.headers["ETag"]
    detail = assert_error(api_client.put(f"{url}/exclusions", json={"exclusions": [
        {"case_id": "H", "municipality_id": "1103"}]}, headers={**COORDINATOR, "If-Match": tag}), 422, "pin-excluded")
    assert detail[0]["file"] == "pins.csv"

    response = api_client.post(f"{url}/resolve", json={"settings": {"solver": {"seed": 3}}},
                               headers={**COORDINATOR, "If-Match": tag})
    assert response.status_code == 202, response.text
    assert response.json()["run"]["number"] == 2 and response.json()["run"]["warm_start_from_run"] == 1
    detail = assert_error(api_client.post(f"{url}/resolve", headers={**COORDINATOR,
                                                                  "If-Match": response.headers["ETag"]}), 409)
    assert detail[0]["rule"] in {"solve-running", "stale-version"}  # stale if the tiny solve already finished
    again, tag = wait_for(api_client, plan["id"])
    assert again["status"] == "done" and again["result_run"] == 2
    assert again["settings"]["solver"]["seed"] == 3
    where = placed(again)
    assert where["H"] == "1103" and where.get("F") != "0301"
    assert next(p for p in again["result"]["placements"] if p["case_id"] == "H")["pinned"] is True
    verify_result(tables, again, tmp_path / "again")
    assert len(again["runs"]) == 2 and again["runs"][0]["status"] == "done"
    actions = [e["action"] for e in api_client.get(f"{url}/audit", headers=VIEWER).json()["items"]]
    assert actions == ["plan-created", "solve-done", "pins-replaced", "exclusions-replaced", "resolve-queued",
                       "solve-done"]


def test_resolve_while_running_is_409(api_client):
    problem = upload(api_client, tiny_round())
    plan = start(api_client, problem["id"])
    response = api_client.post(f"/v1/plans/{plan['id']}/resolve", headers={**COORDINATOR, "If-Match": '"1"'})
    if response.status_code == 409:  # the tiny solve may already have finished (then the version moved on)
        assert response.json()["detail"][0]["rule"] in {"solve-running", "stale-version"}
    wait_for(api_client, plan["id"])


# -- the proposal loop ---------------------------------------------------------------------------

def test_responses_pin_the_accepted_and_propose_the_declined_elsewhere(api_client, tmp_path):
    tables = tiny_round()
    plan, tag = solve_verified(api_client, tables, tmp_path / "first")
    url = f"/v1/plans/{plan['id']}"
    assert placed(plan)["G"] == "1103"
    body = {"responses": [
        {"case_id": "A", "decision": "accepted"},
        {"case_id": "G", "municipality_id": "1103", "decision": "declined", "reason": "no school place"},
    ]}
    assert_error(api_client.post(f"{url}/responses", json=body, headers=COORDINATOR), 428)
    response = api_client.post(f"{url}/responses", json=body, headers={**COORDINATOR, "If-Match": tag})
    assert response.status_code == 200, response.text
    out = response.json()
    assert (out["pins_added"], out["exclusions_added"], out["version"]) == (1, 1, 3)
    tag = response.headers["ETag"]
    current = api_client.get(url, headers=VIEWER).json()
    dwelling_a = next(p for p in plan["result"]["placements"] if p["case_id"] == "A")["dwelling_id"]
    assert current["pins"] == [{"case_id": "A", "municipality_id": "0301", "dwelling_id": dwelling_a}]
    assert current["exclusions"] == [{"case_id": "G", "municipality_id": "1103",
                                      "reason": "declined: no school place"}]
    recorded = api_client.get(f"{url}/responses", headers=VIEWER).json()
    assert [(r["case_id"], r["decision"], r["actor"], r["run_number"]) for r in recorded] == [
        ("A", "accepted", "alice", 1), ("G", "declined", "alice", 1)]

    response = api_client.post(f"{url}/resolve", headers={**COORDINATOR, "If-Match": tag})
    assert response.status_code == 202
    again, tag = wait_for(api_client, plan["id"])
    where = placed(again)
    assert where["A"] == "0301" and where.get("G") != "1103"
    verify_result(tables, again, tmp_path / "again")
    audit = api_client.get(f"{url}/audit", headers=VIEWER).json()["items"]
    entry = next(e for e in audit if e["action"] == "responses-recorded")
    assert entry["actor"] == "alice" and entry["detail"] == {"run": 1, "accepted": ["A"], "declined": ["G@1103"]}


def test_bad_responses_are_all_listed_and_nothing_is_recorded(api_client, solved):
    url = f"/v1/plans/{solved['id']}"
    tag = api_client.get(url, headers=VIEWER).headers["ETag"]
    body = {"responses": [
        {"case_id": "ZZ", "decision": "accepted"},
        {"case_id": "B", "decision": "accepted"},  # unplaced: not proposed
        {"case_id": "A", "municipality_id": "1103", "decision": "declined"},
        {"case_id": "F", "decision": "declined"},
        {"case_id": "F", "decision": "accepted"},
    ]}
    detail = assert_error(api_client.post(f"{url}/responses", json=body, headers={**COORDINATOR, "If-Match": tag}),
                          422)
    assert [(i["row"], i["rule"]) for i in detail] == [(2, "unknown-case"), (3, "not-proposed"),
                                                       (4, "not-proposed"), (6, "duplicate")]
    assert_error(api_client.post(f"{url}/responses", json={"responses": [{"case_id": "A", "decision": "maybe"}]},
                                 headers={**COORDINATOR, "If-Match": tag}), 422, "literal_error")
    assert_error(api_client.post(f"{url}/responses", json={"responses": []},
                                 headers={**COORDINATOR, "If-Match": tag}), 422, "too_short")
    assert api_client.get(f"{url}/responses", headers=VIEWER).json() == []
    assert api_client.get(url, headers=VIEWER).headers["ETag"] == tag


# -- explanations and recommendations ------------------------------------------------------------

def test_explanation_of_a_placed_and_an_unplaced_case(api_client, solved):
    url = f"/v1/plans/{solved['id']}/cases"
    a = api_client.get(f"{url}/A/explanation", headers=VIEWER)
    assert a.status_code == 200, a.text
    a = a.json()
    assert a["status"] == "placed" and a["municipality_id"] == "0301"
    assert a["tie"] == {"municipality_id": "0301", "honoured": True}
    assert a["urgency"]["rank"] == 3 and a["urgency"]["wait_days"] == 200 and a["urgency"]["long_waiting_members"] == 1
    assert a["housing"]["bedrooms_wasted"] == a["housing"]["bedrooms"] - a["housing"]["bedrooms_needed"]
    assert a["terms"]["ties"] == 1.0 and a["levels"][0]["terms"] == ["urgency"]
    assert "tie to 0301 is honoured" in a["text"]
    h = api_client.get(f"{url}/H/explanation", headers=VIEWER).json()
    assert h["status"] == "unplaced" and h["rule"] == "resolution" and h["reason"]
    assert h["tie"] == {"municipality_id": "1103", "honoured": False}
    assert_error(api_client.get(f"{url}/NOPE/explanation", headers=VIEWER), 404)
    assert_error(api_client.get("/v1/plans/pln_nope/cases/A/explanation", headers=VIEWER), 404)


def test_recommendations_rank_municipalities_by_change(api_client, solved):
    url = f"/v1/plans/{solved['id']}/cases"
    started = time.monotonic()
    response = api_client.get(f"{url}/H/recommendations?limit=3", headers=VIEWER)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "unplaced" and body["current_municipality_id"] is None
    assert body["considered"] == 2  # 0301 and 1103 (5001 resolved nothing)
    changes = [tuple(c["change"]) for c in body["candidates"]]
    assert changes == sorted(changes, reverse=True)
    top = body["candidates"][0]
    assert top["municipality_id"] in {"0301", "1103"} and len(top["change"]) == 3
    assert set(top["terms_change"]) == {"urgency", "ties", "scores", "housing_fit", "spread"}
    first_time = time.monotonic() - started
    started = time.monotonic()
    assert api_client.get(f"{url}/H/recommendations?limit=3", headers=VIEWER).json() == body  # kept for the run
    assert time.monotonic() - started < max(first_time, 0.5)
    local = api_client.get(f"{url}/A/recommendations?time_limit=0", headers=VIEWER).json()
    assert local["status"] == "placed" and local["resolved"] == 0
    assert all(c["municipality_id"] != "0301" for c in local["candidates"])
    assert_error(api_client.get(f"{url}/NOPE/recommendations", headers=VIEWER), 404)
    assert_error(api_client.get(f"{url}/A/recommendations?limit=0", headers=VIEWER), 422)
