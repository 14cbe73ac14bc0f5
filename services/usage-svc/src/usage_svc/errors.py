"""Domain errors, each a problem+json response (RFC 9457) with what to do next."""

from __future__ import annotations

from stellara_kit.problems import Conflict, Problem, Unprocessable
from stellara_kit.problems import TenantNotFound as TenantNotFound  # one code in every service


class InvalidQuery(Unprocessable):
    slug, title = "invalid-query", "Invalid query"


class MeterAggregationLocked(Conflict):
    slug, title = "meter-aggregation-locked", "Meter aggregation cannot change"


class InvalidMeter(Unprocessable):
    slug, title = "invalid-meter", "Invalid meter"


class PlanNotInCatalogue(Problem):
    status, slug, title = 409, "plan-not-in-catalogue", "Plan not in the catalogue"
