"""Request and quota rules: each splits a national number of persons over municipalities.

Every rule implements :class:`QuotaRule` (``compute(municipalities, total) -> DataFrame``, one
row per municipality) and is a small module: :mod:`.norwegian` (IMDi's request),
:mod:`.danish` (binding municipal quotas), :mod:`.swedish` (county key), :mod:`.fixed` (given
numbers). Whole persons by the largest-remainder method (:mod:`.rounding`).
"""

from __future__ import annotations

from typing import Any

from .base import OUTPUT, QuotaRule, regional_sums, split_minors
from .danish import DanishQuota
from .fixed import FixedQuotas
from .norwegian import NorwegianRequest
from .rounding import largest_remainder
from .swedish import SwedishKey

#: Rule name (as in scenario files and ``allocator quotas --policy``) -> class.
RULES: dict[str, type] = {
    "norwegian": NorwegianRequest,
    "danish": DanishQuota,
    "swedish": SwedishKey,
    "fixed": FixedQuotas,
}


def make_rule(name: str, params: dict[str, Any] | None = None) -> QuotaRule:
    """Build a rule by name with its parameters (as in a scenario file's ``[policy.rule]``)."""
    try:
        cls = RULES[name]
    except KeyError:
        raise ValueError(f"unknown rule '{name}'; choose one of {sorted(RULES)}") from None
    try:
        return cls(**(params or {}))
    except TypeError as exc:
        raise ValueError(f"bad parameters for rule '{name}': {exc}") from None


__all__ = [
    "OUTPUT",
    "RULES",
    "DanishQuota",
    "FixedQuotas",
    "NorwegianRequest",
    "QuotaRule",
    "SwedishKey",
    "largest_remainder",
    "make_rule",
    "regional_sums",
    "split_minors",
]
