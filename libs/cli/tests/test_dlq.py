"""`stellara dlq show / replay` on real dead-letter topics."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from stellara_contracts import topics
from stellara_kit.testing import Infrastructure, consume, produce_raw

STELLARA = str(Path(sys.executable).parent / "stellara")


async def stellara(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        STELLARA, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode or 0, stdout.decode(), stderr.decode()


async def test_show_then_replay_once(infrastructure: Infrastructure, topic_prefix: str) -> None:
    dlq = f"{topic_prefix}{topics.dlq_topic(topics.USAGE_RECORDED)}"
    headers = [
        ("x-dlq-reason", b"unknown_tenant"),
        ("x-dlq-error", b"tenant not known"),
        ("origin", b"t"),
    ]
    await produce_raw(
        infrastructure.kafka_bootstrap, dlq, [(b"k1", b"one"), (b"k2", b"two")], headers=headers
    )
    common = ["--prefix", topic_prefix, "--bootstrap", infrastructure.kafka_bootstrap]

    code, stdout, stderr = await stellara("dlq", "show", "usage.recorded", "--json", *common)
    assert code == 0, stderr
    rows = json.loads(stdout)
    assert [r["reason"] for r in rows] == ["unknown_tenant", "unknown_tenant"]
    assert rows[0]["error"] == "tenant not known"

    code, _, stderr = await stellara("dlq", "replay", "usage.recorded", *common)
    assert code == 0, stderr
    assert "replayed 2 records" in stderr
    code, _, stderr = await stellara("dlq", "replay", "usage.recorded", *common)
    assert "replayed 0 records" in stderr

    replayed = await consume(
        infrastructure.kafka_bootstrap, f"{topic_prefix}{topics.USAGE_RECORDED}", count=2
    )
    assert sorted(r.value for r in replayed) == [b"one", b"two"]
    for record in replayed:
        names = [k for k, _ in record.headers]
        assert "origin" in names
        assert not any(n.startswith("x-dlq-") for n in names)
