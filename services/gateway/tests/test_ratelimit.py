"""The per-tenant token bucket; the per-caller and per-address budget of invitation accepts."""

from __future__ import annotations

from uuid import uuid4

import pytest

from gateway.ratelimit import AcceptAttempts, RateLimited, RateLimiter
from gateway.settings import Settings
from stellara_kit.testing import Infrastructure

from .conftest import StandIns, gateway_client, user_headers


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


class TestAcceptAttempts:
    def test_a_caller_gets_a_minutes_worth_at_once_then_one_every_few_seconds(self) -> None:
        attempts = AcceptAttempts(Settings(accept_attempts_per_minute_per_caller=10.0))
        for _ in range(10):
            attempts.take("mallory", "10.0.0.1", now=0.0)
        with pytest.raises(RateLimited) as refused:
            attempts.take("mallory", "10.0.0.1", now=0.0)
        assert refused.value.headers == {"Retry-After": "6"}
        attempts.take("mallory", "10.0.0.1", now=6.0)  # one minute / 10 later
        attempts.take("ada", "10.0.0.1", now=6.0)  # another caller has its own budget

    def test_an_address_is_limited_whoever_signs_in(self) -> None:
        attempts = AcceptAttempts(
            Settings(
                accept_attempts_per_minute_per_caller=10.0,
                accept_attempts_per_minute_per_address=3.0,
            )
        )
        for n in range(3):
            attempts.take(f"user-{n}", "10.0.0.1", now=0.0)
        with pytest.raises(RateLimited):
            attempts.take("user-9", "10.0.0.1", now=0.0)
        attempts.take("user-9", "10.0.0.2", now=0.0)

    def test_a_refused_attempt_costs_nothing(self) -> None:
        attempts = AcceptAttempts(
            Settings(
                accept_attempts_per_minute_per_caller=1.0,
                accept_attempts_per_minute_per_address=60.0,
            )
        )
        attempts.take("mallory", "10.0.0.1", now=0.0)
        for _ in range(100):
            with pytest.raises(RateLimited):
                attempts.take("mallory", "10.0.0.1", now=0.0)
        # mallory's refusals did not drain the address's bucket for others
        for n in range(59):
            attempts.take(f"user-{n}", "10.0.0.1", now=0.0)


async def test_guessing_invitation_tokens_at_the_gateway_gets_429(
    infrastructure: Infrastructure,
    topic_prefix: str,
    settings: Settings,
    downstream: StandIns,
) -> None:
    async with gateway_client(settings) as client:
        headers = user_headers(settings, "user", subject="mallory", email="mallory@evil.example")
        guesses = [f"guess-{n:04d}-{'x' * 30}" for n in range(200)]
        answers = [await client.post(f"/invitations/{g}/accept", headers=headers) for g in guesses]
        other = await client.post(
            f"/invitations/{'y' * 43}/accept",
            headers=user_headers(settings, "user", subject="ada", email="ada@acme.example"),
        )

    statuses = [a.status_code for a in answers]
    budget = int(settings.accept_attempts_per_minute_per_caller)
    assert statuses[:budget] == [201] * budget  # the onboarding stand-in answers 201
    assert set(statuses[budget:]) == {429}
    assert len(downstream.onboarding.calls("/invitations/")) == budget + 1
    refused = answers[-1]
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"] == "urn:stellara:problem:rate-limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["instance"] == "/invitations/{token}/accept"
    assert guesses[-1] not in refused.text
    assert other.status_code == 201  # another caller is not held up by mallory's guesses
