"""The real server: ``allocator serve`` on a local port, the `small` demo round solved end to
end over HTTP, a shutdown in the middle of a second solve, a restart, and everything still there."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from allocator.demo import NAMED, demo_settings, generate_tables
from test_api_support import COORDINATOR, KEYS, VIEWER, as_json, verify_result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m allocator.cli serve`` in a subprocess, logging to a file."""

    def __init__(self, folder: Path, port: int):
        self.folder = folder
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None
        self.log = folder / "server.log"

    def start(self) -> None:
        env = {**os.environ, "ALLOCATOR_DATA_DIR": str(self.folder / "data"), "ALLOCATOR_API_KEYS": KEYS,
               "ALLOCATOR_POLL_INTERVAL": "0.2", "ALLOCATOR_SHUTDOWN_GRACE": "15", "ALLOCATOR_MAX_WORKERS": "2"}
        env.pop("DATABASE_URL", None)
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "allocator.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx2.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not come up:\n" + self.log.read_text()[-3000:]
            time.sleep(0.2)

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns the exit code (uvicorn re-raises the
        signal after a clean shutdown, so -SIGTERM is a clean exit too)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            pytest.fail("server did not stop on SIGTERM:\n" + self.log.read_text()[-3000:])

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path, _free_port())
    yield s
    s.kill()


def _wait(client: httpx2.Client, plan_id: str, until, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        plan = client.get(f"/v1/plans/{plan_id}", headers=VIEWER).json()
        if until(plan):
            return plan
        assert time.monotonic() < deadline, plan.get("run")
        time.sleep(0.3)


def test_serve_solve_shutdown_restart(server, tmp_path):
    tables = generate_tables(NAMED["small"])
    settings = demo_settings(6.0)
    settings["as_of"] = settings["as_of"].isoformat()
    server.start()
    with httpx2.Client(base_url=server.url, timeout=60) as client:
        problem = client.post("/v1/problems", json={"name": "small", "files": as_json(tables), "settings": settings},
                              headers=COORDINATOR)
        assert problem.status_code == 201, problem.text
        problem_id = problem.json()["id"]
        created = client.post("/v1/plans", json={"problem_id": problem_id}, headers=COORDINATOR)
        assert created.status_code == 202, created.text
        plan_id = created.json()["id"]
        done = _wait(client, plan_id, lambda p: p["status"] not in ("queued", "running"))
        assert done["status"] == "done", done["run"]
        assert done["result"]["kpis"]["cases"] == 200 and done["result"]["kpis"]["cases_placed"] > 150
        assert done["result"]["summary"]["input_digest"] == problem.json()["digest"]
        verify_result(tables, done, tmp_path / "first")

        # A second, long solve: the server stops in the middle of it.
        long = client.post("/v1/plans", json={"problem_id": problem_id, "settings": {"solver": {"time_limit": 120}}},
                           headers=COORDINATOR).json()
        _wait(client, long["id"], lambda p: p["status"] == "running" and p["run"]["progress"]["phase"] != "building")
    assert server.stop() in (0, -signal.SIGTERM)

    server.start()
    with httpx2.Client(base_url=server.url, timeout=60) as client:
        again = client.get(f"/v1/plans/{plan_id}", headers=VIEWER).json()
        assert again["status"] == "done" and again["version"] == done["version"]
        assert again["result"]["placements"] == done["result"]["placements"]
        interrupted = client.get(f"/v1/plans/{long['id']}", headers=VIEWER).json()
        assert interrupted["status"] == "stopped", interrupted["run"]
        assert interrupted["run"]["stop_reason"] == "the server shut down"
        assert interrupted["result"]["placements"]
        verify_result(tables, interrupted, tmp_path / "interrupted")
        listed = client.get("/v1/plans", headers=VIEWER).json()
        assert {p["id"] for p in listed["items"]} == {plan_id, long["id"]}
        assert client.get("/health").json()["jobs"]["running"] == 0
    assert server.stop() in (0, -signal.SIGTERM)
