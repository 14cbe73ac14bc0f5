"""The per-tenant token bucket."""

from __future__ import annotations

from uuid import uuid4

import pytest

from gateway.ratelimit import RateLimited, RateLimiter
from gateway.settings import Settings


def limiter(**settings: object) -> RateLimiter:
    return RateLimiter(Settings(**settings))  # type: ignore[arg-type]


class TestTokenBucket:
    def test_a_burst_up_to_the_bucket_size_passes_then_429(self) -> None:
        bucket = limiter(rate_limit_per_plan={"starter": 10.0}, rate_limit_burst_seconds=2.0)
        tenant = uuid4()
        for _ in range(20):
            bucket.take(tenant, "starter", now=100.0)
        with pytest.raises(RateLimited) as refused:
            bucket.take(tenant, "starter", now=100.0)
        assert refused.value.status == 429
        assert refused.value.headers == {"Retry-After": "1"}

    def test_tokens_come_back_at_the_plans_rate(self) -> None:
        bucket = limiter(rate_limit_per_plan={"free": 2.0}, rate_limit_burst_seconds=1.0)
        tenant = uuid4()
        bucket.take(tenant, "free", now=0.0)
        bucket.take(tenant, "free", now=0.0)
        with pytest.raises(RateLimited):
            bucket.take(tenant, "free", now=0.1)
        bucket.take(tenant, "free", now=0.6)  # half a second refilled one token

    def test_retry_after_says_when_a_token_is_back(self) -> None:
        bucket = limiter(rate_limit_per_plan={"slow": 0.2}, rate_limit_burst_seconds=5.0)
        tenant = uuid4()
        bucket.take(tenant, "slow", now=0.0)
        with pytest.raises(RateLimited) as refused:
            bucket.take(tenant, "slow", now=0.0)
        assert refused.value.headers == {"Retry-After": "5"}

    def test_plans_not_listed_get_the_default_rate_and_tenants_do_not_share(self) -> None:
        bucket = limiter(rate_limit_default=1.0, rate_limit_burst_seconds=1.0)
        first, second = uuid4(), uuid4()
        bucket.take(first, "bespoke", now=0.0)
        with pytest.raises(RateLimited):
            bucket.take(first, "bespoke", now=0.0)
        bucket.take(second, "bespoke", now=0.0)
