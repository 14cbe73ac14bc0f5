"""Events of other services, consumed from the real topics: onboarding.events and usage.alerts.

Redelivery is shown by putting the same event on the topic twice and a later
event of the same tenant after it: the tenant id is the key, so they share a
partition, and once the later event's effect is visible every copy before it
has been handled.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx

from stellara_contracts import CloudEvent, new_event, topics
from stellara_contracts.events import (
    InvitationAccepted,
    OnboardingCompleted,
    QuotaExceeded,
    Role,
)
from stellara_kit.testing import consume, wait_for

MEMBER_ADDED = "stellara.tenant.member_added.v1"
ACTIVATED = "stellara.tenant.activated.v1"
SUSPENDED = "stellara.tenant.suspended.v1"
SNAPSHOT = "stellara.tenant.snapshot.v1"


def accepted(tenant_id: str | UUID, user_id: str, email: str, role: Role = Role.USER) -> CloudEvent:
    return new_event(
        InvitationAccepted(
            tenant_id=UUID(str(tenant_id)),
            invitation_id=uuid4(),
            email=email,
            role=role,
            user_id=user_id,
        ),
        source="onboarding-svc",
    )


def completed(tenant_id: str | UUID) -> CloudEvent:
    return new_event(
        OnboardingCompleted(
            tenant_id=UUID(str(tenant_id)), workflow_id=uuid4(), completed_at=datetime.now(UTC)
        ),
        source="onboarding-svc",
    )


def quota_exceeded(tenant_id: str | UUID, *, kind: str = "hard") -> CloudEvent:
    return new_event(
        QuotaExceeded(
            tenant_id=UUID(str(tenant_id)),
            metric="api_calls",
            plan="free",
            limit=1000,
            value=1003,
            period_start=date(2026, 12, 1),
            period_end=date(2027, 1, 1),
            limit_kind=kind,  # type: ignore[arg-type]
        ),
        source="usage-svc",
    )


async def member(kit: Any, tenant_id: str, user_id: str) -> httpx.Response:
    async def probe() -> httpx.Response:
        return await kit.client.get(f"/tenants/{tenant_id}/members/{user_id}", headers=kit.admin())

    return await wait_for(probe, until=lambda r: r.status_code == 200)


async def tenant_now(kit: Any, tenant_id: str) -> dict[str, Any]:
    response = await kit.client.get(f"/tenants/{tenant_id}", headers=kit.admin())
    assert response.status_code == 200, response.text
    return dict(response.json())


async def received(kit: Any, tenant_id: str, count: int) -> list[dict[str, Any]]:
    return await wait_for(lambda: kit.received(tenant_id), until=lambda r: len(r) >= count)


class TestInvitationAccepted:
    async def test_the_invited_user_becomes_a_member_with_the_invited_role(
        self, consuming_kit: Any
    ) -> None:
        kit = consuming_kit
        tenant = await kit.create_tenant("acme")
        event = accepted(tenant["id"], "u-ada", "ada@acme.example", Role.TENANT_ADMIN)

        await kit.publish(topics.ONBOARDING_EVENTS, event)

        body = (await member(kit, tenant["id"], "u-ada")).json()
        assert (body["email"], body["role"], body["via"]) == (
            "ada@acme.example",
            "tenant_admin",
            "invitation",
        )
        async with kit.reader(topics.TENANT_EVENTS) as events:
            records = await events.of_tenant(tenant["id"], MEMBER_ADDED)
        [(key, added)] = [(k, e) for k, e in records if e.type == MEMBER_ADDED]
        assert key == tenant["id"].encode()
        assert (added.data.user_id, added.data.role, added.data.via) == (
            "u-ada",
            "tenant_admin",
            "invitation",
        )
        [record] = await kit.received(tenant["id"])
        assert (record["event_id"], record["outcome"]) == (str(event.id), "member added")

    async def test_delivered_twice_it_adds_the_member_once(self, consuming_kit: Any) -> None:
        kit = consuming_kit
        tenant = await kit.create_tenant("acme")
        event = accepted(tenant["id"], "u-ada", "ada@acme.example")
        later = accepted(tenant["id"], "u-alan", "alan@acme.example")

        await kit.publish(topics.ONBOARDING_EVENTS, event, event, later)

        await member(kit, tenant["id"], "u-alan")
        members = await kit.client.get(f"/tenants/{tenant['id']}/members", headers=kit.admin())
        assert [m["user_id"] for m in members.json()["items"]] == ["u-ada", "u-alan"]
        assert [r["event_id"] for r in await kit.received(tenant["id"])] == [
            str(later.id),
            str(event.id),
        ]
        async with kit.reader(topics.TENANT_EVENTS) as events:
            records = await events.of_tenant(tenant["id"], MEMBER_ADDED, MEMBER_ADDED)
        added = [e.data.user_id for _, e in records if e.type == MEMBER_ADDED]
        assert added == ["u-ada", "u-alan"]

    async def test_an_imported_user_is_matched_by_email_and_keeps_a_higher_role(
        self, consuming_kit: Any
    ) -> None:
        kit = consuming_kit
        tenant = await kit.create_tenant("acme")
        imported = await kit.client.post(
            f"/tenants/{tenant['id']}/members/import",
            json={"rows": [{"email": "ada@acme.example", "role": "admin"}]},
            headers=kit.admin(),
        )
        assert imported.json()["created"] == 1, imported.text

        # the user signs in for the first time through an invitation as a plain user
        await kit.publish(
            topics.ONBOARDING_EVENTS, accepted(tenant["id"], "idp|ada", "Ada@acme.example")
        )

        body = (await member(kit, tenant["id"], "idp|ada")).json()
        assert (body["email"], body["role"]) == ("ada@acme.example", "tenant_admin")
        members = await kit.client.get(f"/tenants/{tenant['id']}/members", headers=kit.admin())
        assert [m["user_id"] for m in members.json()["items"]] == ["idp|ada"]


class TestOnboardingCompleted:
    async def test_a_pending_tenant_is_activated_once_when_delivered_twice(
        self, consuming_kit: Any
    ) -> None:
        kit = consuming_kit
        tenant = await kit.create_tenant("acme")
        event = completed(tenant["id"])
        later = accepted(tenant["id"], "u-ada", "ada@acme.example")

        await kit.publish(topics.ONBOARDING_EVENTS, event, event, later)

        await member(kit, tenant["id"], "u-ada")
        now = await tenant_now(kit, tenant["id"])
        assert (now["status"], now["version"]) == ("active", 2)
        outcomes = {r["event_id"]: r["outcome"] for r in await kit.received(tenant["id"])}
        assert outcomes == {str(event.id): "activated", str(later.id): "member added"}

        async with kit.reader(topics.TENANT_EVENTS) as events:
            records = await events.of_tenant(tenant["id"], ACTIVATED, MEMBER_ADDED)
        activations = [e for _, e in records if e.type == ACTIVATED]
        assert [a.data.previous_status for a in activations] == ["pending"]
        assert activations[0].data.version == 2
        async with kit.reader(topics.TENANT_STATE) as state:
            snapshots = await state.of_tenant(tenant["id"], SNAPSHOT, SNAPSHOT)
        assert [(k, s.data.status, s.data.version) for k, s in snapshots] == [
            (tenant["id"].encode(), "pending", 1),
            (tenant["id"].encode(), "active", 2),
        ]

    async def test_a_suspended_or_deleted_tenant_is_left_as_it_is(self, consuming_kit: Any) -> None:
        kit = consuming_kit
        suspended = await kit.active_tenant("acme")
        path = f"/tenants/{suspended['id']}/suspend"
        response = await kit.client.post(path, json={"reason": "fraud"}, headers=kit.admin())
        assert response.status_code == 200, response.text
        deleted = await kit.create_tenant("globex")
        response = await kit.client.delete(f"/tenants/{deleted['id']}", headers=kit.admin())
        assert response.status_code == 200, response.text

        await kit.publish(
            topics.ONBOARDING_EVENTS, completed(suspended["id"]), completed(deleted["id"])
        )

        [seen] = await received(kit, suspended["id"], 1)
        assert seen["outcome"] == "ignored: tenant is suspended"
        [seen] = await received(kit, deleted["id"], 1)
        assert seen["outcome"] == "ignored: tenant is deleted"
        now = await tenant_now(kit, suspended["id"])
        assert (now["status"], now["status_reason"], now["version"]) == ("suspended", "fraud", 3)
        now = await tenant_now(kit, deleted["id"])
        assert (now["status"], now["version"]) == ("deleted", 2)


class TestQuotaExceeded:
    async def test_suspends_when_the_configuration_says_suspend(self, consuming_kit: Any) -> None:
        kit = consuming_kit
        tenant = await kit.active_tenant("acme")
        response = await kit.client.put(
            f"/tenants/{tenant['id']}/config/billing.hard_limit_action",
            json={"value": "suspend"},
            headers=kit.tenant_admin(tenant["id"]),
        )
        assert response.status_code == 200, response.text
        event = quota_exceeded(tenant["id"])

        await kit.publish(topics.USAGE_ALERTS, event, event)

        now = await wait_for(
            lambda: tenant_now(kit, tenant["id"]), until=lambda t: t["status"] == "suspended"
        )
        assert "api_calls" in now["status_reason"]
        assert "1003 of 1000" in now["status_reason"]
        [record] = await kit.received(tenant["id"])
        assert (record["outcome"], record["detail"]["hard_limit_action"]) == (
            "suspended",
            "suspend",
        )
        async with kit.reader(topics.TENANT_EVENTS) as events:
            records = await events.of_tenant(tenant["id"], SUSPENDED)
        [(key, suspension)] = [(k, e) for k, e in records if e.type == SUSPENDED]
        assert key == tenant["id"].encode()
        assert suspension.data.reason == now["status_reason"]

    async def test_otherwise_only_records_it(self, consuming_kit: Any) -> None:
        kit = consuming_kit
        notify = await kit.active_tenant("acme")  # the platform default: notify
        soft = await kit.active_tenant("globex")
        response = await kit.client.put(
            f"/tenants/{soft['id']}/config/billing.hard_limit_action",
            json={"value": "suspend"},
            headers=kit.admin(),
        )
        assert response.status_code == 200, response.text

        await kit.publish(
            topics.USAGE_ALERTS,
            quota_exceeded(notify["id"]),
            quota_exceeded(soft["id"], kind="soft"),
        )

        [seen] = await received(kit, notify["id"], 1)
        assert seen["outcome"] == "recorded: hard_limit_action is not suspend"
        assert seen["detail"]["hard_limit_action"] == "notify"
        [seen] = await received(kit, soft["id"], 1)
        assert seen["outcome"] == "recorded: soft limit"
        for tenant in (notify, soft):
            assert (await tenant_now(kit, tenant["id"]))["status"] == "active"


class TestBadInput:
    async def test_an_unreadable_record_is_dead_lettered_and_the_next_one_handled(
        self, consuming_kit: Any
    ) -> None:
        kit = consuming_kit
        tenant = await kit.create_tenant("acme")
        key = tenant["id"].encode()

        await kit.publish(
            topics.ONBOARDING_EVENTS,
            (key, b'{"type": "stellara.onboarding.completed.v1", "data": {}}'),
            accepted(tenant["id"], "u-ada", "ada@acme.example"),
        )

        await member(kit, tenant["id"], "u-ada")
        assert (await tenant_now(kit, tenant["id"]))["status"] == "pending"
        [dead] = await consume(
            kit.settings.kafka_bootstrap_servers,
            kit.settings.topic(topics.dlq_topic(topics.ONBOARDING_EVENTS)),
            count=1,
        )
        assert dead.key == key
        assert b"stellara.onboarding.completed.v1" in dead.value
