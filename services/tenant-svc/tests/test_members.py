"""Members over HTTP: list, add, change role, remove, the last-admin rule, imports."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import httpx

from stellara_contracts import topics

MEMBER_ADDED = "stellara.tenant.member_added.v1"
MEMBER_REMOVED = "stellara.tenant.member_removed.v1"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return dict(response.json())


async def add(
    kit: Any, tenant: dict[str, Any], user_id: str, role: str = "user", **fields: Any
) -> httpx.Response:
    return await kit.client.post(
        f"/tenants/{tenant['id']}/members",
        json={"user_id": user_id, "role": role, **fields},
        headers=kit.tenant_admin(tenant["id"]),
    )


async def listed(kit: Any, tenant: dict[str, Any], **params: Any) -> list[tuple[str, str]]:
    response = await kit.client.get(
        f"/tenants/{tenant['id']}/members", params=params, headers=kit.tenant_admin(tenant["id"])
    )
    assert response.status_code == 200, response.text
    return [(m["user_id"], m["role"]) for m in response.json()["items"]]


class TestAdd:
    async def test_added_member_is_listed_and_announced(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        response = await add(
            kit, tenant, "u-ada", "tenant_admin", email="Ada@Acme.Example", name="Ada Lovelace"
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["user_id"], body["email"], body["name"], body["role"], body["via"]) == (
            "u-ada",
            "ada@acme.example",
            "Ada Lovelace",
            "tenant_admin",
            "api",
        )
        assert await listed(kit, tenant) == [("u-ada", "tenant_admin")]

        async with kit.reader(topics.TENANT_EVENTS) as events:
            records = await events.of_tenant(tenant["id"], MEMBER_ADDED)
        [(key, added)] = [(k, e) for k, e in records if e.type == MEMBER_ADDED]
        assert key == tenant["id"].encode()
        assert (added.data.user_id, added.data.email, added.data.role, added.data.via) == (
            "u-ada",
            "ada@acme.example",
            "tenant_admin",
            "api",
        )

    async def test_the_same_user_twice_is_a_conflict(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        assert (await add(kit, tenant, "u-ada")).status_code == 201
        assert problem(await add(kit, tenant, "u-ada"), 409)["user_id"] == "u-ada"

    async def test_the_same_user_added_at_once_is_one_member_and_conflicts(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        responses = await asyncio.gather(*(add(kit, tenant, "u-ada") for _ in range(4)))
        assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
        assert await listed(kit, tenant) == [("u-ada", "user")]

    async def test_the_same_email_under_another_id_is_a_conflict(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        assert (await add(kit, tenant, "u-ada", email="ada@acme.example")).status_code == 201
        response = await add(kit, tenant, "u-other", email="ADA@acme.example")
        assert problem(response, 409)["email"] == "ada@acme.example"
        assert await listed(kit, tenant) == [("u-ada", "user")]

    async def test_bad_email_role_or_user_id_is_422(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        refused = problem(await add(kit, tenant, "u-1", email="not-an-email"), 422)
        assert [e["location"] for e in refused["errors"]] == ["body.email"]
        problem(await add(kit, tenant, "u-2", role="platform_admin"), 422)
        for user_id in ("has space", "tab\there", "ünicode", " u-3", "a/b", "50%", "a\\b", ".."):
            refused = problem(await add(kit, tenant, user_id), 422)
            assert [e["location"] for e in refused["errors"]] == ["body.user_id"], user_id
        assert await listed(kit, tenant) == []

    async def test_names_that_would_break_or_disguise_a_screen_are_422(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        for name in ("Ada\u202eecalevoL", "Ada\u200bLovelace", "Ada\x07", "Ada\nLovelace"):
            refused = problem(await add(kit, tenant, "u-1", name=name), 422)
            assert [e["location"] for e in refused["errors"]] == ["body.name"], repr(name)
        added = await add(kit, tenant, "u-1", name="  Ada \u00a0 Lovelace ")
        assert added.status_code == 201 and added.json()["name"] == "Ada Lovelace"

    async def test_identity_provider_ids_are_taken_and_named_by_their_path(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        for user_id in ("auth0|42", "google-oauth2|1", "...", "a.b_c~d"):
            assert (await add(kit, tenant, user_id)).status_code == 201, user_id
            read = await kit.client.get(
                f"/tenants/{tenant['id']}/members/{user_id}", headers=kit.tenant_admin(tenant["id"])
            )
            assert read.status_code == 200 and read.json()["user_id"] == user_id

    async def test_a_deleted_tenants_members_do_not_change(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await kit.client.delete(f"/tenants/{tenant['id']}", headers=kit.admin())
        response = await kit.client.post(
            f"/tenants/{tenant['id']}/members", json={"user_id": "u-1"}, headers=kit.admin()
        )
        problem(response, 409)

    async def test_a_replayed_add_does_not_conflict(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        headers = {**kit.tenant_admin(tenant["id"]), "Idempotency-Key": "add-ada"}
        path = f"/tenants/{tenant['id']}/members"
        first = await kit.client.post(path, json={"user_id": "u-ada"}, headers=headers)
        second = await kit.client.post(path, json={"user_id": "u-ada"}, headers=headers)
        assert first.status_code == second.status_code == 201
        assert second.json() == first.json()


class TestAccess:
    async def test_users_cannot_manage_members(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        path = f"/tenants/{tenant['id']}/members"
        problem(await kit.client.get(path, headers=kit.user(tenant["id"])), 403)
        problem(
            await kit.client.post(path, json={"user_id": "u"}, headers=kit.user(tenant["id"])),
            403,
        )

    async def test_another_tenants_members_are_not_found(self, kit: Any) -> None:
        acme = await kit.create_tenant("acme")
        globex = await kit.create_tenant("globex")
        assert (await add(kit, globex, "u-globex")).status_code == 201
        mine = kit.tenant_admin(acme["id"])
        for method, path, body in (
            ("GET", f"/tenants/{globex['id']}/members", None),
            ("GET", f"/tenants/{globex['id']}/members/u-globex", None),
            ("POST", f"/tenants/{globex['id']}/members", {"user_id": "intruder"}),
            ("PUT", f"/tenants/{globex['id']}/members/u-globex", {"role": "tenant_admin"}),
            ("DELETE", "/tenants/globex/members/u-globex", None),
        ):
            response = await kit.client.request(method, path, json=body, headers=mine)
            # the same answer as for a tenant that does not exist
            assert problem(response, 404)["detail"] == "No such tenant.", path
        assert await listed(kit, globex) == [("u-globex", "user")]

    async def test_unknown_tenant_and_unknown_member_are_404(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        problem(await kit.client.get(f"/tenants/{uuid4()}/members", headers=kit.admin()), 404)
        response = await kit.client.get(
            f"/tenants/{tenant['id']}/members/nobody", headers=kit.admin()
        )
        assert problem(response, 404)["user_id"] == "nobody"


class TestList:
    async def test_in_join_order_across_pages_and_by_role(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        for user_id, role in (("u-c", "user"), ("u-a", "tenant_admin"), ("u-b", "user")):
            assert (await add(kit, tenant, user_id, role)).status_code == 201
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            response = await kit.client.get(
                f"/tenants/{tenant['id']}/members", params=params, headers=kit.admin()
            )
            page = response.json()
            assert len(page["items"]) <= 2
            seen += [m["user_id"] for m in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        assert seen == ["u-c", "u-a", "u-b"]
        assert await listed(kit, tenant, role="user") == [("u-c", "user"), ("u-b", "user")]

    async def test_a_cursor_it_did_not_hand_out_is_a_bad_request(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        response = await kit.client.get(
            f"/tenants/{tenant['id']}/members", params={"cursor": "garbage!"}, headers=kit.admin()
        )
        problem(response, 400)


class TestChangeRole:
    async def test_promotion_is_announced_with_the_new_role(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await add(kit, tenant, "u-ada")
        response = await kit.client.put(
            f"/tenants/{tenant['id']}/members/u-ada",
            json={"role": "tenant_admin"},
            headers=kit.tenant_admin(tenant["id"]),
        )
        assert response.status_code == 200, response.text
        assert response.json()["role"] == "tenant_admin"
        assert await listed(kit, tenant) == [("u-ada", "tenant_admin")]
        async with kit.reader(topics.TENANT_EVENTS) as events:
            records = await events.of_tenant(tenant["id"], MEMBER_ADDED, MEMBER_ADDED)
        roles = [e.data.role for _, e in records if e.type == MEMBER_ADDED]
        assert roles == ["user", "tenant_admin"]

    async def test_the_only_admin_cannot_be_demoted(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await add(kit, tenant, "u-ada", "tenant_admin")
        await add(kit, tenant, "u-alan")
        response = await kit.client.put(
            f"/tenants/{tenant['id']}/members/u-ada",
            json={"role": "user"},
            headers=kit.tenant_admin(tenant["id"]),
        )
        assert problem(response, 409)["user_id"] == "u-ada"
        assert await listed(kit, tenant) == [("u-ada", "tenant_admin"), ("u-alan", "user")]

    async def test_one_of_two_admins_can_be_demoted(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await add(kit, tenant, "u-ada", "tenant_admin")
        await add(kit, tenant, "u-grace", "tenant_admin")
        response = await kit.client.put(
            f"/tenants/{tenant['id']}/members/u-ada",
            json={"role": "user"},
            headers=kit.tenant_admin(tenant["id"]),
        )
        assert response.status_code == 200, response.text
        assert await listed(kit, tenant) == [("u-ada", "user"), ("u-grace", "tenant_admin")]

    async def test_unknown_member_is_404_and_unknown_role_422(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await add(kit, tenant, "u-ada")
        path = f"/tenants/{tenant['id']}/members"
        problem(
            await kit.client.put(f"{path}/nobody", json={"role": "user"}, headers=kit.admin()),
            404,
        )
        problem(
            await kit.client.put(f"{path}/u-ada", json={"role": "owner"}, headers=kit.admin()),
            422,
        )


class TestRemove:
    async def test_removed_member_is_gone_and_announced(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await add(kit, tenant, "u-ada", "tenant_admin")
        await add(kit, tenant, "u-alan", email="alan@acme.example")
        path = f"/tenants/{tenant['id']}/members/u-alan"
        response = await kit.client.delete(path, headers=kit.tenant_admin(tenant["id"]))
        assert response.status_code == 204, response.text
        problem(await kit.client.get(path, headers=kit.admin()), 404)
        problem(await kit.client.delete(path, headers=kit.admin()), 404)
        assert await listed(kit, tenant) == [("u-ada", "tenant_admin")]
        async with kit.reader(topics.TENANT_EVENTS) as events:
            records = await events.of_tenant(tenant["id"], MEMBER_REMOVED)
        [(key, removed)] = [(k, e) for k, e in records if e.type == MEMBER_REMOVED]
        assert key == tenant["id"].encode()
        assert (removed.data.user_id, removed.data.email) == ("u-alan", "alan@acme.example")

    async def test_the_only_admin_cannot_be_removed(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await add(kit, tenant, "u-ada", "tenant_admin")
        response = await kit.client.delete(
            f"/tenants/{tenant['id']}/members/u-ada", headers=kit.admin()
        )
        assert problem(response, 409)["user_id"] == "u-ada"
        assert await listed(kit, tenant) == [("u-ada", "tenant_admin")]

    async def test_a_tenant_without_admins_can_lose_its_users(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await add(kit, tenant, "u-alan")
        response = await kit.client.delete(
            f"/tenants/{tenant['id']}/members/u-alan", headers=kit.admin()
        )
        assert response.status_code == 204, response.text
        assert await listed(kit, tenant) == []


class TestImport:
    async def test_good_duplicate_and_bad_rows_then_a_second_run_changes_nothing(
        self, kit: Any
    ) -> None:
        tenant = await kit.create_tenant("acme")
        await add(kit, tenant, "u-grace", email="grace@acme.example")
        rows = [
            {"line": 2, "email": "ada@acme.example", "role": "admin", "name": " Ada  Lovelace "},
            {"line": 3, "email": "alan@acme.example", "user_id": "auth0|42"},
            {"line": 4, "email": "GRACE@acme.example"},  # already a member (by email)
            {"line": 5, "email": "ada@acme.example"},  # the same user again in the file
            {"line": 6, "email": "not-an-email"},
            {"line": 7, "email": "bob@acme.example", "role": "owner"},
            {"line": 8, "role": "user"},
        ]
        path = f"/tenants/{tenant['id']}/members/import"
        headers = kit.tenant_admin(tenant["id"])
        first = await kit.client.post(path, json={"rows": rows}, headers=headers)
        assert first.status_code == 200, first.text
        report = first.json()
        assert (report["created"], report["skipped"], report["invalid"]) == (2, 2, 3)
        assert [(r["line"], r["outcome"]) for r in report["results"]] == [
            (2, "created"),
            (3, "created"),
            (4, "skipped"),
            (5, "skipped"),
            (6, "invalid"),
            (7, "invalid"),
            (8, "invalid"),
        ]
        reasons = {r["line"]: r["reason"] for r in report["results"]}
        assert (reasons[4], reasons[5]) == ("already a member", "the same user as line 2")
        assert all(reasons[line] for line in (6, 7, 8))
        ada = await kit.client.get(
            f"/tenants/{tenant['id']}/members/ada@acme.example", headers=headers
        )
        assert (ada.json()["name"], ada.json()["via"]) == ("Ada Lovelace", "import")
        assert await listed(kit, tenant) == [
            ("u-grace", "user"),
            ("ada@acme.example", "tenant_admin"),
            ("auth0|42", "user"),
        ]

        second = (await kit.client.post(path, json={"rows": rows}, headers=headers)).json()
        assert (second["created"], second["skipped"], second["invalid"]) == (0, 4, 3)
        assert len(await listed(kit, tenant)) == 3

        async with kit.reader(topics.TENANT_EVENTS) as events:
            records = await events.of_tenant(tenant["id"], *[MEMBER_ADDED] * 3)
        imported = [e.data for _, e in records if e.type == MEMBER_ADDED and e.data.via == "import"]
        assert sorted(m.user_id for m in imported) == ["ada@acme.example", "auth0|42"]

    async def test_two_imports_of_one_file_at_once_create_each_user_once(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        rows = [{"line": i, "email": f"user{i}@acme.example"} for i in range(1, 201)]
        path = f"/tenants/{tenant['id']}/members/import"

        async def run() -> httpx.Response:
            return await kit.client.post(path, json={"rows": rows}, headers=kit.admin())

        reports = [r.json() for r in await asyncio.gather(run(), run(), run())]
        assert sum(r["created"] for r in reports) == 200, reports
        assert all(r["created"] + r["skipped"] == 200 for r in reports)
        assert len(await listed(kit, tenant, limit=200)) == 200

    async def test_too_many_rows_for_one_request_is_422(self, settings: Any, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        rows = [{"email": f"u{i}@acme.example"} for i in range(settings.import_batch_max + 1)]
        response = await kit.client.post(
            f"/tenants/{tenant['id']}/members/import", json={"rows": rows}, headers=kit.admin()
        )
        problem(response, 422)
        assert await listed(kit, tenant) == []
