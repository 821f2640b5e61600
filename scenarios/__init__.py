"""Scenario runner: simulate settlement policies month by month with the real allocator inside.

>>> from scenarios import load_scenario, simulate, total_kpis   # doctest: +SKIP
>>> scenario = load_scenario("scenarios/examples/quick.toml")     # doctest: +SKIP
>>> total_kpis(simulate(scenario, "danish", seed=1))               # doctest: +SKIP

Request and quota rules live in :mod:`scenarios.quotas` (one interface, one module each);
municipal behaviour and its calibration in :mod:`scenarios.behaviour`; the month loop in
:mod:`scenarios.simulation`; KPIs in :mod:`scenarios.kpis`; the parallel runner in
:mod:`scenarios.runner`; the report in :mod:`scenarios.report`. See ``docs/scenarios.md``.
"""

from importlib import import_module
from typing import Any

#: Public names and the module that defines them, imported on first use so that
#: ``allocator --help`` stays quick (the allocator's CLI imports ``scenarios.cli``).
_EXPORTS = {
    "RunResult": "simulation",
    "Scenario": "config",
    "ScenarioError": "config",
    "load_scenario": "config",
    "monthly_kpis": "kpis",
    "run_scenario": "runner",
    "run_tables": "kpis",
    "scenario_from_mapping": "config",
    "simulate": "simulation",
    "total_kpis": "kpis",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'scenarios' has no attribute '{name}'")
