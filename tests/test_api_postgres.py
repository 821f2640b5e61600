"""The service on PostgreSQL (DATABASE_URL) instead of SQLite: a throwaway server is started in a
temporary folder for the test, when the PostgreSQL server programs are installed."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from test_api_support import COORDINATOR, make_config, solve_verified, tiny_round


def _server_bin() -> Path | None:
    for name in ("initdb",):
        found = shutil.which(name)
        if found:
            return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    bin_dir = _server_bin()
    try:
        import psycopg  # noqa: F401 - the driver DATABASE_URL names
    except ImportError:
        bin_dir = None
    if bin_dir is None:
        pytest.skip("PostgreSQL server programs or psycopg not installed: the SQLite tests cover the service")
    # Not under pytest's private temporary folder: the server may run as another user.
    folder = Path(tempfile.mkdtemp(prefix="allocator-pg-"))
    data, sockets = folder / "data", folder / "sock"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    subprocess.run(as_user + [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
                              f"-p {port} -k {sockets} -c listen_addresses=''", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={sockets}&port={port}"
    finally:
        subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_solve_edit_and_restart_on_postgres(postgres_url, tmp_path):
    config = make_config(tmp_path, database_url=postgres_url)
    tables = tiny_round()
    with TestClient(create_app(config)) as client:
        plan, tag = solve_verified(client, tables, tmp_path)
        # A stale edit is refused, never a lost update.
        pins = {"pins": [{"case_id": "A", "municipality_id": "0301", "dwelling_id": ""}]}
        fresh = client.put(f"/v1/plans/{plan['id']}/pins", json=pins, headers={**COORDINATOR, "If-Match": tag})
        assert fresh.status_code == 200, fresh.text
        stale = client.put(f"/v1/plans/{plan['id']}/pins", json=pins, headers={**COORDINATOR, "If-Match": tag})
        assert stale.status_code == 409
    # A new server on the same database finds the plan, its pins and its audit trail.
    with TestClient(create_app(config)) as client:
        again = client.get(f"/v1/plans/{plan['id']}", headers=COORDINATOR)
        assert again.status_code == 200
        assert again.json()["pins"][0]["case_id"] == "A"
        assert again.json()["result"]["placements"] == plan["result"]["placements"]
