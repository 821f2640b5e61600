"""Why a plan does what it does with one case: its urgency, tie, score and dwelling where it is
placed, or the rule that blocks it where it is not."""

from __future__ import annotations

from typing import Any

from allocator import Problem
from allocator.recommend import allowed_municipalities
from allocator.scoring import case_terms, spread_cost

from .service import jsonable, placements_frame


def explain_case(problem: Problem, result: dict[str, Any], case_id: str) -> dict[str, Any]:
    """The explanation of ``case_id`` in a stored result (see :class:`api.schemas.Explanation`).

    Raises
    ------
    KeyError
        When the case is not in the problem.
    """
    cases = problem.cases
    case = cases.loc[case_id]
    plan = placements_frame(result)
    row = plan[plan["case_id"] == case_id]
    urgency_rank = int((cases["urgency"] > case["urgency"]).sum()) + 1
    info = {
        "size": int(case["size"]), "adults": int(case["adults"]), "children": int(case["children"]),
        "minors": int(case["minors"]), "category": case["category"] or None,
        "residence_date": _date(case["residence_date"]), "needs_step_free": bool(case["needs_step_free"]),
        "bedrooms_needed": int(case["bedrooms"]),
    }
    urgency = {
        "value": float(case["urgency"]), "wait_days": int(case["wait_days"]),
        "long_waiting_members": int(case["long_waiting"]),
        "rank": urgency_rank, "of": len(cases),
    }
    tie_id = case["tie_municipality_id"] or None
    out: dict[str, Any] = {"case_id": case_id, "case": info, "urgency": urgency}
    who = f"Case {case_id} ({info['size']} person{'s' if info['size'] != 1 else ''}, waited {urgency['wait_days']} days"
    who += ", long-waiting)" if urgency["long_waiting_members"] else ")"

    if row.empty:
        unplaced = [u for u in result.get("unplaced", []) if u["case_id"] == case_id]
        rule, reason = (unplaced[0]["rule"], unplaced[0]["reason"]) if unplaced else (
            "unknown", "the plan does not list this case")
        out.update(status="unplaced", rule=rule, reason=reason,
                   text=f"{who} is not placed: [{rule}] {reason}.")
        if tie_id:
            out["tie"] = {"municipality_id": tie_id, "honoured": False}
        return jsonable(out)

    muni, dwelling, pinned = row["municipality_id"].iloc[0], row["dwelling_id"].iloc[0], bool(row["pinned"].iloc[0])
    mrow = problem.municipalities.loc[muni]
    terms = {k: v + 0.0 for k, v in case_terms(problem, case_id, muni, dwelling).items()}  # no -0.0
    placed_there = plan[plan["municipality_id"] == muni]
    persons = float(cases.loc[placed_there["case_id"], "size"].sum())
    resolution = float(mrow["resolution_persons"])
    terms["spread"] = -float(spread_cost(resolution, persons) - spread_cost(resolution, persons - info["size"]))
    settings = problem.settings
    levels = [{"terms": list(level), "value": sum(settings.objective.weight(t) * terms.get(t, 0.0) for t in level)}
              for level in settings.objective.priorities]
    out.update(
        status="pinned" if pinned else "placed", municipality_id=muni, municipality_name=str(mrow["name"]),
        dwelling_id=dwelling or None, terms=terms, levels=levels,
        municipality={"resolution_persons": int(mrow["resolution_persons"]), "placed_persons": int(persons),
                      "resolution_minors": int(mrow["resolution_minors"]),
                      "share_of_resolution": round(persons / resolution, 4) if resolution else None},
    )
    parts = [f"{who} is {'pinned' if pinned else 'placed'} in {mrow['name']} ({muni})"]
    if tie_id:
        honoured = tie_id == muni
        tie: dict[str, Any] = {"municipality_id": tie_id, "honoured": honoured}
        if not honoured:
            excluded = ((problem.exclusions["case_id"] == case_id)
                        & (problem.exclusions["municipality_id"] == tie_id)).any()
            if excluded:
                tie["why_not"] = "the pair is excluded"
            elif tie_id not in allowed_municipalities(problem, case_id):
                tie["why_not"] = ("the tie municipality cannot take it at all (resolution, minors, services "
                                  "or housing)")
            else:
                tie["why_not"] = ("the tie municipality could take it, but the plan's higher priorities "
                                  "(e.g. more urgent cases there) were worth more")
        out["tie"] = tie
        parts.append(f"its tie to {tie_id} is {'honoured' if honoured else 'not honoured: ' + tie['why_not']}")
    if problem.has_scores:
        scores = problem.scores[problem.scores["case_id"] == case_id].sort_values("score", ascending=False)
        here = terms["scores"]
        best = scores.iloc[0] if len(scores) else None
        out["score"] = {
            "value": here,
            "best": float(best["score"]) if best is not None else None,
            "best_municipality_id": best["municipality_id"] if best is not None else None,
            "rank": int((scores["score"] > here).sum()) + 1,
            "of": int(len(scores)),
        }
        parts.append(f"its score there is {here:g} (best {out['score']['best']}, rank {out['score']['rank']})")
    if problem.housing_modelled and dwelling:
        d = problem.dwellings.loc[dwelling]
        wasted = abs(terms["housing_fit"])
        out["housing"] = {"dwelling_id": dwelling, "bedrooms": int(d["bedrooms"]),
                          "max_occupants": int(d["max_occupants"]), "shared": bool(d["shared"]),
                          "step_free": bool(d["step_free"]), "bedrooms_needed": info["bedrooms_needed"],
                          "bedrooms_wasted": int(wasted)}
        parts.append(f"dwelling {dwelling} has {int(d['bedrooms'])} bedroom(s) for {info['bedrooms_needed']} "
                     f"needed ({int(wasted)} wasted{', shared flat' if bool(d['shared']) else ''})")
    out["text"] = "; ".join(parts) + "."
    return jsonable(out)


def _date(value) -> str | None:
    try:
        return value.date().isoformat()
    except (AttributeError, ValueError):
        return None
