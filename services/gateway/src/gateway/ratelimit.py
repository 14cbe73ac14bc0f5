"""Rate limits: token buckets per tenant (sized by plan) and per caller on guessable routes.

A bucket holds ``capacity`` tokens and refills at ``rate`` tokens a second;
every request takes one. An empty bucket answers 429 ``rate-limited`` with
``Retry-After`` (whole seconds until a token is back). Buckets live in the
process: with several gateway replicas each enforces the limit on its share.

- Per tenant: ``rate × burst_seconds`` tokens, the rate of the tenant's plan.
- Accepting an invitation (the path carries a secret token that someone could
  try to guess): every attempt, whatever its answer, takes a token from the
  caller's bucket (its token's subject) and from its client address's bucket;
  each holds a minute's worth of attempts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable
from uuid import UUID

from gateway.settings import Settings
from stellara_kit.problems import Problem


class RateLimited(Problem):
    status, slug, title = 429, "rate-limited", "Too many requests"


class TokenBuckets:
    """Token buckets by key; the least recently used go first beyond ``max_keys``
    (a bucket left alone that long is full again anyway)."""

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        # key -> (tokens, last refill in monotonic seconds), least recently used first
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def wait_for(self, key: Hashable, rate: float, capacity: float, now: float) -> float:
        """Seconds until ``key``'s bucket has a token (0 when it has one now); takes nothing."""
        tokens = self._tokens(key, rate, capacity, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate

    def take(self, key: Hashable, rate: float, capacity: float, now: float) -> float:
        """Take a token and return 0, or return the seconds until one is back."""
        tokens = self._tokens(key, rate, capacity, now)
        taken = tokens >= 1.0
        self._buckets.pop(key, None)
        self._buckets[key] = (tokens - 1.0 if taken else tokens, now)
        if len(self._buckets) > self.max_keys:
            for old in list(self._buckets)[: max(1, self.max_keys // 10)]:
                del self._buckets[old]
        return 0.0 if taken else (1.0 - tokens) / rate

    def _tokens(self, key: Hashable, rate: float, capacity: float, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return capacity
        return min(capacity, bucket[0] + (now - bucket[1]) * rate)


def _retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class RateLimiter:
    """Per-tenant limits, by plan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.burst_seconds = settings.rate_limit_burst_seconds
        self._buckets = TokenBuckets()

    def take(self, tenant_id: UUID, plan: str | None, *, now: float | None = None) -> None:
        """Take one token from the tenant's bucket, or raise :class:`RateLimited`."""
        now = time.monotonic() if now is None else now
        rate = self.settings.rate_for_plan(plan)
        wait = self._buckets.take(tenant_id, rate, max(1.0, rate * self.burst_seconds), now)
        if wait:
            retry_after = _retry_after(wait)
            raise RateLimited(
                f"The tenant's plan allows {rate:g} requests a second; retry in {retry_after} s.",
                headers={"Retry-After": retry_after},
                limit_per_second=rate,
            )


class AcceptAttempts:
    """How often invitation accepts may be tried, per caller and per client address."""

    def __init__(self, settings: Settings) -> None:
        self.per_caller = settings.accept_attempts_per_minute_per_caller
        self.per_address = settings.accept_attempts_per_minute_per_address
        self._buckets = TokenBuckets()

    def take(self, subject: str, address: str | None, *, now: float | None = None) -> None:
        """Count one attempt, or raise :class:`RateLimited` (and count nothing)."""
        now = time.monotonic() if now is None else now
        limits = [(("caller", subject), self.per_caller)]
        if address:
            limits.append((("address", address), self.per_address))
        wait = max(self._buckets.wait_for(k, n / 60, max(1.0, n), now) for k, n in limits)
        if wait:
            retry_after = _retry_after(wait)
            raise RateLimited(
                "Too many attempts at accepting invitations; check the link in the mail and "
                f"retry in {retry_after} s.",
                headers={"Retry-After": retry_after},
            )
        for key, per_minute in limits:
            self._buckets.take(key, per_minute / 60, max(1.0, per_minute), now)
