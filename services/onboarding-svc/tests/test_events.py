"""tenant.events consumed from the real Kafka topic: start, duplicates, deletion, unknown types."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import httpx

from stellara_contracts import CloudEvent, new_event, topics
from stellara_contracts.events import (
    TenantCreated,
    TenantDeleted,
    TenantPlanChanged,
    TenantStatus,
    TenantSuspended,
)
from stellara_kit.testing import produce_raw, wait_for

if TYPE_CHECKING:
    from conftest import Harness


def created(
    tenant_id: UUID, plan: str = "starter", status: TenantStatus = TenantStatus.PENDING
) -> CloudEvent:
    return new_event(
        TenantCreated(
            tenant_id=tenant_id,
            slug=f"t{tenant_id.hex[:10]}",
            name="Acme Corp",
            plan=plan,
            status=status,
            created_at=datetime.now(UTC),
        ),
        source="tenant-svc",
    )


async def publish(svc: Harness, *events: CloudEvent | tuple[bytes, bytes]) -> None:
    records = [e if isinstance(e, tuple) else (e.key, e.to_json()) for e in events]
    await produce_raw(
        svc.settings.kafka_bootstrap_servers, svc.settings.topic(topics.TENANT_EVENTS), records
    )


async def onboarding_status(svc: Harness, tenant_id: UUID, until: Any) -> httpx.Response:
    async def probe() -> httpx.Response:
        return await svc.client.get(
            f"/tenants/{tenant_id}/onboarding-status", headers=svc.headers()
        )

    return await wait_for(probe, until=until)


class TestTenantCreated:
    async def test_tenant_created_on_the_topic_starts_onboarding(self, svc: Harness) -> None:
        tenant_id = uuid4()

        await publish(svc, created(tenant_id, plan="pro"))

        response = await onboarding_status(svc, tenant_id, until=lambda r: r.status_code == 200)
        assert response.json()["plan"] == "pro"
        assert response.json()["next_steps"] == ["invite_admin"]

    async def test_a_tenant_created_active_gets_no_onboarding(self, svc: Harness) -> None:
        """The default tenant starts active: there is nothing to onboard."""
        active, pending = uuid4(), uuid4()

        await publish(svc, created(active, status=TenantStatus.ACTIVE), created(pending))

        # order across tenants is not given: wait for both to be known
        await onboarding_status(svc, pending, until=lambda r: r.status_code == 200)
        known = await wait_for(
            lambda: svc.sql("SELECT status FROM tenants WHERE tenant_id = $1", active),
            until=lambda rows: len(rows) == 1,
        )
        response = await svc.client.get(
            f"/tenants/{active}/onboarding-status", headers=svc.headers()
        )
        assert known[0]["status"] == "active"
        assert response.status_code == 404
        assert response.json()["type"].endswith("onboarding-not-started")

    async def test_a_redelivered_tenant_created_has_one_effect(self, svc: Harness) -> None:
        tenant_id = uuid4()
        event = created(tenant_id)
        # same key, same partition: once the plan change is applied, every copy before it was too
        later = new_event(
            TenantPlanChanged(tenant_id=tenant_id, old_plan="starter", new_plan="pro", version=2),
            source="tenant-svc",
        )

        await publish(svc, event, event, event, later)

        async def plan() -> list[Any]:
            return await svc.sql("SELECT plan FROM tenants WHERE tenant_id = $1", tenant_id)

        await wait_for(plan, until=lambda rows: rows and rows[0]["plan"] == "pro")
        started = svc.of_type(await svc.published(), "started")
        assert [e.tenantid for e in started] == [tenant_id]
        assert (await svc.status(tenant_id))["plan"] == "starter"


class TestTenantDeleted:
    async def test_deleting_the_tenant_cancels_onboarding_and_revokes_invitations(
        self, svc: Harness
    ) -> None:
        tenant_id = uuid4()
        await publish(svc, created(tenant_id))
        await onboarding_status(svc, tenant_id, until=lambda r: r.status_code == 200)
        invitation = await svc.invite(tenant_id, "ada@acme.example")
        (message,) = await svc.mail_to("ada@acme.example")

        await publish(
            svc,
            new_event(
                TenantDeleted(tenant_id=tenant_id, slug="acme", version=2), source="tenant-svc"
            ),
        )

        cancelled = await onboarding_status(
            svc, tenant_id, until=lambda r: r.json()["status"] == "cancelled"
        )
        assert cancelled.json()["cancelled_at"] is not None
        assert cancelled.json()["next_steps"] == []
        assert (await svc.invitation(tenant_id, invitation["id"]))["status"] == "revoked"
        refused = await svc.accept_mail(message)
        assert refused.status_code == 409
        again = await svc.client.post(f"/tenants/{tenant_id}/onboard", headers=svc.headers())
        assert again.status_code == 409
        steps = await svc.client.post(
            f"/tenants/{tenant_id}/onboard/complete-step",
            json={"step_key": "configure_tenant"},
            headers=svc.headers(),
        )
        assert steps.status_code == 409

    async def test_a_completed_onboarding_stays_completed_when_the_tenant_is_deleted(
        self, svc: Harness
    ) -> None:
        tenant_id = await svc.create_tenant()
        invitation = await svc.invite(tenant_id, "ada@acme.example")
        (message,) = await svc.mail_to(invitation["email"])
        await svc.accept_mail(message)
        for step in ("configure_tenant", "setup_billing"):
            await svc.client.post(
                f"/tenants/{tenant_id}/onboard/complete-step",
                json={"step_key": step},
                headers=svc.headers(),
            )

        await svc.delete_tenant(tenant_id)

        assert (await svc.status(tenant_id))["status"] == "completed"


class TestOtherEvents:
    async def test_unknown_types_and_other_tenant_events_change_nothing(self, svc: Harness) -> None:
        tenant_id = uuid4()
        unknown = {
            "specversion": "1.0",
            "id": str(uuid4()),
            "source": "tenant-svc",
            "type": "stellara.tenant.renamed_galaxy.v9",
            "tenantid": str(tenant_id),
            "data": {"tenant_id": str(tenant_id)},
        }
        await publish(
            svc,
            (str(tenant_id).encode(), json.dumps(unknown).encode()),
            new_event(
                TenantSuspended(tenant_id=tenant_id, reason="quota", version=2), source="tenant-svc"
            ),
            created(tenant_id),
        )

        response = await onboarding_status(svc, tenant_id, until=lambda r: r.status_code == 200)
        assert response.json()["status"] == "running"
        records = await svc.sql("SELECT status, plan FROM tenants WHERE tenant_id = $1", tenant_id)
        assert [dict(r) for r in records] == [{"status": "suspended", "plan": "starter"}]

    async def test_the_tenant_copy_follows_plan_changes(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant("starter")

        await svc.tenant_event(
            TenantPlanChanged(tenant_id=tenant_id, old_plan="starter", new_plan="pro", version=2)
        )

        records = await svc.sql("SELECT plan FROM tenants WHERE tenant_id = $1", tenant_id)
        assert records[0]["plan"] == "pro"
