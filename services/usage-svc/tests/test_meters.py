"""The meter catalogue: listing, adding and redefining meters (platform admins only)."""

from __future__ import annotations

from typing import Any

from stellara_contracts.events import Role

from .conftest import RunningService
from .helpers import headers, produce_usage, record, wait_for_events


async def meters_of(service: RunningService) -> dict[str, dict[str, Any]]:
    response = await service.http.get("/meters", headers=headers(service.settings))
    assert response.status_code == 200, response.text
    return {m["key"]: m for m in response.json()["items"]}


async def post_meter(service: RunningService, meter: dict[str, Any], **who: Any) -> Any:
    return await service.http.post("/meters", json=meter, headers=headers(service.settings, **who))


class TestListing:
    async def test_the_platform_meters_are_there_from_the_start(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        response = await service.http.get(
            "/meters", headers=headers(service.settings, tenant, role=Role.USER)
        )
        assert response.status_code == 200, response.text
        meters = {m["key"]: m["aggregation"] for m in response.json()["items"]}
        assert (
            meters.items()
            >= {
                "api_calls": "SUM",
                "storage_bytes": "MAX",
                "active_users": "MAX",
                "transactions": "SUM",
                "workflow_runs": "SUM",
            }.items()
        )

    async def test_listing_needs_a_token(self, service: RunningService) -> None:
        response = await service.http.get("/meters")
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")


class TestAdding:
    async def test_a_platform_admin_adds_a_meter_that_ingestion_then_accepts(
        self, service: RunningService
    ) -> None:
        meter = {"key": "emails_sent", "aggregation": "SUM", "unit": "emails"}
        response = await post_meter(service, meter)
        assert response.status_code == 201, response.text
        assert response.json() | meter == response.json()
        assert response.json()["has_data"] is False
        assert "emails_sent" in await meters_of(service)

        tenant = (await service.new_tenant()).tenant_id
        await produce_usage(service.settings, [record(tenant, "emails_sent", 4)])
        usage = await wait_for_events(service.http, service.settings, tenant, "emails_sent", 1)
        assert (usage["value"], usage["unit"]) == (4, "emails")
        assert (await meters_of(service))["emails_sent"]["has_data"] is True

    async def test_posting_an_existing_key_updates_unit_and_description(
        self, service: RunningService
    ) -> None:
        first = {"key": "exports", "aggregation": "SUM", "unit": "files"}
        assert (await post_meter(service, first)).status_code == 201
        again = {**first, "unit": "exports", "description": "Data exports run."}

        response = await post_meter(service, again)
        assert response.status_code == 200, response.text
        listed = (await meters_of(service))["exports"]
        assert (listed["unit"], listed["description"]) == ("exports", "Data exports run.")

    async def test_the_aggregation_may_change_while_the_meter_has_no_data(
        self, service: RunningService
    ) -> None:
        meter = {"key": "seats", "aggregation": "SUM", "unit": "seats"}
        assert (await post_meter(service, meter)).status_code == 201

        response = await post_meter(service, {**meter, "aggregation": "MAX"})
        assert response.status_code == 200, response.text
        assert (await meters_of(service))["seats"]["aggregation"] == "MAX"

    async def test_the_aggregation_is_fixed_once_the_meter_has_data(
        self, service: RunningService
    ) -> None:
        meter = {"key": "reports", "aggregation": "SUM", "unit": "reports"}
        assert (await post_meter(service, meter)).status_code == 201
        tenant = (await service.new_tenant()).tenant_id
        await produce_usage(service.settings, [record(tenant, "reports", 2)])
        await wait_for_events(service.http, service.settings, tenant, "reports", 1)

        response = await post_meter(service, {**meter, "aggregation": "MAX"})
        assert response.status_code == 409, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "new key" in response.json()["detail"]
        assert (await meters_of(service))["reports"]["aggregation"] == "SUM"

    async def test_a_tenant_admin_may_not_add_meters(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        meter = {"key": "sneaky", "aggregation": "SUM", "unit": "units"}

        response = await post_meter(service, meter, tenant_id=tenant)
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "sneaky" not in await meters_of(service)

    async def test_a_distinct_count_needs_the_property_it_counts(
        self, service: RunningService
    ) -> None:
        meter = {"key": "unique_users", "aggregation": "UNIQUE_COUNT", "unit": "users"}

        response = await post_meter(service, meter)
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "unique_property" in response.json()["detail"]

    async def test_a_key_must_look_like_a_metric_name(self, service: RunningService) -> None:
        response = await post_meter(
            service, {"key": "API Calls", "aggregation": "SUM", "unit": "x"}
        )
        assert response.status_code == 422
