"""Domain errors of usage-svc, and the one table that makes them problem responses.

Services raise these with what to do next (and keyword ``extensions``, which land
in the problem body); :data:`PROBLEMS` maps each class to its status, slug and
title (:mod:`stellara_kit.errors`).
"""

from __future__ import annotations

from stellara_kit.errors import DomainError, ProblemType
from stellara_kit.errors import TenantNotFound as TenantNotFound  # one code in every service


class InvalidQuery(DomainError):
    """A usage query's range, zone or meters the rules refuse."""


class MeterAggregationLocked(DomainError):
    """A meter with data keeps its aggregation."""


class InvalidMeter(DomainError):
    """A meter definition the rules refuse."""


class PlanNotInCatalogue(DomainError):
    """The tenant's plan is missing from the plan catalogue."""


#: domain error → (status, slug, title); the one mapping of the service
PROBLEMS: dict[type[DomainError], ProblemType] = {
    InvalidQuery: (422, "invalid-query", "Invalid query"),
    MeterAggregationLocked: (409, "meter-aggregation-locked", "Meter aggregation cannot change"),
    InvalidMeter: (422, "invalid-meter", "Invalid meter"),
    PlanNotInCatalogue: (409, "plan-not-in-catalogue", "Plan not in the catalogue"),
}
