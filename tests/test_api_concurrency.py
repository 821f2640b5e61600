"""Two edits racing from the same version: exactly one wins, the other gets 409, nothing is lost
or mixed. And a restart: runs a dead server left running are failed with a reason, queued ones
run."""

from __future__ import annotations

import importlib
import threading

from fastapi.testclient import TestClient

from api import store
from api.main import create_app
from api.models import RunRow
from test_api_support import (
    COORDINATOR,
    VIEWER,
    api_client,  # noqa: F401 - fixture
    make_config,
    solve_verified,
    start,
    tiny_round,
    upload,
    verify_result,
    wait_for,
)


def _race(client: TestClient, requests: list[tuple[str, str, dict]]) -> list:
    barrier = threading.Barrier(len(requests))
    responses: list = [None] * len(requests)

    def send(i: int) -> None:
        method, url, kwargs = requests[i]
        barrier.wait()
        responses[i] = client.request(method, url, **kwargs)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return responses


def test_two_stale_edits_one_wins_one_gets_409(api_client, tmp_path):
    plan, tag = solve_verified(api_client, tiny_round(), tmp_path)
    url = f"/v1/plans/{plan['id']}"
    headers = {**COORDINATOR, "If-Match": tag}
    mine = {"pins": [{"case_id": "A", "municipality_id": "0301"}]}
    theirs = {"pins": [{"case_id": "H", "municipality_id": "1103"}]}
    for _ in range(3):  # a few rounds: the race must never let both through
        version = int(api_client.get(url, headers=VIEWER).headers["ETag"].strip('"'))
        headers["If-Match"] = f'"{version}"'
        first, second = _race(api_client, [("PUT", f"{url}/pins", {"json": mine, "headers": headers}),
                                           ("PUT", f"{url}/pins", {"json": theirs, "headers": headers})])
        codes = sorted([first.status_code, second.status_code])
        assert codes == [200, 409], (first.text, second.text)
        winner, loser = (first, second) if first.status_code == 200 else (second, first)
        assert loser.json()["detail"][0]["rule"] == "stale-version"
        now = api_client.get(url, headers=VIEWER)
        assert now.headers["ETag"] == winner.headers["ETag"] == f'"{version + 1}"'
        assert now.json()["pins"] == winner.json()["pins"]  # the winner's edit, whole
    audit = api_client.get(f"{url}/audit", headers=VIEWER).json()["items"]
    assert [e["action"] for e in audit].count("pins-replaced") == 3


def test_a_response_and_a_resolve_racing(api_client, tmp_path):
    plan, tag = solve_verified(api_client, tiny_round(), tmp_path)
    url = f"/v1/plans/{plan['id']}"
    headers = {**COORDINATOR, "If-Match": tag}
    answer = {"responses": [{"case_id": "G", "decision": "declined", "reason": "no school"}]}
    first, second = _race(api_client, [("POST", f"{url}/responses", {"json": answer, "headers": headers}),
                                       ("POST", f"{url}/resolve", {"headers": headers})])
    assert sorted([first.status_code, second.status_code]) in ([200, 409], [202, 409])
    finished, _ = wait_for(api_client, plan["id"])
    if first.status_code == 200:  # the answer won: no run was queued on the stale version
        assert finished["result_run"] == 1 and finished["exclusions"]
    else:
        assert finished["result_run"] == 2 and not finished["exclusions"]
        verify_result(tiny_round(), finished, tmp_path / "again")


