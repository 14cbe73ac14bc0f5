"""Onboarding workflows over HTTP on real PostgreSQL, with events read back from real Kafka."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from uuid import uuid4

from stellara_contracts import new_event
from stellara_contracts.events import TenantCreated, TenantPlanChanged

if TYPE_CHECKING:
    from conftest import Harness, StartService

DEFAULT_STEPS = ["invite_admin", "configure_tenant", "setup_billing", "verify_domain"]


async def complete(svc: Harness, tenant_id, step: str, **body):  # type: ignore[no-untyped-def]
    return await svc.client.post(
        f"/tenants/{tenant_id}/onboard/complete-step",
        json={"step_key": step, **body},
        headers=svc.admin_of(tenant_id),
    )


async def finish_invite_admin(svc: Harness, tenant_id) -> None:  # type: ignore[no-untyped-def]
    invitation = await svc.invite(tenant_id, f"admin-{tenant_id.hex[:6]}@acme.example")
    (message,) = await svc.mail_to(invitation["email"])
    response = await svc.accept_mail(message, subject="first-admin")
    assert response.status_code == 200, response.text


class TestStartOnTenantCreated:
    async def test_tenant_created_starts_the_default_workflow(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()

        status = await svc.status(tenant_id)

        assert status["status"] == "running"
        assert [s["key"] for s in status["steps"]] == DEFAULT_STEPS
        assert [s["status"] for s in status["steps"]] == [
            "in_progress",
            "pending",
            "pending",
            "pending",
        ]
        assert status["percent_complete"] == 0
        assert status["next_steps"] == ["invite_admin"]
        assert status["started_by"] == "system"
        assert [s["required"] for s in status["steps"]] == [True, True, True, False]
        assert status["steps"][0]["completes"] == "event"

    async def test_the_same_tenant_created_twice_starts_one_onboarding(self, svc: Harness) -> None:
        tenant_id = uuid4()
        data = TenantCreated(
            tenant_id=tenant_id,
            slug="dup",
            name="Dup",
            plan="starter",
            created_at="2026-12-01T10:00:00Z",
        )
        event = new_event(data, source="tenant-svc")
        await svc.tenant_event(data, event)
        first = await svc.status(tenant_id)
        await svc.tenant_event(data, event)  # redelivered
        await svc.tenant_event(data)  # the same fact under a new event id

        assert (await svc.status(tenant_id))["workflow_id"] == first["workflow_id"]
        started = svc.of_type(await svc.published(), "started")
        assert len(started) == 1
        assert started[0].data.steps == DEFAULT_STEPS
        assert started[0].data.plan == "starter"

    async def test_starting_a_running_onboarding_is_a_conflict(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()

        response = await svc.client.post(
            f"/tenants/{tenant_id}/onboard", headers=svc.admin_of(tenant_id)
        )

        assert response.status_code == 409
        assert response.json()["workflow_status"] == "running"


class TestStartByRequest:
    async def test_onboard_starts_it_once(self, start: StartService) -> None:
        async with start(auto_start_onboarding=False) as svc:
            tenant_id = await svc.create_tenant()
            not_yet = await svc.client.get(
                f"/tenants/{tenant_id}/onboarding-status", headers=svc.headers()
            )

            first = await svc.client.post(
                f"/tenants/{tenant_id}/onboard", headers=svc.admin_of(tenant_id)
            )
            again = await svc.client.post(
                f"/tenants/{tenant_id}/onboard", headers=svc.admin_of(tenant_id)
            )

        assert not_yet.status_code == 404
        assert not_yet.json()["type"].endswith("onboarding-not-started")
        assert first.status_code == 201, first.text
        assert first.json()["started_by"] == f"admin-of-{tenant_id}"
        assert again.status_code == 409

    async def test_onboard_of_an_unknown_tenant_is_not_found(self, svc: Harness) -> None:
        response = await svc.client.post(f"/tenants/{uuid4()}/onboard", headers=svc.headers())
        assert response.status_code == 404

    async def test_a_finished_onboarding_cannot_start_again(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        await finish_invite_admin(svc, tenant_id)
        await complete(svc, tenant_id, "configure_tenant")
        await complete(svc, tenant_id, "setup_billing")

        response = await svc.client.post(f"/tenants/{tenant_id}/onboard", headers=svc.headers())

        assert response.status_code == 409
        assert response.json()["workflow_status"] == "completed"


class TestWorkflowPerPlan:
    async def test_a_plan_gets_its_workflow_from_the_settings_file(
        self, start: StartService, tmp_path: Path
    ) -> None:
        workflows = tmp_path / "workflows.yaml"
        workflows.write_text(
            "plans:\n"
            "  enterprise:\n"
            "    steps:\n"
            "      - {key: sign_contract, title: Sign the contract}\n"
            "      - key: invite_admin\n"
            "        title: Invite an admin\n"
            "        depends_on: [sign_contract]\n"
            "        completion: {kind: event, event: invitation_accepted, role: tenant_admin}\n"
        )
        async with start(workflows_file=workflows) as svc:
            enterprise = await svc.create_tenant("enterprise")
            starter = await svc.create_tenant("starter")

            enterprise_steps = [s["key"] for s in (await svc.status(enterprise))["steps"]]
            starter_steps = [s["key"] for s in (await svc.status(starter))["steps"]]

        assert enterprise_steps == ["sign_contract", "invite_admin"]
        assert starter_steps == DEFAULT_STEPS

    async def test_a_later_plan_change_does_not_change_a_running_workflow(
        self, svc: Harness
    ) -> None:
        tenant_id = await svc.create_tenant("starter")
        await svc.tenant_event(
            TenantPlanChanged(tenant_id=tenant_id, old_plan="starter", new_plan="pro", version=2)
        )
        status = await svc.status(tenant_id)
        assert status["plan"] == "starter"
        assert [s["key"] for s in status["steps"]] == DEFAULT_STEPS


class TestCompleteStep:
    async def test_an_unknown_step_is_unprocessable(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        response = await complete(svc, tenant_id, "paint_the_office")
        assert response.status_code == 422
        assert response.json()["steps"] == DEFAULT_STEPS

    async def test_a_step_with_unfinished_dependencies_is_a_conflict_naming_them(
        self, svc: Harness
    ) -> None:
        tenant_id = await svc.create_tenant()

        response = await complete(svc, tenant_id, "configure_tenant")

        assert response.status_code == 409
        assert response.json()["waiting_for"] == ["invite_admin"]
        assert "invite_admin" in response.json()["detail"]
        assert (await svc.status(tenant_id))["steps"][1]["status"] == "pending"

    async def test_a_step_that_completes_on_an_event_cannot_be_completed_by_hand(
        self, svc: Harness
    ) -> None:
        tenant_id = await svc.create_tenant()
        response = await complete(svc, tenant_id, "invite_admin")
        assert response.status_code == 409
        assert response.json()["type"].endswith("step-completes-automatically")

    async def test_completing_a_step_records_who_when_and_the_payload(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        await finish_invite_admin(svc, tenant_id)

        response = await complete(svc, tenant_id, "configure_tenant", payload={"timezone": "UTC"})

        assert response.status_code == 200, response.text
        body = response.json()
        step = body["steps"][1]
        assert step["status"] == "done"
        assert step["completed_by"] == f"admin-of-{tenant_id}"
        assert step["completed_at"] is not None
        assert step["payload"] == {"timezone": "UTC"}
        assert body["percent_complete"] == 66
        assert body["next_steps"] == ["setup_billing", "verify_domain"]
        assert [s["status"] for s in body["steps"]][2:] == ["in_progress", "in_progress"]

    async def test_repeating_a_completed_step_changes_nothing(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        await finish_invite_admin(svc, tenant_id)
        first = await complete(svc, tenant_id, "configure_tenant", payload={"a": 1})

        again = await complete(svc, tenant_id, "configure_tenant", payload={"a": 2})

        assert again.status_code == 200
        assert again.json() == first.json()
        completed = svc.of_type(await svc.published(), "step_completed")
        assert [e.data.step_key for e in completed] == ["invite_admin", "configure_tenant"]

    async def test_an_optional_step_can_be_skipped_but_a_required_one_cannot(
        self, svc: Harness
    ) -> None:
        tenant_id = await svc.create_tenant()
        await finish_invite_admin(svc, tenant_id)
        await complete(svc, tenant_id, "configure_tenant")

        skipped = await complete(svc, tenant_id, "verify_domain", skip=True)
        refused = await complete(svc, tenant_id, "setup_billing", skip=True)

        assert skipped.status_code == 200
        assert skipped.json()["steps"][3]["status"] == "skipped"
        assert skipped.json()["status"] == "running"
        assert refused.status_code == 422

    async def test_onboarding_of_an_unknown_tenant_is_not_found(self, svc: Harness) -> None:
        response = await complete(svc, uuid4(), "configure_tenant")
        assert response.status_code == 404


class TestCompletion:
    async def test_the_last_required_step_completes_onboarding_once(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        await finish_invite_admin(svc, tenant_id)
        await complete(svc, tenant_id, "configure_tenant")

        done = await complete(svc, tenant_id, "setup_billing")
        repeated = await complete(svc, tenant_id, "setup_billing")

        body = done.json()
        assert body["status"] == "completed"
        assert body["percent_complete"] == 100
        assert body["completed_at"] is not None
        assert body["next_steps"] == []
        assert body["steps"][3]["status"] == "skipped"  # the optional step nobody did
        assert repeated.json() == body
        completed = svc.of_type(await svc.published(), "completed")
        assert len(completed) == 1
        assert str(completed[0].data.workflow_id) == body["workflow_id"]
        assert completed[0].tenantid == tenant_id

    async def test_steps_of_a_completed_onboarding_no_longer_change(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        await finish_invite_admin(svc, tenant_id)
        await complete(svc, tenant_id, "configure_tenant")
        await complete(svc, tenant_id, "setup_billing")

        response = await complete(svc, tenant_id, "verify_domain")

        assert response.status_code == 409
        assert response.json()["type"].endswith("onboarding-not-running")


class TestAccess:
    async def test_a_user_reads_its_own_tenants_status_but_cannot_complete_steps(
        self, svc: Harness
    ) -> None:
        tenant_id = await svc.create_tenant()
        user = svc.headers("user", tenant_id)

        read = await svc.client.get(f"/tenants/{tenant_id}/onboarding-status", headers=user)
        write = await svc.client.post(
            f"/tenants/{tenant_id}/onboard/complete-step",
            json={"step_key": "configure_tenant"},
            headers=user,
        )

        assert read.status_code == 200
        assert write.status_code == 403

    async def test_another_tenants_onboarding_is_not_found(self, svc: Harness) -> None:
        mine, theirs = await svc.create_tenant(), await svc.create_tenant()
        me = svc.admin_of(mine)

        responses = [
            await svc.client.get(f"/tenants/{theirs}/onboarding-status", headers=me),
            await svc.client.post(f"/tenants/{theirs}/onboard", headers=me),
            await svc.client.post(
                f"/tenants/{theirs}/onboard/complete-step",
                json={"step_key": "configure_tenant"},
                headers=me,
            ),
        ]

        assert [r.status_code for r in responses] == [404, 404, 404]
        assert all(str(theirs) not in r.text.replace(f"/tenants/{theirs}/", "") for r in responses)

    async def test_requests_without_a_token_are_unauthorized(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        response = await svc.client.get(f"/tenants/{tenant_id}/onboarding-status")
        assert response.status_code == 401
