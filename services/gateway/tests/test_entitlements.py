"""The entitlement check, answered from the gateway's memory of the event stream:
limits, usage and what is allowed per metered feature, boolean features, who may ask."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import httpx
import pytest

from gateway.entitlements import (
    EntitlementCheck,
    EntitlementState,
    Terms,
    metered_entitlement,
    parse_plans,
)
from gateway.settings import Settings
from stellara_contracts import new_event, topics
from stellara_contracts.events import (
    ConfigChange,
    PeriodTotalChanged,
    TenantConfigChanged,
)
from stellara_kit.testing import Infrastructure, produce_raw, wait_for

from .conftest import (
    StandIns,
    Tenants,
    api_key_for,
    publish_snapshots,
    snapshot,
    user_headers,
)

PLANS = [
    {
        "key": "pro",
        "name": "Pro",
        "base_fee": "199.00",
        "metrics": {
            "workflow_runs": {"included": 10, "unit_price": "0", "limit": 10, "limit_kind": "hard"},
            "api_calls": {"included": 100, "unit_price": "0", "limit": 100, "limit_kind": "soft"},
            "storage_bytes": {"included": 5, "unit_price": "0"},
        },
    }
]


def _period() -> tuple[date, date]:
    today = datetime.now(UTC).date()
    start = date(today.year, today.month, 1)
    end = date(today.year + 1, 1, 1) if today.month == 12 else date(today.year, today.month + 1, 1)
    return start, end


def total(tenant_id: UUID, metric: str, value: float, **fields: Any) -> PeriodTotalChanged:
    start, end = _period()
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "metric": metric,
        "plan": "pro",
        "period_start": start,
        "period_end": end,
        "value": value,
        "limit": None,
        "limit_kind": None,
    }
    values.update(fields)
    return PeriodTotalChanged(**values)


def flag(tenant_id: UUID, key: str, value: Any, version: int, action: str = "set") -> Any:
    return TenantConfigChanged(
        tenant_id=tenant_id,
        changes=[
            ConfigChange(
                category="features",
                key=key,
                action=action,  # type: ignore[arg-type]
                new_value=value,
                version=version,
            )
        ],
    )


class TestMeteredEntitlement:
    def test_a_hard_limit_reached_is_not_allowed(self) -> None:
        answer = metered_entitlement("workflow_runs", Terms(100, "hard"), 100)
        assert (answer.allowed, answer.remaining) == (False, 0)

    def test_below_a_hard_limit_is_allowed_with_what_remains(self) -> None:
        answer = metered_entitlement("workflow_runs", Terms(100, "hard"), 99)
        assert (answer.allowed, answer.remaining, answer.limit_kind) == (True, 1, "hard")

    def test_a_soft_limit_passed_is_still_allowed(self) -> None:
        answer = metered_entitlement("api_calls", Terms(100, "soft"), 150)
        assert (answer.allowed, answer.remaining) == (True, 0)

    def test_an_unlimited_feature_has_no_limit_nor_remainder(self) -> None:
        answer = metered_entitlement("storage_bytes", None, 10**12)
        assert (answer.allowed, answer.limit, answer.limit_kind, answer.remaining) == (
            True,
            None,
            None,
            None,
        )


class TestState:
    def test_a_total_of_an_earlier_period_does_not_replace_the_current_one(self) -> None:
        tenant = snapshot("acme").tenant_id
        state = EntitlementState()
        state.apply_total(total(tenant, "api_calls", 5))
        state.apply_total(
            total(
                tenant, "api_calls", 900, period_start=date(2020, 1, 1), period_end=date(2020, 2, 1)
            )
        )
        assert state.used(tenant, _period()[0])["api_calls"].value == 5

    def test_a_feature_follows_the_newest_version_of_its_key(self) -> None:
        tenant = snapshot("acme").tenant_id
        state = EntitlementState()
        state.apply_config(flag(tenant, "beta_dashboard", True, 2))
        state.apply_config(flag(tenant, "beta_dashboard", False, 1))  # older, reordered
        state.apply_config(flag(tenant, "sso", True, 1))
        state.apply_config(flag(tenant, "exports", "yes", 1))  # not a boolean true
        assert state.features_of(tenant) == ["beta_dashboard", "sso"]
        state.apply_config(flag(tenant, "sso", None, 2, action="delete"))
        assert state.features_of(tenant) == ["beta_dashboard"]

    def test_usage_of_a_previous_period_counts_nothing_now(self) -> None:
        tenant = snapshot("acme")
        check = EntitlementCheck(
            Settings(environment="test"), client=httpx.AsyncClient(), tokens=None
        )  # type: ignore[arg-type]
        check.state.apply_total(
            total(tenant.tenant_id, "workflow_runs", 10, period_start=date(2020, 1, 1))
        )
        answer = check.entitlements(tenant, parse_plans(PLANS))
        runs = next(m for m in answer.metered if m.feature == "workflow_runs")
        assert (runs.used, runs.allowed) == (0, True)

    def test_without_the_catalogue_a_total_serves_with_its_own_terms(self) -> None:
        tenant = snapshot("acme")
        check = EntitlementCheck(
            Settings(environment="test"), client=httpx.AsyncClient(), tokens=None
        )  # type: ignore[arg-type]
        check.state.apply_total(
            total(tenant.tenant_id, "workflow_runs", 10, limit=10, limit_kind="hard")
        )
        answer = check.entitlements(tenant, None)
        assert [(m.feature, m.limit, m.allowed) for m in answer.metered] == [
            ("workflow_runs", 10, False)
        ]


# ------------------------------------------------------------------ through the gateway
async def publish_totals(
    infrastructure: Infrastructure, settings: Settings, *totals: PeriodTotalChanged
) -> None:
    events = [new_event(t, source="usage-svc") for t in totals]
    await produce_raw(
        infrastructure.kafka_bootstrap,
        settings.topic(topics.USAGE_PERIOD_TOTALS),
        [(e.key, e.to_json()) for e in events],
    )


async def publish_config(
    infrastructure: Infrastructure, settings: Settings, *changes: TenantConfigChanged
) -> None:
    events = [new_event(c, source="tenant-svc") for c in changes]
    await produce_raw(
        infrastructure.kafka_bootstrap,
        settings.topic(topics.TENANT_EVENTS),
        [(e.key, e.to_json()) for e in events],
    )


def serve_plans(downstream: StandIns) -> None:
    downstream.usage.answer = (200, json.dumps(PLANS).encode(), "application/json")


async def entitlements_when(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], until: Any
) -> dict[str, Any]:
    async def probe() -> httpx.Response:
        return await client.get(path, headers=headers)

    response = await wait_for(probe, until=lambda r: r.status_code == 200 and until(r.json()))
    return dict(response.json())


class TestEndpoint:
    async def test_limits_usage_and_features_of_the_tenant(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        tenants: Tenants,
        downstream: StandIns,
        infrastructure: Infrastructure,
    ) -> None:
        serve_plans(downstream)
        acme = tenants.acme.tenant_id
        await publish_totals(
            infrastructure,
            settings,
            total(acme, "workflow_runs", 4),
            total(acme, "workflow_runs", 10),  # the newest total of the key wins
            total(acme, "api_calls", 250),
            total(acme, "transactions", 7),  # not in the plan: listed, unlimited
        )
        await publish_config(infrastructure, settings, flag(acme, "beta_dashboard", True, 1))
        headers = user_headers(settings, "user", acme)
        path = f"/tenants/{tenants.acme.slug}/entitlements"

        body = await entitlements_when(
            client, path, headers, lambda b: b["features"] and len(b["metered"]) == 4
        )

        start, end = _period()
        assert body["tenant_id"] == str(acme)
        assert (body["plan"], body["period_start"], body["period_end"]) == (
            "pro",
            start.isoformat(),
            end.isoformat(),
        )
        assert body["features"] == ["beta_dashboard"]
        metered = {m["feature"]: m for m in body["metered"]}
        assert metered["workflow_runs"] == {
            "feature": "workflow_runs",
            "limit": 10,
            "limit_kind": "hard",
            "used": 10,
            "remaining": 0,
            "allowed": False,
        }
        assert (metered["api_calls"]["remaining"], metered["api_calls"]["allowed"]) == (0, True)
        assert (metered["storage_bytes"]["used"], metered["storage_bytes"]["limit"]) == (0, None)
        assert metered["transactions"]["limit"] is None
        # answered from memory: the plan catalogue was read once, nothing else was asked
        assert [r.path for r in downstream.received()] == ["/plans"]

    async def test_one_feature_alone(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        tenants: Tenants,
        downstream: StandIns,
        infrastructure: Infrastructure,
    ) -> None:
        serve_plans(downstream)
        acme = tenants.acme.tenant_id
        await publish_totals(infrastructure, settings, total(acme, "workflow_runs", 3))
        headers = user_headers(settings, "tenant_admin", acme)
        path = f"/tenants/{acme}/entitlements?feature=workflow_runs"

        body = await entitlements_when(
            client, path, headers, lambda b: b["metered"][0]["used"] == 3
        )

        assert body["metered"] == [
            {
                "feature": "workflow_runs",
                "limit": 10,
                "limit_kind": "hard",
                "used": 3,
                "remaining": 7,
                "allowed": True,
            }
        ]
        refused = await client.get(f"/tenants/{acme}/entitlements?feature=Bad-Key", headers=headers)
        assert refused.status_code == 422
        assert refused.json()["field"] == "feature"

    async def test_an_api_key_needs_the_entitlements_scope(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        serve_plans(downstream)
        acme = tenants.acme.tenant_id
        allowed = api_key_for(downstream, acme, ["entitlements:read"])
        other_scope = api_key_for(downstream, acme, ["tenant:read", "usage:read"])
        path = f"/tenants/{acme}/entitlements"

        assert (await client.get(path, headers={"x-api-key": allowed})).status_code == 200
        refused = await client.get(path, headers={"x-api-key": other_scope})
        assert refused.status_code == 403
        assert refused.json()["required_scope"] == ["entitlements:read"]

    @pytest.mark.parametrize("caller", ["user", "api_key"])
    async def test_another_tenant_is_not_found(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        tenants: Tenants,
        downstream: StandIns,
        caller: str,
    ) -> None:
        acme = tenants.acme.tenant_id
        if caller == "api_key":
            headers = {"x-api-key": api_key_for(downstream, acme, ["entitlements:read"])}
        else:
            headers = user_headers(settings, "tenant_admin", acme)
        response = await client.get(
            f"/tenants/{tenants.globex.tenant_id}/entitlements", headers=headers
        )
        # as on every route: a user is told nothing exists, an API key is refused
        assert response.status_code == (404 if caller == "user" else 401)
        assert tenants.globex.slug not in response.text

    async def test_a_platform_admin_may_ask_for_any_tenant_but_not_a_deleted_one(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        serve_plans(downstream)
        headers = user_headers(settings, "platform_admin")
        ok = await client.get(f"/tenants/{tenants.globex.slug}/entitlements", headers=headers)
        assert ok.status_code == 200
        assert ok.json()["tenant_id"] == str(tenants.globex.tenant_id)
        gone = await client.get(
            f"/tenants/{tenants.deleted.tenant_id}/entitlements", headers=headers
        )
        assert gone.status_code == 404

    async def test_the_check_is_not_rate_limited(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        downstream: StandIns,
        infrastructure: Infrastructure,
    ) -> None:
        # free tenants may make 2 requests a second here
        serve_plans(downstream)
        free = snapshot("free-co", plan="free")
        await publish_snapshots(infrastructure, settings.topic_prefix, free)
        headers = user_headers(settings, "user", free.tenant_id)
        path = f"/tenants/{free.tenant_id}/entitlements"
        await wait_for(
            lambda: client.get(path, headers=headers), until=lambda r: r.status_code == 200
        )
        statuses = [(await client.get(path, headers=headers)).status_code for _ in range(20)]
        assert statuses == [200] * 20