def test_restart_fails_interrupted_runs_and_runs_queued_ones(tmp_path):
    config = make_config(tmp_path, max_workers=1)
    app = create_app(config)
    with TestClient(app) as client:
        problem = upload(client, tiny_round())
        interrupted = start(client, problem["id"])
        wait_for(client, interrupted["id"])
        waiting = start(client, problem["id"])
        wait_for(client, waiting["id"])
    # Pretend the server died: one run mid-solve, one never started.
    with app.state.sessions() as session:
        first = session.query(RunRow).filter(RunRow.plan_id == interrupted["id"]).one()
        first.status, first.result = "running", None
        second = session.query(RunRow).filter(RunRow.plan_id == waiting["id"]).one()
        second.status, second.result, second.started_at = "queued", None, None
        session.commit()
    with TestClient(create_app(config)) as client:
        failed, _ = wait_for(client, interrupted["id"])
        assert failed["status"] == "failed"
        assert "interrupted" in failed["run"]["error"] and failed["result"] is None
        resumed, _ = wait_for(client, waiting["id"])
        assert resumed["status"] == "done" and resumed["result"]["placements"]
        verify_result(tiny_round(), resumed, tmp_path / "resumed")
        audit = client.get(f"/v1/plans/{interrupted['id']}/audit", headers=VIEWER).json()["items"]
        assert audit[-1]["action"] == "solve-failed" and audit[-1]["actor"] == "system"


def _crash(run_id: int, database_url: str) -> None:
    """A worker that claims its run and dies without a word (as on a segfault or OOM kill)."""
    import os

    from api import store
    from api.db import make_engine, make_sessionmaker

    with make_sessionmaker(make_engine(database_url))() as session:
        store.claim_run(session, run_id, os.getpid())
    os._exit(3)


def test_a_worker_that_dies_gets_its_run_failed(api_client, tmp_path):
    import multiprocessing
    import time

    plan, tag = solve_verified(api_client, tiny_round(), tmp_path)
    app = api_client.app
    with app.state.sessions() as session:
        run = RunRow(plan_id=plan["id"], number=2, status="queued", settings=plan["settings"], created_by="test")
        session.add(run)
        session.commit()
        run_id = run.id
    runner = app.state.runner
    process = multiprocessing.get_context("spawn").Process(target=_crash, args=(run_id, app.state.config.sqlalchemy_url))
    process.start()
    with runner._lock:  # hand it to the runner as if it had started it
        runner._running[run_id] = process
    deadline = time.monotonic() + 30
    while True:
        with app.state.sessions() as session:
            status, error = session.query(RunRow.status, RunRow.error).filter(RunRow.id == run_id).one()
        if status not in ("queued", "running"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status == "failed" and "exit code 3" in error
    audit = api_client.get(f"/v1/plans/{plan['id']}/audit", headers=VIEWER).json()["items"]
    assert audit[-1]["action"] == "solve-failed" and audit[-1]["version"] == int(tag.strip('"')) + 1


def test_a_plan_read_while_a_solve_finishes_carries_the_new_version(api_client, tmp_path, monkeypatch):
    # The plan and its runs are read by separate statements. A solve finishing between them (its
    # status and the plan's new version committed at once) must not give the new status with the
    # old ETag: an edit sent with it would get 409 (test_a_response_and_a_resolve_racing, once).
    plan, tag = solve_verified(api_client, tiny_round(), tmp_path)
    plans_module = importlib.import_module("api.routers.plans")
    real = plans_module.runs_of
    sessions = api_client.app.state.sessions
    reads: list[int] = []

    def finishing_meanwhile(session, plan_id):
        if not reads:
            with sessions() as worker:  # another process's commit, between the two reads
                store.bump_plan(worker, plan_id)
                worker.commit()
        reads.append(1)
        return real(session, plan_id)

    monkeypatch.setattr(plans_module, "runs_of", finishing_meanwhile)
    response = api_client.get(f"/v1/plans/{plan['id']}", headers=VIEWER)
    moved = int(tag.strip('"')) + 1
    assert response.json()["version"] == moved and response.headers["ETag"] == f'"{moved}"'
    assert len(reads) == 2  # read again once


def test_workers_fork_from_a_server_that_imported_them_or_spawn_where_there_is_none(monkeypatch):
    import multiprocessing

    from api.jobs import worker_context

    assert worker_context().get_start_method() == "forkserver"  # Linux: the fork server
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert worker_context().get_start_method() == "spawn"
