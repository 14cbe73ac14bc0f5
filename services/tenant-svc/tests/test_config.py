"""Tenant configuration over HTTP: defaults and overrides, schemas, bulk changes, history."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from stellara_contracts import topics
from stellara_kit.testing import running_app
from tenant_svc.config.catalogue import CatalogueError, ConfigCatalogue
from tenant_svc.main import create_app
from tenant_svc.settings import Settings

CONFIG_CHANGED = "stellara.tenant.config_changed.v1"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return dict(response.json())


async def put(
    kit: Any, tenant: dict[str, Any], key: str, value: Any, **headers: str
) -> httpx.Response:
    return await kit.client.put(
        f"/tenants/{tenant['id']}/config/{key}",
        json={"value": value},
        headers={**kit.tenant_admin(tenant["id"]), **headers},
    )


async def effective(kit: Any, tenant: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = await kit.client.get(
        f"/tenants/{tenant['id']}/config", params=params, headers=kit.tenant_admin(tenant["id"])
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


class TestRead:
    async def test_effective_configuration_merges_defaults_and_says_where_values_come_from(
        self, kit: Any
    ) -> None:
        tenant = await kit.create_tenant("acme")
        assert (await put(kit, tenant, "billing.hard_limit_action", "suspend")).status_code == 200
        view = await effective(kit, tenant, category="billing")
        assert view["values"] == {"billing": {"currency": "USD", "hard_limit_action": "suspend"}}
        sources = {(i["key"], i["source"]) for i in view["items"]}
        assert sources == {("currency", "default"), ("hard_limit_action", "tenant")}

    async def test_without_effective_only_the_tenants_values(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await put(kit, tenant, "features.beta_dashboard", True)
        view = await effective(kit, tenant, effective="false")
        assert view["values"] == {"features": {"beta_dashboard": True}}

    async def test_one_key_with_its_source_and_etag(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        path = f"/tenants/{tenant['id']}/config/general.locale"
        default = await kit.client.get(path, headers=kit.user(tenant["id"]))
        assert (default.json()["value"], default.json()["source"]) == ("en", "default")
        await put(kit, tenant, "general.locale", "de")
        own = await kit.client.get(path, headers=kit.user(tenant["id"]))
        assert (own.json()["value"], own.json()["source"], own.headers["etag"]) == (
            "de",
            "tenant",
            '"1"',
        )

    async def test_unknown_key_is_not_found(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        response = await kit.client.get(
            f"/tenants/{tenant['id']}/config/general.nothing", headers=kit.admin()
        )
        problem(response, 404)

    async def test_another_tenants_configuration_is_not_found(self, kit: Any) -> None:
        acme = await kit.create_tenant("acme")
        globex = await kit.create_tenant("globex")
        await put(kit, globex, "general.display_name", "Globex secret")
        response = await kit.client.get(
            f"/tenants/{globex['id']}/config", headers=kit.tenant_admin(acme["id"])
        )
        problem(response, 404)
        assert "secret" not in response.text


class TestWrite:
    async def test_post_creates_then_replaces(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        path = f"/tenants/{tenant['id']}/config"
        body = {"category": "integrations", "key": "slack_webhook", "value": {"url": "https://x"}}
        created = await kit.client.post(path, json=body, headers=kit.tenant_admin(tenant["id"]))
        assert created.status_code == 201, created.text
        assert (created.json()["version"], created.json()["source"]) == (1, "tenant")
        replaced = await kit.client.post(
            path,
            json={**body, "value": {"url": "https://y"}},
            headers=kit.tenant_admin(tenant["id"]),
        )
        assert replaced.status_code == 200
        assert replaced.json()["version"] == 2

    async def test_value_against_the_schema_is_422_naming_key_and_reason(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        response = await put(kit, tenant, "billing.hard_limit_action", "explode")
        body = problem(response, 422)
        [error] = body["errors"]
        assert error["key"] == "billing.hard_limit_action"
        assert "notify" in error["reason"] and "suspend" in error["reason"]

    async def test_unknown_keys_are_allowed_in_open_categories(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        assert (await put(kit, tenant, "features.anything_goes", [1, 2])).status_code == 200

    async def test_unknown_category_is_refused(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        problem(await put(kit, tenant, "secrets.password", "x"), 422)
        problem(await put(kit, tenant, "no-dot-here", "x"), 422)

    async def test_put_with_stale_etag_is_412(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await put(kit, tenant, "general.locale", "de")
        await put(kit, tenant, "general.locale", "fr")
        stale = await put(kit, tenant, "general.locale", "it", **{"If-Match": '"1"'})
        assert problem(stale, 412)["current_version"] == 2
        current = await put(kit, tenant, "general.locale", "it", **{"If-Match": '"2"'})
        assert current.json()["version"] == 3

    async def test_delete_brings_the_default_back_and_a_missing_key_is_404(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        path = f"/tenants/{tenant['id']}/config/general.locale"
        await put(kit, tenant, "general.locale", "de")
        headers = kit.tenant_admin(tenant["id"])
        assert (await kit.client.delete(path, headers=headers)).status_code == 204
        assert (await kit.client.get(path, headers=headers)).json()["source"] == "default"
        problem(await kit.client.delete(path, headers=headers), 404)

    async def test_users_read_but_do_not_write(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        assert (
            await kit.client.get(f"/tenants/{tenant['id']}/config", headers=kit.user(tenant["id"]))
        ).status_code == 200
        response = await kit.client.put(
            f"/tenants/{tenant['id']}/config/general.locale",
            json={"value": "de"},
            headers=kit.user(tenant["id"]),
        )
        problem(response, 403)

    async def test_a_deleted_tenants_configuration_is_frozen(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await kit.client.delete(f"/tenants/{tenant['id']}", headers=kit.admin())
        response = await kit.client.put(
            f"/tenants/{tenant['id']}/config/general.locale",
            json={"value": "de"},
            headers=kit.admin(),
        )
        problem(response, 409)

    async def test_every_change_is_an_event(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await put(kit, tenant, "billing.hard_limit_action", "suspend")
        async with kit.reader(topics.TENANT_EVENTS) as events:
            records = await events.of_tenant(tenant["id"], CONFIG_CHANGED)
        key, event = next((k, e) for k, e in records if e.type == CONFIG_CHANGED)
        assert key == tenant["id"].encode()
        [change] = event.data.changes
        assert (change.category, change.key, change.action) == (
            "billing",
            "hard_limit_action",
            "set",
        )
        assert (change.old_value, change.new_value, change.version) == (None, "suspend", 1)
        assert event.data.changed_by == "ada"


class TestBulk:
    async def test_all_changes_apply_together_with_one_event(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await put(kit, tenant, "general.locale", "de")
        response = await kit.client.patch(
            f"/tenants/{tenant['id']}/config",
            json={
                "changes": [
                    {
                        "op": "set",
                        "category": "billing",
                        "key": "hard_limit_action",
                        "value": "suspend",
                    },
                    {"op": "set", "category": "features", "key": "beta", "value": True},
                    {"op": "delete", "category": "general", "key": "locale"},
                ]
            },
            headers=kit.tenant_admin(tenant["id"]),
        )
        assert response.status_code == 200, response.text
        assert [c["key"] for c in response.json()["changes"]] == [
            "hard_limit_action",
            "beta",
            "locale",
        ]
        view = await effective(kit, tenant, effective="false")
        assert view["values"] == {
            "billing": {"hard_limit_action": "suspend"},
            "features": {"beta": True},
        }
        async with kit.reader(topics.TENANT_EVENTS) as events:
            records = await events.of_tenant(tenant["id"], CONFIG_CHANGED, CONFIG_CHANGED)
        bulk = [e for _, e in records if e.type == CONFIG_CHANGED][1]
        assert [(c.key, c.action) for c in bulk.data.changes] == [
            ("hard_limit_action", "set"),
            ("beta", "set"),
            ("locale", "delete"),
        ]

    async def test_one_refused_change_refuses_them_all(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await put(kit, tenant, "general.locale", "de")
        response = await kit.client.patch(
            f"/tenants/{tenant['id']}/config",
            json={
                "changes": [
                    {"op": "set", "category": "general", "key": "locale", "value": "fr"},
                    {"op": "set", "category": "features", "key": "beta", "value": True},
                    {"op": "set", "category": "auth", "key": "session_ttl_minutes", "value": 1},
                    {"op": "delete", "category": "general", "key": "timezone"},
                ]
            },
            headers=kit.tenant_admin(tenant["id"]),
        )
        body = problem(response, 422)
        assert [e["key"] for e in body["errors"]] == ["auth.session_ttl_minutes"]
        view = await effective(kit, tenant, effective="false")
        assert view["values"] == {"general": {"locale": "de"}}

    async def test_deleting_a_key_that_is_not_set_refuses_the_bulk(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        response = await kit.client.patch(
            f"/tenants/{tenant['id']}/config",
            json={
                "changes": [
                    {"op": "set", "category": "features", "key": "beta", "value": True},
                    {"op": "delete", "category": "general", "key": "timezone"},
                ]
            },
            headers=kit.tenant_admin(tenant["id"]),
        )
        assert problem(response, 422)["errors"] == [
            {"key": "general.timezone", "reason": "not set for this tenant"}
        ]
        assert (await effective(kit, tenant, effective="false"))["values"] == {}

    async def test_the_same_key_twice_is_refused(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        change = {"op": "set", "category": "features", "key": "beta", "value": True}
        response = await kit.client.patch(
            f"/tenants/{tenant['id']}/config",
            json={"changes": [change, change]},
            headers=kit.admin(),
        )
        problem(response, 422)


class TestHistory:
    async def test_every_change_is_recorded_newest_first(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        headers = kit.tenant_admin(tenant["id"])
        for value in ("de", "fr"):
            await put(kit, tenant, "general.locale", value)
        await kit.client.delete(f"/tenants/{tenant['id']}/config/general.locale", headers=headers)
        await put(kit, tenant, "features.beta", True)
        response = await kit.client.get(
            f"/tenants/{tenant['id']}/config/history",
            params={"key": "general.locale"},
            headers=headers,
        )
        history = response.json()["items"]
        assert [(h["version"], h["action"], h["old_value"], h["new_value"]) for h in history] == [
            (3, "delete", "fr", None),
            (2, "set", "de", "fr"),
            (1, "set", None, "de"),
        ]
        assert {h["changed_by"] for h in history} == {"ada"}
        everything = await kit.client.get(
            f"/tenants/{tenant['id']}/config/history", headers=headers
        )
        assert len(everything.json()["items"]) == 4

    async def test_simultaneous_first_writes_of_a_key_each_get_a_version(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        values = ["de", "fr", "it", "es"]
        answers = await asyncio.gather(
            *(put(kit, tenant, "general.locale", value) for value in values)
        )
        assert [a.status_code for a in answers] == [200] * len(values), [a.text for a in answers]
        response = await kit.client.get(
            f"/tenants/{tenant['id']}/config/history",
            params={"key": "general.locale"},
            headers=kit.tenant_admin(tenant["id"]),
        )
        history = response.json()["items"]
        assert sorted(h["version"] for h in history) == [1, 2, 3, 4]
        assert sorted(h["new_value"] for h in history) == sorted(values)

    async def test_history_pages(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        for value in range(5):
            await put(kit, tenant, "features.level", value)
        path = f"/tenants/{tenant['id']}/config/history"
        first = (await kit.client.get(path, params={"limit": 3}, headers=kit.admin())).json()
        second = (
            await kit.client.get(
                path, params={"limit": 3, "cursor": first["next_cursor"]}, headers=kit.admin()
            )
        ).json()
        assert [h["version"] for h in first["items"] + second["items"]] == [5, 4, 3, 2, 1]
        assert second["next_cursor"] is None

    async def test_a_version_continues_after_a_delete(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await put(kit, tenant, "general.locale", "de")
        await kit.client.delete(
            f"/tenants/{tenant['id']}/config/general.locale", headers=kit.admin()
        )
        assert (await put(kit, tenant, "general.locale", "fr")).json()["version"] == 3

    async def test_users_do_not_read_history(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        response = await kit.client.get(
            f"/tenants/{tenant['id']}/config/history", headers=kit.user(tenant["id"])
        )
        problem(response, 403)


class TestRollback:
    async def test_rollback_brings_an_old_value_back_as_a_new_version(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        for value in ("de", "fr", "it"):
            await put(kit, tenant, "general.locale", value)
        response = await kit.client.post(
            f"/tenants/{tenant['id']}/config/general.locale/rollback",
            json={"version": 1},
            headers=kit.tenant_admin(tenant["id"]),
        )
        assert response.status_code == 200, response.text
        [change] = response.json()["changes"]
        assert (change["old_value"], change["new_value"], change["version"]) == ("it", "de", 4)
        now = await kit.client.get(
            f"/tenants/{tenant['id']}/config/general.locale", headers=kit.admin()
        )
        assert (now.json()["value"], now.json()["version"]) == ("de", 4)

    async def test_rollback_to_a_delete_removes_the_key(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await put(kit, tenant, "features.beta", True)
        await kit.client.delete(
            f"/tenants/{tenant['id']}/config/features.beta", headers=kit.admin()
        )
        await put(kit, tenant, "features.beta", False)
        response = await kit.client.post(
            f"/tenants/{tenant['id']}/config/features.beta/rollback",
            json={"version": 2},
            headers=kit.admin(),
        )
        assert response.json()["changes"][0]["action"] == "delete"
        assert (await effective(kit, tenant, effective="false"))["values"] == {}

    async def test_unknown_version_is_404(self, kit: Any) -> None:
        tenant = await kit.create_tenant("acme")
        await put(kit, tenant, "features.beta", True)
        response = await kit.client.post(
            f"/tenants/{tenant['id']}/config/features.beta/rollback",
            json={"version": 7},
            headers=kit.admin(),
        )
        problem(response, 404)


class TestCatalogue:
    async def test_closed_category_refuses_unknown_keys(
        self, settings: Settings, kit_of: Any
    ) -> None:
        closed = settings.model_copy(update={"closed_config_categories": ["auth"]})
        # the only app on this database (a second one would wait as a standby relay)
        async with running_app(create_app(closed)) as client:
            kit = kit_of(client, closed)
            tenant = await kit.create_tenant("acme")
            headers = kit.admin()
            known = await client.put(
                f"/tenants/{tenant['id']}/config/auth.mfa_required",
                json={"value": True},
                headers=headers,
            )
            assert known.status_code == 200, known.text
            unknown = await client.put(
                f"/tenants/{tenant['id']}/config/auth.magic", json={"value": True}, headers=headers
            )
            assert "closed" in problem(unknown, 422)["errors"][0]["reason"]

    async def test_defaults_and_schemas_come_from_a_yaml_file(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        path = tmp_path / "config.yaml"
        path.write_text(
            "defaults:\n  features.beta_dashboard: false\n"
            "schemas:\n  features.beta_dashboard: {type: boolean}\n"
            "closed_categories: [integrations]\n"
        )
        catalogue = ConfigCatalogue.from_settings(settings.model_copy(update={"config_file": path}))
        assert catalogue.defaults[("features", "beta_dashboard")] is False
        assert catalogue.value_problem("features", "beta_dashboard", "yes")
        assert catalogue.value_problem("integrations", "anything", 1)
        assert catalogue.defaults[("billing", "hard_limit_action")] == "notify"  # built-ins stay

    async def test_a_default_that_breaks_its_schema_stops_startup(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        path = tmp_path / "config.json"
        path.write_text(json.dumps({"defaults": {"billing.hard_limit_action": "explode"}}))
        with pytest.raises(CatalogueError, match=r"billing\.hard_limit_action"):
            ConfigCatalogue.from_settings(settings.model_copy(update={"config_file": path}))
