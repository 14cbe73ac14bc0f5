"""The invariants checked after each schedule, on that schedule's own data.

Reads go straight to PostgreSQL and Kafka (not through the proxies) and, for what
a user sees, through the gateway once every fault is healed. Waits are bounded and
generous: timing only changes the recovery figures, never the verdict of a healthy
system.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx

from stellara_cli.mailsink import read_mailbox
from stellara_contracts.events import Role
from stellara_devstack.common import consumer_lag
from stellara_kit.testing.infra import TEST_OWNER, TEST_RUNTIME

from .load import METRIC, BaseTenant, Ledger, Tokens

T = TypeVar("T")
TOKEN_RE = re.compile(r"/invitations/([A-Za-z0-9_\-]+)/accept")
SYSTEM_ON = "SELECT set_config('app.system', 'on', true)"
DRAIN_TIMEOUT = 150.0
VISIBLE_TIMEOUT = 90.0


@dataclass
class Databases:
    """The services' databases, reached directly (owner and runtime roles)."""

    urls: dict[str, str]  # package → postgres URL without the user

    def owner(self, package: str) -> str:
        return self.urls[package].replace("://", f"://{TEST_OWNER}:test@", 1)

    def runtime(self, package: str) -> str:
        return self.urls[package].replace("://", f"://{TEST_RUNTIME}:test@", 1)


@dataclass
class Findings:
    broken: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.broken.append(what)


async def until(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout: float
) -> tuple[T, float | None]:
    """The probe's last answer, and how long it took to satisfy ``ok`` (None: it never did)."""
    started = time.monotonic()
    while True:
        last = await probe()
        if ok(last):
            return last, round(time.monotonic() - started, 2)
        if time.monotonic() - started > timeout:
            return last, None
        await asyncio.sleep(0.5)


