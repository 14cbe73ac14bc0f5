"""`stellara events tail` prints real events from Kafka, decoded."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from stellara_cli.events import describe
from stellara_contracts import new_event, topics
from stellara_contracts.events import TenantCreated
from stellara_kit.testing import Infrastructure, produce_raw

STELLARA = str(Path(sys.executable).parent / "stellara")


def test_dead_letters_show_their_reason() -> None:
    line = describe(
        "usage.recorded.dlq",
        b"{}",
        [("x-dlq-reason", b"unknown_tenant"), ("x-dlq-error", b"no such tenant")],
    )
    assert "unknown_tenant" in line
    assert "no such tenant" in line


async def test_tail_prints_decoded_events(
    infrastructure: Infrastructure, topic_prefix: str
) -> None:
    tenant = uuid4()
    event = new_event(
        TenantCreated(
            tenant_id=tenant, slug="acme", name="Acme", plan="pro", created_at=datetime.now(UTC)
        ),
        source="test",
    )
    await produce_raw(
        infrastructure.kafka_bootstrap,
        f"{topic_prefix}{topics.TENANT_EVENTS}",
        [(event.key, event.to_json())],
    )
    proc = await asyncio.create_subprocess_exec(
        STELLARA,
        "events",
        "tail",
        "tenant.events",
        "--from-beginning",
        "--limit",
        "1",
        "--prefix",
        topic_prefix,
        "--bootstrap",
        infrastructure.kafka_bootstrap,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    text = stdout.decode()
    assert proc.returncode == 0, stderr.decode()
    assert "tenant.created.v1" in text
    assert str(tenant)[:8] in text
    assert '"slug":"acme"' in text
