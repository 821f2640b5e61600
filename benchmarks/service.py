"""The HTTP service on national rounds, as an integrating system sees it.

Starts ``allocator serve`` (SQLite in a temporary folder) and, for each named round
(``allocator.demo.NAMED``, written by ``benchmarks.generate``): uploads it as a zip, starts a
plan and follows it with ``GET`` until the run ends (the solve's time limit ``--time-limit``;
``--urgency`` solves level 1 alone), reads the plan with its result, explains its first case and
asks for its recommendations. Every row gives the wall time of each step as the client saw it;
the worker's verification of the plan (``allocator verify``) must pass.

    python -m benchmarks.service --names national-2k,national-30k
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from rich.console import Console

from .generate import DEFAULT_DIR, MARKER, ensure_instance, named
from .reference import ROW_PACE_TEXT, reference_timings, row_pace
from .report import command_line, markdown_table, print_table, save
from .run import DEFAULT_OUT, git_commit, machine, machine_text

KEY = "benchmark-coordinator"
FIELDS = ["instance", "levels", "time_limit", "upload_s", "start_s", "to_running_s", "job_s", "result_s",
          "result_mb", "status", "placed", "verified", "explain_s", "recommend_s", "host_lp_s", "host_loop_s"]
HEADINGS = ["instance", "levels", "time limit", "upload s", "start s", "to running s", "job s", "result s",
            "result MB", "status", "placed", "verified", "explain s", "recommend s", "host LP s", "host loop s"]
_LEFT = ("instance", "levels", "status", "verified")


def _left(heading: str) -> bool:
    return heading in _LEFT


def zipped(folder: Path) -> bytes:
    """The problem folder as a zip (its benchmark marker left out: the service takes problem files only)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.name != MARKER:
                archive.write(path, path.name)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "ALLOCATOR_API_KEYS": f"{KEY}:coordinator", "ALLOCATOR_DATA_DIR": str(data_dir),
           "DATABASE_URL": ""}
    command = [sys.executable, "-c", "import sys; from allocator.cli import main; sys.exit(main())",
               "serve", "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_until_up(client, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server ended with exit code {server.returncode}")
        try:
            if client.get("/health").status_code == 200:
                return
        except Exception:  # not listening yet
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not answer /health in time")


