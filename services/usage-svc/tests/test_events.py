"""Membership changes on tenant.events become ``active_users`` measurements."""

from __future__ import annotations

from stellara_contracts import CloudEvent, new_event, topics
from stellara_contracts.events import MemberAdded, MemberRemoved, Role
from stellara_kit.testing import produce_raw

from .conftest import RunningService
from .helpers import usage_of, wait_for_events


async def publish(service: RunningService, *events: CloudEvent) -> None:
    await produce_raw(
        service.settings.kafka_bootstrap_servers,
        service.settings.topic(topics.TENANT_EVENTS),
        [(e.key, e.to_json()) for e in events],
    )


class TestActiveUsers:
    async def test_members_joining_and_leaving_are_counted_at_their_peak(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        joined = [
            new_event(MemberAdded(tenant_id=tenant, user_id=u, role=Role.USER), source="tenant-svc")
            for u in ("ada", "grace", "edsger")
        ]
        left = new_event(MemberRemoved(tenant_id=tenant, user_id="grace"), source="tenant-svc")
        await publish(service, *joined, left)

        usage = await wait_for_events(service.http, service.settings, tenant, "active_users", 4)
        assert usage["value"] == 3  # the period's peak, as billed

    async def test_a_membership_event_delivered_twice_is_measured_once(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        added = new_event(
            MemberAdded(tenant_id=tenant, user_id="ada", role=Role.TENANT_ADMIN),
            source="tenant-svc",
        )
        await publish(service, added, added)
        await wait_for_events(service.http, service.settings, tenant, "active_users", 1)
        # a later event of the tenant (same partition): once it counts, the copy was handled
        await publish(
            service,
            new_event(
                MemberAdded(tenant_id=tenant, user_id="bob", role=Role.USER), source="tenant-svc"
            ),
        )
        await wait_for_events(service.http, service.settings, tenant, "active_users", 2)

        usage = await usage_of(service.http, service.settings, tenant)
        assert (usage["active_users"]["value"], usage["active_users"]["events"]) == (2, 2)

    async def test_a_role_change_is_not_a_new_member(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        await publish(
            service,
            new_event(MemberAdded(tenant_id=tenant, user_id="ada", role=Role.USER), source="t"),
            new_event(
                MemberAdded(tenant_id=tenant, user_id="ada", role=Role.TENANT_ADMIN), source="t"
            ),
            new_event(MemberAdded(tenant_id=tenant, user_id="bob", role=Role.USER), source="t"),
        )

        usage = await wait_for_events(service.http, service.settings, tenant, "active_users", 2)
        assert (usage["value"], usage["events"]) == (2, 2)
