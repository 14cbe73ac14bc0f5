"""``stellara dlq``: read dead-lettered records and replay them to their topic.

Replaying is safe because every consumer is idempotent (inbox / dedup on the
event id): a record that was handled after all changes nothing. Replay reads
``<topic>.dlq`` with its own consumer group, so each dead letter is replayed
once; the original key, value and headers go back (the ``x-dlq-*`` headers
are dropped).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.progress import Progress

from stellara_contracts import topics

app = typer.Typer(help="Dead-letter topics: look at them, replay them.", no_args_is_help=True)
out = Console(highlight=False)
err = Console(stderr=True)
REPLAY_GROUP = "stellara-dlq-replay"


def _check(topic: str) -> None:
    if topic not in topics.ALL_TOPICS:
        raise typer.BadParameter(f"unknown topic {topic!r}; one of: {', '.join(topics.ALL_TOPICS)}")


def _bootstrap(bootstrap: str | None) -> str:
    from stellara_cli.stack import StackConfig

    return bootstrap or StackConfig.from_env().kafka_bootstrap


async def _read(bootstrap: str, dlq: str, limit: int, group: str | None) -> list[Any]:
    consumer = AIOKafkaConsumer(
        dlq,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[Any] = []
    try:
        while not limit or len(records) < limit:
            batch = await consumer.getmany(timeout_ms=1500, max_records=500)
            got = [r for rs in batch.values() for r in rs]
            if not got:
                break
            records += got
    finally:
        await consumer.stop()
    return records[:limit] if limit else records


@app.command()
def show(
    topic: str = typer.Argument(..., help="The original topic, e.g. usage.recorded."),
    limit: int = typer.Option(20, help="At most this many records (0: all)."),
    as_json: bool = typer.Option(False, "--json"),
    bootstrap: str = typer.Option(None, help="Kafka bootstrap servers."),
    prefix: str = typer.Option("", help="Topic prefix of the deployment."),
) -> None:
    """List the dead letters of a topic with their reason and error."""
    _check(topic)
    dlq = f"{prefix}{topics.dlq_topic(topic)}"
    records = asyncio.run(_read(_bootstrap(bootstrap), dlq, limit, None))
    rows = []
    for record in records:
        headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
        rows.append(
            {
                "partition": record.partition,
                "offset": record.offset,
                "reason": headers.get("x-dlq-reason"),
                "error": headers.get("x-dlq-error"),
                "original": f"{headers.get('x-dlq-original-topic')}[{headers.get('x-dlq-original-partition')}]"
                f"@{headers.get('x-dlq-original-offset')}",
                "value": (record.value or b"")[:300].decode(errors="replace"),
            }
        )
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        err.print(f"{dlq} is empty")
    for row in rows:
        out.print(f"{row['original']}  [bold]{row['reason']}[/]: {row['error']}")


async def _replay(bootstrap: str, topic: str, prefix: str, limit: int, dry_run: bool) -> int:
    dlq = f"{prefix}{topics.dlq_topic(topic)}"
    consumer = AIOKafkaConsumer(
        dlq,
        bootstrap_servers=bootstrap,
        group_id=f"{REPLAY_GROUP}.{prefix}{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await consumer.start()
    await producer.start()
    replayed = 0
    try:
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task(f"replaying {dlq}", total=limit or None)
            while not limit or replayed < limit:
                batch = await consumer.getmany(timeout_ms=1500, max_records=500)
                records = [r for rs in batch.values() for r in rs]
                if limit:
                    records = records[: limit - replayed]
                if not records:
                    break
                if not dry_run:
                    futures = []
                    for record in records:
                        headers = [
                            (k, v) for k, v in record.headers or () if not k.startswith("x-dlq-")
                        ]
                        futures.append(
                            await producer.send(
                                f"{prefix}{topic}", record.value, key=record.key, headers=headers
                            )
                        )
                    await asyncio.gather(*futures)
                    done: dict[TopicPartition, int] = {}
                    for record in records:
                        tp = TopicPartition(record.topic, record.partition)
                        done[tp] = max(done.get(tp, 0), record.offset + 1)
                    await consumer.commit(done)
                replayed += len(records)
                progress.update(task, advance=len(records))
    finally:
        await producer.stop()
        await consumer.stop()
    return replayed


@app.command()
def replay(
    topic: str = typer.Argument(..., help="The original topic, e.g. usage.recorded."),
    limit: int = typer.Option(0, help="At most this many records (0: all)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count, do not send."),
    bootstrap: str = typer.Option(None, help="Kafka bootstrap servers."),
    prefix: str = typer.Option("", help="Topic prefix of the deployment."),
) -> None:
    """Send dead letters back to their topic (once each; consumers are idempotent)."""
    _check(topic)
    count = asyncio.run(_replay(_bootstrap(bootstrap), topic, prefix, limit, dry_run))
    verb = "would replay" if dry_run else "replayed"
    err.print(f"{verb} {count} records from {prefix}{topics.dlq_topic(topic)} to {prefix}{topic}")
