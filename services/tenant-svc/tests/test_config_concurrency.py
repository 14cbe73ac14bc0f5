"""Concurrent configuration writes on real PostgreSQL: no deadlock, one creator per key,
a history with one version per change and the key's version its newest."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

WRITERS = 8
ROUNDS = 4


async def history(kit: Any, tenant: str, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"key": key, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = await kit.client.get(
            f"/tenants/{tenant}/config/history", params=params, headers=kit.admin()
        )
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


async def assert_consistent(kit: Any, tenant: str, key: str, changes: int) -> None:
    """Versions 1..changes, each once; the key's value and version are the newest change's."""
    changes_seen = await history(kit, tenant, key)
    assert sorted(h["version"] for h in changes_seen) == list(range(1, changes + 1))
    newest = max(changes_seen, key=lambda h: h["version"])
    for older, newer in zip(
        sorted(changes_seen, key=lambda h: h["version"]),
        sorted(changes_seen, key=lambda h: h["version"])[1:],
        strict=False,
    ):
        assert newer["old_value"] == older["new_value"]
    current = await kit.client.get(f"/tenants/{tenant}/config/{key}", headers=kit.admin())
    if newest["action"] == "delete":
        assert current.status_code == 404 or current.json()["source"] == "default"
    else:
        assert current.json()["value"] == newest["new_value"]
        assert current.json()["version"] == newest["version"]
        assert current.headers["etag"] == f'"{newest["version"]}"'


def statuses(answers: list[httpx.Response]) -> Counter[int]:
    return Counter(a.status_code for a in answers)


class TestConcurrentWriters:
    async def test_creators_of_one_new_key_one_creates_the_others_update(self, kit: Any) -> None:
        tenant = (await kit.active_tenant("acme"))["id"]
        for round_ in range(ROUNDS):
            key = f"features.flag_{round_}"
            category, name = key.split(".")
            answers = await asyncio.gather(
                *(
                    kit.client.post(
                        f"/tenants/{tenant}/config",
                        json={"category": category, "key": name, "value": f"v{i}"},
                        headers=kit.admin(),
                    )
                    for i in range(WRITERS)
                )
            )
            assert statuses(answers) == {201: 1, 200: WRITERS - 1}, [a.text for a in answers]
            await assert_consistent(kit, tenant, key, WRITERS)

    async def test_puts_bulk_changes_and_deletes_of_the_same_keys_never_deadlock(
        self, kit: Any
    ) -> None:
        tenant = (await kit.active_tenant("acme"))["id"]
        keys = ["features.alpha", "features.beta", "features.gamma"]
        for round_ in range(ROUNDS):
            requests = []
            for i in range(WRITERS):
                # different keys in different orders, so that row locks could cross
                mine = keys[i % 3 :] + keys[: i % 3]
                requests.append(
                    kit.client.put(
                        f"/tenants/{tenant}/config/{mine[0]}",
                        json={"value": f"r{round_}-put-{i}"},
                        headers=kit.admin(),
                    )
                )
                requests.append(
                    kit.client.patch(
                        f"/tenants/{tenant}/config",
                        json={
                            "changes": [
                                {
                                    "op": "set",
                                    "category": k.split(".")[0],
                                    "key": k.split(".")[1],
                                    "value": f"r{round_}-bulk-{i}",
                                }
                                for k in mine
                            ]
                        },
                        headers=kit.admin(),
                    )
                )
                if i % 4 == 3:
                    requests.append(
                        kit.client.delete(
                            f"/tenants/{tenant}/config/{mine[1]}", headers=kit.admin()
                        )
                    )
            answers = await asyncio.gather(*requests)
            assert all(a.status_code < 500 for a in answers), [
                a.text for a in answers if a.status_code >= 500
            ]
            assert set(statuses(answers)) <= {200, 201, 204, 404}, statuses(answers)
        for key in keys:
            changes = await history(kit, tenant, key)
            await assert_consistent(kit, tenant, key, len(changes))

    async def test_conditional_writers_of_one_version_one_wins_the_others_412(
        self, kit: Any
    ) -> None:
        tenant = (await kit.active_tenant("acme"))["id"]
        first = await kit.client.put(
            f"/tenants/{tenant}/config/features.level", json={"value": 0}, headers=kit.admin()
        )
        etag = first.headers["etag"]
        answers = await asyncio.gather(
            *(
                kit.client.put(
                    f"/tenants/{tenant}/config/features.level",
                    json={"value": i + 1},
                    headers={**kit.admin(), "If-Match": etag},
                )
                for i in range(WRITERS)
            )
        )
        assert statuses(answers) == {200: 1, 412: WRITERS - 1}, [a.text for a in answers]
        await assert_consistent(kit, tenant, "features.level", 2)
