"""``stellara events tail [topic]``: events as they flow, decoded and readable."""

from __future__ import annotations

import asyncio
import contextlib
import json

import typer
from aiokafka import AIOKafkaConsumer
from rich.console import Console

from stellara_contracts import EventDecodeError, UnknownEvent, decode_event, topics

app = typer.Typer(help="Look at the events flowing through Kafka.", no_args_is_help=True)
out = Console(highlight=False)


def describe(topic: str, value: bytes | None, headers: list[tuple[str, bytes]]) -> str:
    """One readable line for a record of ``topic`` (a logical topic name or its .dlq)."""
    if topic.endswith(topics.DLQ_SUFFIX):
        meta = {k: v.decode(errors="replace") for k, v in headers}
        reason = meta.get("x-dlq-reason", "?")
        error = meta.get("x-dlq-error", "")
        return f"[red]{topic}[/]  dead letter ({reason}): {error[:160]}"
    try:
        event = decode_event(topic, value or b"")
    except EventDecodeError as exc:
        return f"[red]{topic}[/]  undecodable record: {exc}"
    if isinstance(event, UnknownEvent):
        return f"{topic}  {event.type} (unknown type) tenant {event.tenantid}"
    data = event.data.model_dump(mode="json", exclude={"tenant_id"})
    summary = json.dumps(data, separators=(",", ":"), default=str)
    if len(summary) > 200:
        summary = summary[:197] + "..."
    short_type = event.type.removeprefix("stellara.")
    return (
        f"{event.time:%H:%M:%S} [cyan]{topic}[/] [bold]{short_type}[/] "
        f"tenant {str(event.tenantid)[:8]}  {summary}"
    )


async def _tail(
    bootstrap: str, names: list[str], prefix: str, from_beginning: bool, limit: int
) -> None:
    consumer = AIOKafkaConsumer(
        *[f"{prefix}{n}" for n in names],
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    shown = 0
    try:
        async for record in consumer:
            logical = record.topic.removeprefix(prefix)
            out.print(describe(logical, record.value, list(record.headers or ())))
            shown += 1
            if limit and shown >= limit:
                return
    finally:
        await consumer.stop()


@app.command()
def tail(
    topic: str = typer.Argument(None, help="A topic (e.g. tenant.events); all topics if omitted."),
    from_beginning: bool = typer.Option(
        False, "--from-beginning", help="Start at the oldest record."
    ),
    limit: int = typer.Option(0, "--limit", help="Stop after this many records (0: never)."),
    bootstrap: str = typer.Option(None, "--bootstrap", help="Kafka bootstrap servers."),
    prefix: str = typer.Option("", "--prefix", help="Topic prefix of the deployment."),
) -> None:
    """Print events as they flow, decoded and readable (Ctrl-C to stop)."""
    from stellara_devstack import StackConfig

    names = [topic] if topic else [n for t in topics.ALL_TOPICS for n in (t, topics.dlq_topic(t))]
    known = {n for t in topics.ALL_TOPICS for n in (t, topics.dlq_topic(t))}
    if topic and topic not in known:
        raise typer.BadParameter(f"unknown topic {topic!r}; one of: {', '.join(sorted(known))}")
    server = bootstrap or StackConfig.from_env().kafka_bootstrap
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(server, names, prefix, from_beginning, limit))
