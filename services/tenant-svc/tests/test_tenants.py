"""Tenants over HTTP: create, list, read, update with ETags, lifecycle, idempotent writes."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

from stellara_contracts import topics

CREATED = "stellara.tenant.created.v1"
UPDATED = "stellara.tenant.updated.v1"
ACTIVATED = "stellara.tenant.activated.v1"
SUSPENDED = "stellara.tenant.suspended.v1"
DELETED = "stellara.tenant.deleted.v1"
PLAN_CHANGED = "stellara.tenant.plan_changed.v1"
SNAPSHOT = "stellara.tenant.snapshot.v1"


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return dict(response.json())


class TestCreate:
    async def test_new_tenant_is_pending_with_etag_and_location(self, kit: Any) -> None:
        response = await kit.client.post(
            "/tenants",
            json={
                "name": "Acme Corp",
                "slug": "acme",
                "plan": "starter",
                "metadata": {"region": "eu"},
            },
            headers=kit.admin(),
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "pending"
        assert body["plan"] == "starter"
        assert body["metadata"] == {"region": "eu"}
        assert body["version"] == 1
        assert body["allowed_transitions"] == ["active", "deleted"]
        assert response.headers["etag"] == '"1"'
        assert response.headers["location"] == f"/tenants/{body['id']}"

    async def test_plan_defaults_to_the_default_plan(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        assert tenant["plan"] == "free"

    async def test_created_and_snapshot_events_are_published_keyed_by_tenant(
        self, kit: Any
    ) -> None:
        tenant = await kit.create_tenant("acme", plan="pro")
        async with kit.reader(topics.TENANT_EVENTS) as events:
            [(key, created)] = await events.of_tenant(tenant["id"], CREATED)
        assert key == tenant["id"].encode()
        assert created.data.slug == "acme"
        assert created.data.plan == "pro"
        assert created.data.status == "pending"
        assert created.source == "tenant-svc"
        async with kit.reader(topics.TENANT_STATE) as state:
            [(key, snapshot)] = await state.of_tenant(tenant["id"], SNAPSHOT)
        assert key == tenant["id"].encode()
        assert snapshot.data.version == 1
        assert snapshot.data.status == "pending"

    async def test_taken_slug_is_a_conflict(self, kit: Any) -> None:
        await kit.create_tenant("acme")
        response = await kit.client.post(
            "/tenants", json={"name": "Other", "slug": "acme"}, headers=kit.admin()
        )
        assert problem(response, 409)["slug"] == "acme"

    async def test_slug_of_a_deleted_tenant_stays_reserved(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        assert (
            await kit.client.delete(f"/tenants/{tenant['id']}", headers=kit.admin())
        ).status_code == 200
        response = await kit.client.post(
            "/tenants", json={"name": "New Acme", "slug": "acme"}, headers=kit.admin()
        )
        problem(response, 409)

    async def test_reserved_slug_is_refused(self, kit: Any) -> None:
        response = await kit.client.post(
            "/tenants", json={"name": "Admin", "slug": "admin"}, headers=kit.admin()
        )
        assert "reserved" in problem(response, 422)["detail"]

    async def test_slug_that_is_not_a_dns_label_is_refused(self, kit: Any) -> None:
        for slug in ("Acme", "-acme", "acme-", "ac", "acme_corp", "a" * 64):
            response = await kit.client.post(
                "/tenants", json={"name": "x", "slug": slug}, headers=kit.admin()
            )
            problem(response, 422)

    async def test_slug_that_reads_as_a_tenant_id_is_refused(self, kit: Any) -> None:
        for slug in (str(uuid4()), uuid4().hex):
            response = await kit.client.post(
                "/tenants", json={"name": "x", "slug": slug}, headers=kit.admin()
            )
            assert "tenant id" in problem(response, 422)["detail"]

    async def test_unknown_plan_is_refused_with_the_plans(self, kit: Any) -> None:
        response = await kit.client.post(
            "/tenants", json={"name": "Acme", "slug": "acme", "plan": "gold"}, headers=kit.admin()
        )
        assert problem(response, 422)["allowed_plans"] == ["free", "starter", "pro", "enterprise"]

    async def test_oversized_metadata_is_refused(self, kit: Any) -> None:
        response = await kit.client.post(
            "/tenants",
            json={"name": "Acme", "slug": "acme", "metadata": {"blob": "x" * 9000}},
            headers=kit.admin(),
        )
        assert problem(response, 422)["field"] == "metadata"

    async def test_metadata_must_be_an_object(self, kit: Any) -> None:
        response = await kit.client.post(
            "/tenants", json={"name": "Acme", "slug": "acme", "metadata": [1]}, headers=kit.admin()
        )
        problem(response, 422)

    async def test_only_platform_admins_create_tenants(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        response = await kit.client.post(
            "/tenants", json={"name": "B", "slug": "beta"}, headers=kit.tenant_admin(tenant["id"])
        )
        problem(response, 403)

    async def test_no_token_is_unauthorized(self, kit: Any) -> None:
        response = await kit.client.post("/tenants", json={"name": "B", "slug": "beta"})
        problem(response, 401)


class TestList:
    async def test_lists_oldest_first_across_pages(self, kit: Any) -> None:
        slugs = [f"tenant-{i}" for i in range(5)]
        for slug in slugs:
            await kit.create_tenant(slug)
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await kit.client.get("/tenants", params=params, headers=kit.admin())).json()
            assert len(page["items"]) <= 2
            seen += [t["slug"] for t in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        assert seen == ["main", *slugs]

    async def test_filters_by_status_plan_and_text(self, kit: Any) -> None:
        await kit.active_tenant("acme", plan="pro", name="Acme Corp")
        await kit.create_tenant("acme-labs", plan="pro", name="Labs")
        await kit.create_tenant("globex", plan="starter", name="Globex")

        async def slugs(**params: Any) -> list[str]:
            response = await kit.client.get("/tenants", params=params, headers=kit.admin())
            assert response.status_code == 200, response.text
            return [t["slug"] for t in response.json()["items"]]

        assert await slugs(status="pending") == ["acme-labs", "globex"]
        assert await slugs(plan="pro") == ["acme", "acme-labs"]
        assert await slugs(q="ACME") == ["acme", "acme-labs"]
        assert await slugs(q="labs", status="pending") == ["acme-labs"]
        assert await slugs(q="%") == []

    async def test_deleted_tenants_are_listed_only_when_asked(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await kit.client.delete(f"/tenants/{tenant['id']}", headers=kit.admin())
        default = (await kit.client.get("/tenants", headers=kit.admin())).json()
        assert [t["slug"] for t in default["items"]] == ["main"]
        deleted = (await kit.client.get("/tenants?status=deleted", headers=kit.admin())).json()
        assert [t["slug"] for t in deleted["items"]] == ["acme"]

    async def test_page_size_is_bounded(self, kit: Any) -> None:
        response = await kit.client.get("/tenants", params={"limit": 5000}, headers=kit.admin())
        problem(response, 422)

    async def test_a_cursor_it_did_not_hand_out_is_a_bad_request(self, kit: Any) -> None:
        response = await kit.client.get(
            "/tenants", params={"cursor": "garbage!"}, headers=kit.admin()
        )
        problem(response, 400)

    async def test_tenant_admins_cannot_list_all_tenants(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        response = await kit.client.get("/tenants", headers=kit.tenant_admin(tenant["id"]))
        problem(response, 403)


class TestRead:
    async def test_by_id_by_slug_and_by_slug_in_place_of_the_id(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        for path in (f"/tenants/{tenant['id']}", "/tenants/by-slug/acme", "/tenants/acme"):
            response = await kit.client.get(path, headers=kit.admin())
            assert response.status_code == 200, path
            assert response.json()["id"] == tenant["id"]
            assert response.headers["etag"] == '"1"'

    async def test_members_of_a_tenant_read_it(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        response = await kit.client.get(f"/tenants/{tenant['id']}", headers=kit.user(tenant["id"]))
        assert response.status_code == 200

    async def test_another_tenants_tenant_is_not_found(self, kit: Any) -> None:
        acme = await kit.create_tenant("acme")
        globex = await kit.create_tenant("globex")
        for path in (f"/tenants/{globex['id']}", "/tenants/by-slug/globex", "/tenants/globex"):
            response = await kit.client.get(path, headers=kit.tenant_admin(acme["id"]))
            body = problem(response, 404)
            assert body["detail"] == "No such tenant."  # the same answer as for no tenant at all
            assert "Globex" not in response.text

    async def test_unknown_tenant_is_not_found(self, kit: Any) -> None:
        for path in (f"/tenants/{uuid4()}", "/tenants/by-slug/nobody", "/tenants/nobody"):
            problem(await kit.client.get(path, headers=kit.admin()), 404)


class TestUpdate:
    async def test_update_with_current_etag_bumps_the_version(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme", metadata={"a": 1})
        response = await kit.client.put(
            f"/tenants/{tenant['id']}",
            json={"name": "Acme Inc", "metadata": {"a": 2}},
            headers={**kit.admin(), "If-Match": '"1"'},
        )
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "Acme Inc"
        assert response.json()["version"] == 2
        assert response.headers["etag"] == '"2"'
        async with kit.reader(topics.TENANT_EVENTS) as events:
            records = await events.of_tenant(tenant["id"], CREATED, UPDATED)
        updated = next(e for _, e in records if e.type == UPDATED)
        assert updated.data.changes == {"name": "Acme Inc", "metadata": {"a": 2}}
        assert updated.data.version == 2
        async with kit.reader(topics.TENANT_STATE) as state:
            snapshots = await state.of_tenant(tenant["id"], SNAPSHOT, SNAPSHOT)
        assert [s.data.version for _, s in snapshots] == [1, 2]
        assert snapshots[-1][1].data.name == "Acme Inc"

    async def test_stale_etag_is_412_and_changes_nothing(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        path = f"/tenants/{tenant['id']}"
        first = await kit.client.put(
            path, json={"name": "One"}, headers={**kit.admin(), "If-Match": '"1"'}
        )
        assert first.status_code == 200
        stale = await kit.client.put(
            path, json={"name": "Two"}, headers={**kit.admin(), "If-Match": '"1"'}
        )
        assert problem(stale, 412)["current_version"] == 2
        now = (await kit.client.get(path, headers=kit.admin())).json()
        assert (now["name"], now["version"]) == ("One", 2)

    async def test_plan_change_emits_plan_changed(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme", plan="starter")
        response = await kit.client.put(
            f"/tenants/{tenant['id']}", json={"plan": "pro"}, headers=kit.admin()
        )
        assert response.json()["plan"] == "pro"
        async with kit.reader(topics.TENANT_EVENTS) as events:
            records = await events.of_tenant(tenant["id"], PLAN_CHANGED)
        changed = next(e for _, e in records if e.type == PLAN_CHANGED)
        assert (changed.data.old_plan, changed.data.new_plan, changed.data.version) == (
            "starter",
            "pro",
            2,
        )
        assert UPDATED not in [e.type for _, e in records]

    async def test_tenant_admin_updates_its_tenant_but_not_its_plan(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        path = f"/tenants/{tenant['id']}"
        headers = kit.tenant_admin(tenant["id"])
        assert (
            await kit.client.put(path, json={"name": "Acme 2"}, headers=headers)
        ).status_code == 200
        problem(await kit.client.put(path, json={"plan": "enterprise"}, headers=headers), 403)

    async def test_users_cannot_update(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        response = await kit.client.put(
            f"/tenants/{tenant['id']}", json={"name": "x"}, headers=kit.user(tenant["id"])
        )
        problem(response, 403)

    async def test_slug_cannot_be_changed(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        response = await kit.client.put(
            f"/tenants/{tenant['id']}", json={"slug": "acme-2"}, headers=kit.admin()
        )
        problem(response, 422)

    async def test_unchanged_values_are_not_a_new_version(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme", name="Acme")
        response = await kit.client.put(
            f"/tenants/{tenant['id']}", json={"name": "Acme"}, headers=kit.admin()
        )
        assert response.json()["version"] == 1

    async def test_a_deleted_tenant_does_not_change(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await kit.client.delete(f"/tenants/{tenant['id']}", headers=kit.admin())
        response = await kit.client.put(
            f"/tenants/{tenant['id']}", json={"name": "x"}, headers=kit.admin()
        )
        problem(response, 409)


class TestLifecycle:
    async def test_pending_active_suspended_active_deleted(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        path = f"/tenants/{tenant['id']}"
        activated = await kit.client.post(f"{path}/activate", headers=kit.admin())
        assert activated.json()["status"] == "active"
        suspended = await kit.client.post(
            f"{path}/suspend", json={"reason": "unpaid invoice"}, headers=kit.admin()
        )
        assert suspended.json()["status"] == "suspended"
        assert suspended.json()["status_reason"] == "unpaid invoice"
        resumed = await kit.client.post(f"{path}/activate", headers=kit.admin())
        assert (resumed.json()["status"], resumed.json()["status_reason"]) == ("active", None)
        deleted = await kit.client.delete(path, headers=kit.admin())
        assert deleted.json()["status"] == "deleted"
        assert deleted.json()["deleted_at"]
        assert deleted.json()["version"] == 5

        async with kit.reader(topics.TENANT_EVENTS) as events:
            records = await events.of_tenant(
                tenant["id"], CREATED, ACTIVATED, SUSPENDED, ACTIVATED, DELETED
            )
        kinds = [e.type for _, e in records]
        assert kinds == [CREATED, ACTIVATED, SUSPENDED, ACTIVATED, DELETED]
        suspended_event = records[2][1]
        assert suspended_event.data.reason == "unpaid invoice"
        assert records[3][1].data.previous_status == "suspended"
        assert records[4][1].data.slug == "acme"
        async with kit.reader(topics.TENANT_STATE) as state:
            snapshots = await state.of_tenant(tenant["id"], *[SNAPSHOT] * 5)
        assert [(s.data.status, s.data.version) for _, s in snapshots] == [
            ("pending", 1),
            ("active", 2),
            ("suspended", 3),
            ("active", 4),
            ("deleted", 5),
        ]
        # consumers learn when the tenant went (usage before it is still billed)
        assert [s.data.deleted_at for _, s in snapshots[:4]] == [None] * 4
        assert snapshots[4][1].data.deleted_at == datetime.fromisoformat(
            deleted.json()["deleted_at"]
        )

    async def test_invalid_transition_lists_the_allowed_ones(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        response = await kit.client.post(
            f"/tenants/{tenant['id']}/suspend", json={"reason": "x"}, headers=kit.admin()
        )
        body = problem(response, 409)
        assert body["allowed_transitions"] == ["active", "deleted"]
        assert body["current_status"] == "pending"

    async def test_activating_an_active_tenant_is_a_conflict(self, kit: Any) -> None:
        tenant = await kit.active_tenant("acme")
        response = await kit.client.post(f"/tenants/{tenant['id']}/activate", headers=kit.admin())
        assert problem(response, 409)["allowed_transitions"] == ["suspended", "deleted"]

    async def test_deleted_is_final(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await kit.client.delete(f"/tenants/{tenant['id']}", headers=kit.admin())
        again = await kit.client.delete(f"/tenants/{tenant['id']}", headers=kit.admin())
        assert problem(again, 409)["allowed_transitions"] == []
        activate = await kit.client.post(f"/tenants/{tenant['id']}/activate", headers=kit.admin())
        problem(activate, 409)

    async def test_suspend_needs_a_reason(self, kit: Any) -> None:
        tenant = await kit.active_tenant("acme")
        response = await kit.client.post(
            f"/tenants/{tenant['id']}/suspend", json={}, headers=kit.admin()
        )
        problem(response, 422)

    async def test_transitions_take_a_platform_admin(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        response = await kit.client.post(
            f"/tenants/{tenant['id']}/activate", headers=kit.tenant_admin(tenant["id"])
        )
        problem(response, 403)

    async def test_stale_etag_refuses_a_transition(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await kit.client.put(f"/tenants/{tenant['id']}", json={"name": "x"}, headers=kit.admin())
        response = await kit.client.post(
            f"/tenants/{tenant['id']}/activate", headers={**kit.admin(), "If-Match": '"1"'}
        )
        problem(response, 412)
        now = (await kit.client.get(f"/tenants/{tenant['id']}", headers=kit.admin())).json()
        assert now["status"] == "pending"

    async def test_the_default_tenant_cannot_be_deleted(self, kit: Any) -> None:
        response = await kit.client.delete("/tenants/main", headers=kit.admin())
        problem(response, 409)


class TestIdempotency:
    async def test_same_key_same_body_replays_the_first_response(self, kit: Any) -> None:
        headers = {**kit.admin(), "Idempotency-Key": "create-acme-1"}
        body = {"name": "Acme", "slug": "acme"}
        first = await kit.client.post("/tenants", json=body, headers=headers)
        second = await kit.client.post("/tenants", json=body, headers=headers)
        assert first.status_code == second.status_code == 201
        assert second.json() == first.json()
        assert second.headers["etag"] == first.headers["etag"]
        assert second.headers["idempotent-replayed"] == "true"
        listed = (await kit.client.get("/tenants", headers=kit.admin())).json()["items"]
        assert [t["slug"] for t in listed] == ["main", "acme"]

    async def test_same_key_different_body_is_422(self, kit: Any) -> None:
        headers = {**kit.admin(), "Idempotency-Key": "create-1"}
        await kit.client.post("/tenants", json={"name": "Acme", "slug": "acme"}, headers=headers)
        response = await kit.client.post(
            "/tenants", json={"name": "Globex", "slug": "globex"}, headers=headers
        )
        problem(response, 422)
        assert (await kit.client.get("/tenants/globex", headers=kit.admin())).status_code == 404

    async def test_a_replayed_transition_does_not_conflict(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        headers = {**kit.admin(), "Idempotency-Key": "activate-acme"}
        first = await kit.client.post(f"/tenants/{tenant['id']}/activate", headers=headers)
        second = await kit.client.post(f"/tenants/{tenant['id']}/activate", headers=headers)
        assert first.status_code == second.status_code == 200
        assert second.json()["version"] == 2

    async def test_a_failed_write_is_not_remembered(self, kit: Any) -> None:
        headers = {**kit.admin(), "Idempotency-Key": "k"}
        body = {"name": "Acme", "slug": "acme", "plan": "gold"}
        assert (await kit.client.post("/tenants", json=body, headers=headers)).status_code == 422
        retried = await kit.client.post("/tenants", json={**body, "plan": "pro"}, headers=headers)
        assert retried.status_code == 201

    async def test_an_unusable_key_is_a_bad_request(self, kit: Any) -> None:
        headers = {**kit.admin(), "Idempotency-Key": "x" * 201}
        response = await kit.client.post(
            "/tenants", json={"name": "A", "slug": "acme"}, headers=headers
        )
        problem(response, 400)