async def owner_rows(databases: Databases, package: str, query: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(databases.owner(package))
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL TIME ZONE 'UTC'")
            await conn.execute(SYSTEM_ON)
            return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


# ---------------------------------------------------------------------- lag
async def lags(bootstrap: str, groups: list[str]) -> dict[str, int | None]:
    results = await asyncio.gather(
        *(asyncio.to_thread(consumer_lag, bootstrap, group) for group in groups)
    )
    return dict(zip(groups, results, strict=True))


# ---------------------------------------------------------------------- usage
async def counted(databases: Databases, tenants: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    rows = await owner_rows(
        databases,
        "usage_svc",
        "SELECT event_id, count(*) AS n FROM raw_events "
        "WHERE tenant_id = ANY($1::uuid[]) AND metric = $2 GROUP BY event_id",
        tenants,
        METRIC,
    )
    return {row["event_id"]: row["n"] for row in rows}


async def check_usage(
    findings: Findings, databases: Databases, ledger: Ledger, tenants: list[BaseTenant]
) -> None:
    ids = [t.id for t in tenants]
    seen, took = await until(
        lambda: counted(databases, ids),
        lambda c: ledger.acked_events <= c.keys(),
        DRAIN_TIMEOUT,
    )
    findings.figures["usage_counted_after_s"] = took
    missing = ledger.acked_events - seen.keys()
    findings.expect(not missing, f"{len(missing)} acknowledged usage events never counted")
    twice = {i: n for i, n in seen.items() if n != 1}
    findings.expect(not twice, f"{len(twice)} usage events counted more than once")
    refused = ledger.refused_events & seen.keys()
    findings.expect(not refused, f"{len(refused)} refused usage events counted")
    stray = seen.keys() - ledger.acked_events - ledger.unsure_events
    findings.expect(not stray, f"{len(stray)} usage events counted that were never sent")
    findings.figures["usage"] = {
        "acknowledged": len(ledger.acked_events),
        "unsure": len(ledger.unsure_events),
        "unsure_counted": len(ledger.unsure_events & seen.keys()),
        "refused": len(ledger.refused_events),
    }
    dedup = await owner_rows(
        databases,
        "usage_svc",
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM usage_dedup "
        "WHERE tenant_id = ANY($1::uuid[])",
        ids,
    )
    findings.expect(dedup[0]["n"] == dedup[0]["d"], "an event id is twice in the dedup ledger")


async def check_aggregates(
    findings: Findings, databases: Databases, tenants: list[BaseTenant]
) -> None:
    """The hourly aggregates equal a recomputation from raw_events (every metric)."""
    rows = await owner_rows(
        databases,
        "usage_svc",
        """
        WITH r AS (
            SELECT tenant_id, metric, date_trunc('hour', occurred_at) AS hour,
                   sum(value) AS sum, count(*) AS count, min(value) AS min, max(value) AS max
            FROM raw_events WHERE tenant_id = ANY($1::uuid[]) GROUP BY 1, 2, 3
        ), h AS (
            SELECT tenant_id, metric, hour, sum, count, min, max
            FROM hourly_aggregates WHERE tenant_id = ANY($1::uuid[])
        )
        SELECT coalesce(r.tenant_id, h.tenant_id) AS tenant_id,
               coalesce(r.metric, h.metric) AS metric, coalesce(r.hour, h.hour) AS hour,
               r.sum AS raw_sum, h.sum AS agg_sum, r.count AS raw_count, h.count AS agg_count
        FROM r FULL OUTER JOIN h USING (tenant_id, metric, hour)
        WHERE r.sum IS DISTINCT FROM h.sum OR r.count IS DISTINCT FROM h.count
           OR r.min IS DISTINCT FROM h.min OR r.max IS DISTINCT FROM h.max
        """,
        [t.id for t in tenants],
    )
    findings.expect(
        not rows,
        "hourly aggregates differ from raw_events: "
        + "; ".join(
            f"{r['metric']} {r['hour']:%H:00} raw {r['raw_count']}/{r['raw_sum']} "
            f"aggregate {r['agg_count']}/{r['agg_sum']}"
            for r in rows[:5]
        ),
    )


# ---------------------------------------------------------------------- tenants
async def check_tenants(
    findings: Findings,
    databases: Databases,
    http: httpx.AsyncClient,
    tokens: Tokens,
    ledger: Ledger,
    name: str,
) -> None:
    rows = await owner_rows(
        databases, "tenant_svc", "SELECT id, slug FROM tenants WHERE slug LIKE $1", f"{name}-t%"
    )
    present = {row["slug"]: row["id"] for row in rows}
    lost = {slug for slug in ledger.acked_tenants if slug not in present}
    findings.expect(not lost, f"acknowledged tenants missing in tenant-svc: {sorted(lost)}")
    wrong = {s for s, i in ledger.acked_tenants.items() if s in present and present[s] != i}
    findings.expect(not wrong, f"tenants with another id than acknowledged: {sorted(wrong)}")
    stray = present.keys() - ledger.acked_tenants.keys() - ledger.unsure_tenants
    findings.expect(not stray, f"tenants created without an acknowledgement: {sorted(stray)}")
    findings.figures["tenants"] = {
        "acknowledged": len(ledger.acked_tenants),
        "unsure": len(ledger.unsure_tenants),
        "unsure_committed": len(ledger.unsure_tenants & present.keys()),
    }
    everyone = [present[s] for s in present]

    async def onboarding() -> tuple[set[uuid.UUID], dict[uuid.UUID, int]]:
        copies = await owner_rows(
            databases,
            "onboarding_svc",
            "SELECT tenant_id FROM tenants WHERE tenant_id = ANY($1::uuid[])",
            everyone,
        )
        flows = await owner_rows(
            databases,
            "onboarding_svc",
            "SELECT tenant_id, count(*) AS n FROM onboarding_workflows "
            "WHERE tenant_id = ANY($1::uuid[]) GROUP BY tenant_id",
            everyone,
        )
        return {r["tenant_id"] for r in copies}, {r["tenant_id"]: r["n"] for r in flows}

    (copies, flows), took = await until(
        onboarding,
        lambda cf: set(everyone) <= cf[0] and set(everyone) <= cf[1].keys(),
        VISIBLE_TIMEOUT,
    )
    findings.figures["onboarding_caught_up_s"] = took
    findings.expect(
        set(everyone) <= copies,
        f"{len(set(everyone) - copies)} tenants missing in onboarding-svc's copy",
    )
    findings.expect(
        all(flows.get(t) == 1 for t in everyone),
        "tenants without exactly one onboarding workflow: "
        + str({str(t): flows.get(t, 0) for t in everyone if flows.get(t) != 1}),
    )

    async def visible(tenant: uuid.UUID) -> bool:
        """The gateway's directory and tenant-svc (GET /tenants/{id}), and usage-svc's
        directory (its usage answer), as the tenant's own admin."""
        headers = tokens.tenant_admin(tenant)
        for path in (f"/tenants/{tenant}", f"/tenants/{tenant}/usage"):
            try:
                response = await http.get(path, headers=headers)
            except httpx.HTTPError:
                return False
            if response.status_code != 200:
                return False
        return True

    async def all_visible() -> list[uuid.UUID]:
        answers = await asyncio.gather(*(visible(t) for t in everyone))
        return [t for t, ok in zip(everyone, answers, strict=True) if not ok]

    hidden, took = await until(all_visible, lambda h: not h, VISIBLE_TIMEOUT)
    findings.figures["directories_caught_up_s"] = took
    findings.expect(
        not hidden, f"{len(hidden)} tenants not visible through the gateway and usage-svc"
    )


# ---------------------------------------------------------------------- configuration
async def check_config(
    findings: Findings,
    databases: Databases,
    http: httpx.AsyncClient,
    tokens: Tokens,
    ledger: Ledger,
) -> None:
    for tenant, writes in ledger.config_writes.items():
        acked = [i for i, (_, outcome) in enumerate(writes) if outcome == "acked"]
        start = acked[-1] if acked else 0
        allowed = {value for value, _ in writes[start:]}
        # an unsure write (a 504 left it running) may still land after a later one
        late = {value for value, outcome in writes[:start] if outcome == "unsure"}
        if not acked:
            allowed.add("")  # nothing acknowledged: the key may be unset
        rows = await owner_rows(
            databases,
            "tenant_svc",
            "SELECT value FROM tenant_configs WHERE tenant_id = $1 "
            "AND category = 'general' AND key = 'display_name'",
            tenant,
        )
        stored = json.loads(rows[0]["value"]) if rows else ""
        if isinstance(stored, dict):
            stored = stored.get("value", stored)
        findings.expect(
            stored in allowed | late,
            f"config of {tenant}: {stored!r}, expected one of {sorted(map(str, allowed))[:4]}",
        )
        if stored in late - allowed:
            findings.figures["config_unsure_landed_late"] = stored
        response = await http.get(f"/tenants/{tenant}/config", headers=tokens.admin())
        findings.expect(
            response.status_code == 200 and (stored == "" or json.dumps(stored) in response.text),
            f"config of {tenant} through the gateway: {response.status_code} {response.text[:200]}",
        )


# ---------------------------------------------------------------------- invitations
async def check_invitations(
    findings: Findings,
    databases: Databases,
    http: httpx.AsyncClient,
    tokens: Tokens,
    ledger: Ledger,
    mail_folder: Path,
    name: str,
) -> None:
    rows = await owner_rows(
        databases,
        "onboarding_svc",
        "SELECT email, count(*) AS n FROM invitations WHERE email LIKE $1 GROUP BY email",
        f"%@{name}.example",
    )
    stored = {row["email"]: row["n"] for row in rows}
    findings.expect(
        all(stored.get(e) == 1 for e in ledger.acked_invitations),
        "acknowledged invitations not stored exactly once: "
        + str({e: stored.get(e, 0) for e in ledger.acked_invitations if stored.get(e) != 1}),
    )
    stray = stored.keys() - ledger.acked_invitations.keys() - ledger.unsure_invitations
    findings.expect(not stray, f"invitations stored without an acknowledgement: {sorted(stray)}")

    def mails() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for message in read_mailbox(mail_folder):
            if message.to.endswith(f"@{name}.example"):
                found.setdefault(message.to.strip("<>"), []).append(message.text())
        return found

    async def probe() -> dict[str, list[str]]:
        return await asyncio.to_thread(mails)

    mailed, took = await until(
        probe, lambda m: ledger.acked_invitations.keys() <= m.keys(), VISIBLE_TIMEOUT
    )
    findings.figures["invitations_mailed_after_s"] = took
    unmailed = ledger.acked_invitations.keys() - mailed.keys()
    findings.expect(not unmailed, f"acknowledged invitations never mailed: {sorted(unmailed)}")
    findings.figures["invitations"] = {
        "acknowledged": len(ledger.acked_invitations),
        "unsure": len(ledger.unsure_invitations),
        "mails": sum(len(v) for v in mailed.values()),
    }
    for email, tenant in ledger.acked_invitations.items():
        texts = mailed.get(email)
        if not texts:
            continue
        match = TOKEN_RE.search(texts[0])
        findings.expect(match is not None, f"the mail to {email} holds no accept link")
        if match is None:
            continue
        user = f"user-{uuid.uuid4().hex[:8]}"
        token = tokens.mint(Role.USER, subject=user, email=email)
        headers = {"authorization": f"Bearer {token}"}
        first = await http.post(f"/invitations/{match.group(1)}/accept", headers=headers)
        findings.expect(first.status_code == 200, f"accepting {email}: {first.text[:300]}")
        again = await http.post(f"/invitations/{match.group(1)}/accept", headers=headers)
        findings.expect(
            400 <= again.status_code < 500,
            f"{email} accepted twice: {again.status_code} {again.text[:200]}",
        )
        accepted = await owner_rows(
            databases,
            "onboarding_svc",
            "SELECT count(*) AS n FROM invitations WHERE email = $1 AND tenant_id = $2 "
            "AND accepted_at IS NOT NULL",
            email,
            tenant,
        )
        findings.expect(accepted[0]["n"] == 1, f"{email}: {accepted[0]['n']} accepted invitations")


# ---------------------------------------------------------------------- isolation
async def check_isolation(
    findings: Findings, databases: Databases, tenants: list[BaseTenant]
) -> None:
    """As each service's runtime role, no other tenant's row of any table with a tenant."""
    for package in databases.urls:
        conn = await asyncpg.connect(databases.runtime(package))
        try:
            tables = await conn.fetch(
                """
                SELECT c.relname AS table_name FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
                     AND NOT a.attisdropped
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                  AND has_table_privilege(c.oid, 'SELECT')
                """
            )
            for row in tables:
                table = row["table_name"]
                for tenant in tenants:
                    async with conn.transaction():
                        await conn.execute(
                            "SELECT set_config('app.tenant_id', $1, true)", str(tenant.id)
                        )
                        others = await conn.fetchval(
                            f'SELECT count(*) FROM "{table}" WHERE tenant_id <> $1', tenant.id
                        )
                    findings.expect(
                        others == 0,
                        f"{package}.{table}: {others} rows of other tenants visible as {tenant.slug}",
                    )
                async with conn.transaction():
                    unset = await conn.fetchval(f'SELECT count(*) FROM "{table}"')
                findings.expect(
                    unset == 0, f"{package}.{table}: {unset} rows visible with no tenant set"
                )
        finally:
            await conn.close()