def round_row(client, name: str, folder: Path, time_limit: float, urgency: bool,
              recommend_time_limit: float | None = None) -> dict[str, Any]:
    """One round through the service, each step timed as the client saw it."""
    pace = row_pace()

    def timed(call):
        started = time.perf_counter()
        response = call()
        if response.status_code >= 400:
            raise RuntimeError(f"{name}: {response.request.method} {response.request.url} answered "
                               f"{response.status_code}: {response.text[:300]}")
        return response, time.perf_counter() - started

    body = zipped(folder)
    problem, upload_s = timed(lambda: client.post(f"/v1/problems?name={name}", content=body,
                                                  headers={"Content-Type": "application/zip"}))
    settings: dict[str, Any] = {"solver": {"time_limit": time_limit}}
    if urgency:
        settings["objective"] = {"priorities": [["urgency"]]}
    started = time.perf_counter()
    plan, start_s = timed(lambda: client.post("/v1/plans", json={"problem_id": problem.json()["id"],
                                                                  "settings": settings}))
    plan_id = plan.json()["id"]
    to_running = None
    while True:
        run = client.get(f"/v1/plans/{plan_id}?result=false").json()["runs"][-1]
        if to_running is None and run["status"] != "queued":
            to_running = time.perf_counter() - started
        if run["status"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    job_s = time.perf_counter() - started
    full, result_s = timed(lambda: client.get(f"/v1/plans/{plan_id}"))
    result = full.json()["result"]
    case_id = result["placements"][0]["case_id"]
    _, explain_s = timed(lambda: client.get(f"/v1/plans/{plan_id}/cases/{case_id}/explanation"))
    query = "" if recommend_time_limit is None else f"?time_limit={recommend_time_limit:g}"
    _, recommend_s = timed(lambda: client.get(f"/v1/plans/{plan_id}/cases/{case_id}/recommendations{query}"))
    verification = result.get("verification") or {}
    return {
        "instance": name, "levels": "urgency" if urgency else "all", "time_limit": time_limit,
        "upload_s": round(upload_s, 3), "start_s": round(start_s, 3), "to_running_s": round(to_running, 3),
        "job_s": round(job_s, 3), "result_s": round(result_s, 3), "result_mb": round(len(full.content) / 1e6, 2),
        "status": result["status"], "placed": len(result["placements"]),
        "verified": "yes" if verification.get("ok") else "no", "explain_s": round(explain_s, 3),
        "recommend_s": round(recommend_s, 3), **pace,
    }


def _cells(r: dict[str, Any]) -> list[str]:
    return [r["instance"], r["levels"], f"{r['time_limit']:g}", f"{r['upload_s']:.2f}", f"{r['start_s']:.2f}",
            f"{r['to_running_s']:.2f}", f"{r['job_s']:.2f}", f"{r['result_s']:.2f}", f"{r['result_mb']:.2f}",
            r["status"], f"{r['placed']:,}", r["verified"], f"{r['explain_s']:.2f}", f"{r['recommend_s']:.2f}",
            f"{r['host_lp_s']:.3f}", f"{r['host_loop_s']:.3f}"]


def markdown(rows: list[dict[str, Any]], info: dict[str, Any], commit: str, day: str, command: str) -> str:
    lines = [
        f"# The HTTP service on national rounds, {day}",
        "",
        f"Machine: {machine_text(info)}",
        f"Commit {commit}. Command: `{command}`.",
        "",
        "Wall time as the client saw it: `upload` posts the round as a zip (validated and stored); `start` "
        "posts the plan; `to running` from that post until the run left the queue; `job` until the run ended "
        "(the worker solved, verified and stored the plan; polled every 50 ms); `result` reads the plan with "
        "its result (`result MB` its size); `explain` and `recommend` ask about the plan's first case "
        "(recommendations in the service's process pool, with the time limit of the command, else the service's "
        "default of 10 s). `verified` is the "
        "worker's check of the plan against every hard rule. " + ROW_PACE_TEXT,
        "",
    ]
    lines += markdown_table(HEADINGS, _left, [_cells(r) for r in rows])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.service", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", default="national-2k,national-30k",
                        help="comma-separated names of allocator.demo.NAMED")
    parser.add_argument("--time-limit", type=float, default=10.0, help="each solve's time limit")
    parser.add_argument("--urgency", action="store_true", help="solve level 1 (urgency) alone")
    parser.add_argument("--recommend-time-limit", type=float,
                        help="the recommendations' time limit (default: the service's, 10 s)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of each name, one after the other")
    parser.add_argument("--instances", type=Path, default=DEFAULT_DIR, help="where the rounds are written")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the results go")
    parser.add_argument("--no-save", action="store_true", help="only print")
    args = parser.parse_args(argv)
    import httpx2

    try:
        names = named(args.names)
    except ValueError as exc:
        parser.error(str(exc))
    folders = {name: ensure_instance(name, args.instances) for name in names}
    console = Console()
    info, commit = machine(), git_commit()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_server(Path(tmp) / "data", port, Path(tmp) / "server.log")
        try:
            with httpx2.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY},
                               timeout=600) as client:
                wait_until_up(client, server)
                for name in names:
                    for _ in range(args.repeats):
                        rows.append(round_row(client, name, folders[name], args.time_limit, args.urgency,
                                              args.recommend_time_limit))
                        console.log(f"{name}: job {rows[-1]['job_s']:.2f} s, {rows[-1]['status']}, "
                                    f"verified {rows[-1]['verified']}")
        finally:
            server.terminate()
            server.wait(timeout=60)
    info["reference_end"] = reference_timings()

    print_table(console, "the HTTP service on national rounds", HEADINGS, _left, [_cells(r) for r in rows])
    if not args.no_save:
        text = markdown(rows, info, commit, dt.date.today().isoformat(), command_line("benchmarks.service", argv))
        save(args.out, "service" + ("-urgency" if args.urgency else ""), FIELDS, rows, commit, text, console)
    return 1 if any(r["verified"] != "yes" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
