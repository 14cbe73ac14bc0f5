"""Per-tenant rate limits: a token bucket per tenant, sized by the tenant's plan.

A bucket holds ``rate × burst_seconds`` tokens and refills at ``rate``
tokens a second; every request takes one. An empty bucket answers 429 with
``Retry-After`` (whole seconds until a token is back). Buckets live in the
process: with several gateway replicas each enforces the limit on its share.
"""

from __future__ import annotations

import math
import time
from uuid import UUID

from gateway.settings import Settings
from stellara_kit.problems import Problem


class RateLimited(Problem):
    status, slug, title = 429, "rate-limited", "Too many requests"


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.burst_seconds = settings.rate_limit_burst_seconds
        # tenant -> [tokens, last refill (monotonic seconds)]
        self._buckets: dict[UUID, list[float]] = {}

    def take(self, tenant_id: UUID, plan: str | None, *, now: float | None = None) -> None:
        """Take one token from the tenant's bucket, or raise :class:`RateLimited`."""
        now = time.monotonic() if now is None else now
        rate = self.settings.rate_for_plan(plan)
        capacity = max(1.0, rate * self.burst_seconds)
        bucket = self._buckets.get(tenant_id)
        if bucket is None:
            bucket = self._buckets[tenant_id] = [capacity, now]
        tokens = min(capacity, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return
        bucket[0] = tokens
        retry_after = max(1, math.ceil((1.0 - tokens) / rate))
        raise RateLimited(
            f"The tenant's plan allows {rate:g} requests a second; retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
            limit_per_second=rate,
        )
