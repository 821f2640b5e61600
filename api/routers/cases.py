"""``/v1/plans/{id}/cases/{case_id}/...``: why a case is where it is, and where else it could go."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from .. import service
from ..deps import SessionDep, UserDep
from ..errors import ApiError, not_found
from ..explain import explain_case
from ..models import RecommendationRow, RunRow
from ..recommendations import BrokenProcessPool, compute
from ..responses import errors
from ..schemas import Explanation, Recommendations
from .plans import load_plan, load_problem, result_run

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/plans/{plan_id}/cases/{case_id}", tags=["explanations"])


def _result_run(session, plan_id: str) -> RunRow:
    load_plan(session, plan_id)
    run = result_run(session, plan_id)
    if run is None:
        raise ApiError.one(409, "no-result", f"plan '{plan_id}' has no result yet")
    return run


@router.get("/explanation", response_model=Explanation, responses=errors(401, 404, 409),
            summary="Why this municipality (score terms), or why unplaced (the blocking rule)")
def explanation(plan_id: str, case_id: str, request: Request, user: UserDep, session: SessionDep) -> Explanation:
    """For a placed case: its urgency and rank, whether its tie is honoured (and if not, why),
    its score there against its best, the dwelling and bedrooms wasted, and its share of each
    objective term. For an unplaced case: the rule that blocks it and the reason."""
    run = _result_run(session, plan_id)
    plan = load_plan(session, plan_id)
    problem_row = load_problem(session, plan.problem_id)
    problem = request.app.state.problem_cache.get(
        run.id, lambda: service.build(problem_row.tables, run.settings, run.pins, run.exclusions))
    if case_id not in problem.cases.index:
        raise not_found("case", case_id)
    data = explain_case(problem, run.result, case_id)
    return Explanation(plan_id=plan_id, run=run.number, **data)


def _prepare(request: Request, plan_id: str, case_id: str, params: str) -> tuple[dict[str, Any] | None, dict | None]:
    with request.app.state.sessions() as session:
        run = _result_run(session, plan_id)
        cached = session.scalars(select(RecommendationRow).where(
            RecommendationRow.run_id == run.id, RecommendationRow.case_id == case_id,
            RecommendationRow.params == params)).first()
        if cached is not None:
            return None, cached.result
        plan = load_plan(session, plan_id)
        problem_row = load_problem(session, plan.problem_id)
        return {"run_id": run.id, "run": run.number, "tables": problem_row.tables, "settings": run.settings,
                "pins": run.pins, "exclusions": run.exclusions, "result": run.result, "case_id": case_id}, None


def _save(request: Request, run_id: int, case_id: str, params: str, result: dict[str, Any]) -> None:
    with request.app.state.sessions() as session:
        session.add(RecommendationRow(run_id=run_id, case_id=case_id, params=params, result=result))
        session.commit()


@router.get("/recommendations", response_model=Recommendations, responses=errors(401, 404, 409, 422, 503),
            summary="The best municipalities for this case, with the change in objective each costs or gains")
async def recommendations(
    plan_id: str, case_id: str, request: Request, user: UserDep,
    limit: Annotated[int, Query(ge=1, le=20, description="how many municipalities")] = 5,
    time_limit: Annotated[float | None, Query(ge=0, le=600, description="seconds of re-solving (0: local "
                                              "moves only); default ALLOCATOR_RECOMMEND_TIME_LIMIT")] = None,
) -> Recommendations:
    """Every municipality the case may go to gets a concrete plan with the case there: moved
    into what the plan leaves, or displacing less urgent cases; the best few are then re-solved
    with the case pinned there (within ``time_limit``). ``change`` is each priority level's
    objective in that plan minus the current plan's (positive: a gain). Computed in a worker
    process and kept for the run, so asking again is instant. See docs/api.md."""
    config = request.app.state.config
    seconds = min(config.recommend_time_limit if time_limit is None else time_limit, config.max_time_limit)
    params = json.dumps({"limit": limit, "time_limit": seconds})
    payload, cached = await run_in_threadpool(_prepare, request, plan_id, case_id, params)
    if cached is None:
        payload.update(limit=limit, time_limit=seconds)
        holder = request.app.state.recommend_pool
        pool = holder.pool()
        try:
            cached = await asyncio.get_running_loop().run_in_executor(pool, compute, payload)
        except BrokenProcessPool:
            holder.discard(pool)
            raise ApiError.one(503, "worker-lost", "the recommendation worker stopped; try again")
        if cached.get("error") == "unknown-case":
            raise not_found("case", case_id)
        await run_in_threadpool(_save, request, payload["run_id"], case_id, params, cached)
        run_number = payload["run"]
    else:
        run_number = await run_in_threadpool(lambda: _run_number(request, plan_id))
    return Recommendations(plan_id=plan_id, run=run_number, **cached)


def _run_number(request: Request, plan_id: str) -> int:
    with request.app.state.sessions() as session:
        return _result_run(session, plan_id).number
