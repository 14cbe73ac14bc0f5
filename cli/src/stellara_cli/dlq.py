"""``stellara dlq``: read dead-lettered records and replay them to their topic.

Replaying is safe because every consumer is idempotent (inbox / dedup on the
event id): a record that was handled after all changes nothing. The original
key, value and headers go back, without the ``x-dlq-*`` headers of the dead
letter, plus ``x-dlq-replay-id`` (this run) and ``x-dlq-replay-count`` (how
often the record has been replayed); a consumer that dead-letters the record
again keeps those headers, so ``dlq show`` tells a returning record.

A replay always ends:

- it works on a snapshot: the end offsets of ``<topic>.dlq`` taken at start;
  what is dead-lettered while it runs — including what it sent itself, when
  the consumer refuses it again — is left for the next run (which sends it
  once more, at most: one run never loops);
- it remembers per reason how far earlier runs sent (a consumer group per
  reason, ``stellara-dlq-replay.<topic>.<reason>``), so each dead letter is
  sent once, and a record passed over (reason not selected) is still there
  for a later run that selects it;
- records whose reason can never succeed as they are (``PERMANENT_REASONS``)
  are skipped unless named with ``--reason`` or ``--include-permanent``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from stellara_contracts import topics

app = typer.Typer(help="Dead-letter topics: look at them, replay them.", no_args_is_help=True)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
REPLAY_GROUP = "stellara-dlq-replay"
REPLAY_ID_HEADER = "x-dlq-replay-id"
REPLAY_COUNT_HEADER = "x-dlq-replay-count"
NO_REASON = "unknown"

#: Dead-letter reasons that fail again however often the record is sent: the
#: record itself is wrong, not the moment (see ``stellara_kit.consumer`` and
#: usage-svc's ``ingest/classify.py``). Reasons not listed here — a tenant
#: not known yet, a metric not in the catalogue yet, a timestamp ahead of the
#: clock, a handler that failed — may succeed later and are replayed.
PERMANENT_REASONS: dict[str, str] = {
    "malformed": "not a valid event: the same bytes fail the same way",
    "tenant_deleted": "the tenant is deleted for good",
    "negative_value": "a counter never takes a negative value",
    "too_old": "older than the deduplication window, and only getting older",
    "missing_property": "the event lacks the property its meter counts",
    "value_out_of_range": "the value lies outside the contract's bounds",
}

Record: TypeAlias = ConsumerRecord[bytes, bytes]


def _check(topic: str) -> None:
    if topic not in topics.ALL_TOPICS:
        raise typer.BadParameter(f"unknown topic {topic!r}; one of: {', '.join(topics.ALL_TOPICS)}")


def _bootstrap(bootstrap: str | None) -> str:
    from stellara_devstack import StackConfig

    return bootstrap or StackConfig.from_env().kafka_bootstrap


def _headers(record: Record) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in record.headers or ()}


def _reason(record: Record) -> str:
    return _headers(record).get("x-dlq-reason") or NO_REASON


@dataclass
class Snapshot:
    """The partitions of a topic and the range of offsets to read in each."""

    start: dict[TopicPartition, int]
    end: dict[TopicPartition, int]

    @property
    def total(self) -> int:
        return sum(max(0, self.end[tp] - self.start[tp]) for tp in self.end)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise typer.BadParameter(f"topic {topic} does not exist (check --prefix and --bootstrap)")
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def _snapshot(
    consumer: AIOKafkaConsumer, topic: str, *, newest: int = 0, oldest: int = 0
) -> Snapshot:
    """Assign every partition of ``topic`` and seek to where reading starts.

    ``newest``: only the last n records of each partition; ``oldest``: only the first n.
    """
    tps = await _partitions(consumer, topic)
    consumer.assign(tps)
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    if oldest:
        end = {tp: min(end[tp], begin[tp] + oldest) for tp in tps}
    start = {tp: max(begin[tp], end[tp] - newest) if newest else begin[tp] for tp in tps}
    for tp in tps:
        consumer.seek(tp, start[tp])
    return Snapshot(start=start, end=end)


async def _read_snapshot(
    consumer: AIOKafkaConsumer, snapshot: Snapshot, *, batch: int = 500
) -> Any:
    """Yield lists of records up to the snapshot's end offsets, then stop."""
    pending = {tp for tp in snapshot.end if snapshot.start[tp] < snapshot.end[tp]}
    idle_rounds = 0
    while pending:
        fetched = await consumer.getmany(*pending, timeout_ms=1000, max_records=batch)
        records: list[Record] = []
        for tp, rs in fetched.items():
            records += [r for r in rs if r.offset < snapshot.end[tp]]
        for tp in list(pending):
            if await consumer.position(tp) >= snapshot.end[tp]:
                pending.discard(tp)
                consumer.pause(tp)
        idle_rounds = 0 if records else idle_rounds + 1
        if idle_rounds >= 30:
            raise RuntimeError(
                f"no records arrived for 30 s although {len(pending)} partitions are behind "
                "their end offsets; is the broker healthy?"
            )
        if records:
            yield records


# ---------------------------------------------------------------------- show
async def _show(bootstrap: str, dlq: str, limit: int, oldest_first: bool) -> list[Record]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    records: list[Record] = []
    try:
        # each partition's newest (or oldest) `limit` contain the topic's overall `limit`
        snapshot = await _snapshot(
            consumer,
            dlq,
            newest=0 if oldest_first else limit,
            oldest=limit if oldest_first else 0,
        )
        async for batch in _read_snapshot(consumer, snapshot):
            records += batch
    finally:
        await consumer.stop()
    records.sort(key=lambda r: (r.timestamp, r.partition, r.offset), reverse=not oldest_first)
    return records[:limit] if limit else records


def _row(record: Record) -> dict[str, Any]:
    headers = _headers(record)
    return {
        "partition": record.partition,
        "offset": record.offset,
        "time": datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat(),
        "reason": headers.get("x-dlq-reason"),
        "error": headers.get("x-dlq-error"),
        "original": f"{headers.get('x-dlq-original-topic')}[{headers.get('x-dlq-original-partition')}]"
        f"@{headers.get('x-dlq-original-offset')}",
        "replayed": int(headers.get(REPLAY_COUNT_HEADER) or 0),
        "value": (record.value or b"")[:300].decode(errors="replace"),
    }


@app.command()
def show(
    topic: str = typer.Argument(..., help="The original topic, e.g. usage.recorded."),
    limit: int = typer.Option(20, help="At most this many records (0: all)."),
    oldest_first: bool = typer.Option(
        False, "--oldest-first", help="The oldest dead letters first (default: the newest)."
    ),
    as_json: bool = typer.Option(False, "--json"),
    bootstrap: str = typer.Option(None, help="Kafka bootstrap servers."),
    prefix: str = typer.Option("", help="Topic prefix of the deployment."),
) -> None:
    """List the dead letters of a topic, newest first, with their reason and error."""
    _check(topic)
    dlq = f"{prefix}{topics.dlq_topic(topic)}"
    rows = [_row(r) for r in asyncio.run(_show(_bootstrap(bootstrap), dlq, limit, oldest_first))]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        err.print(f"{dlq} is empty")
    for row in rows:
        again = f" (replayed {row['replayed']}×)" if row["replayed"] else ""
        out.print(
            f"{row['time']}  {row['original']}  [bold]{row['reason']}[/]{again}: {row['error']}"
        )


# -------------------------------------------------------------------- replay
@dataclass
class ReplaySummary:
    dlq: str
    topic: str
    replay_id: str
    dry_run: bool
    considered: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    #: (reason, why) -> count
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dlq": self.dlq,
            "topic": self.topic,
            "replay_id": self.replay_id,
            "dry_run": self.dry_run,
            "considered": self.considered,
            "sent": dict(sorted(self.sent.items())),
            "sent_total": sum(self.sent.values()),
            "skipped": [
                {"reason": reason, "why": why, "count": count}
                for (reason, why), count in sorted(self.skipped.items())
            ],
            "skipped_total": sum(self.skipped.values()),
        }


@dataclass(frozen=True)
class Selection:
    """Which reasons a replay sends."""

    reasons: frozenset[str] = frozenset()
    include_permanent: bool = False

    def why_not(self, reason: str) -> str | None:
        if self.reasons:
            return None if reason in self.reasons else "not selected by --reason"
        if reason in PERMANENT_REASONS and not self.include_permanent:
            return (
                f"permanent: {PERMANENT_REASONS[reason]} "
                f"(send anyway with --reason {reason} or --include-permanent)"
            )
        return None


class ReasonPositions:
    """How far earlier replays sent each reason, per partition (a consumer group per reason)."""

    def __init__(self, bootstrap: str, group_base: str, tps: list[TopicPartition]) -> None:
        self.bootstrap = bootstrap
        self.group_base = group_base
        self.tps = tps
        self._groups: dict[str, AIOKafkaConsumer] = {}
        self._positions: dict[str, dict[TopicPartition, int]] = {}

    async def _group(self, reason: str) -> AIOKafkaConsumer:
        consumer = self._groups.get(reason)
        if consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=f"{self.group_base}.{reason}",
                enable_auto_commit=False,
            )
            await consumer.start()
            consumer.assign(self.tps)
            consumer.pause(*self.tps)  # it keeps positions only; the reader fetches
            self._groups[reason] = consumer
            self._positions[reason] = {tp: (await consumer.committed(tp)) or 0 for tp in self.tps}
        return consumer

    async def position(self, reason: str, tp: TopicPartition) -> int:
        await self._group(reason)
        return self._positions[reason][tp]

    async def advance(self, reason: str, done: dict[TopicPartition, int]) -> None:
        consumer = await self._group(reason)
        ahead = {tp: off for tp, off in done.items() if off > self._positions[reason][tp]}
        if ahead:
            await consumer.commit(ahead)
            self._positions[reason].update(ahead)

    def reasons(self) -> Iterable[str]:
        return list(self._groups)

    async def close(self) -> None:
        for consumer in self._groups.values():
            await consumer.stop()


async def _replay(
    bootstrap: str,
    topic: str,
    prefix: str,
    *,
    selection: Selection,
    limit: int,
    dry_run: bool,
    from_beginning: bool,
    show_progress: bool = True,
) -> ReplaySummary:
    dlq = f"{prefix}{topics.dlq_topic(topic)}"
    target = f"{prefix}{topic}"
    summary = ReplaySummary(dlq=dlq, topic=target, replay_id=uuid.uuid4().hex, dry_run=dry_run)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await reader.start()
    await producer.start()
    snapshot = await _snapshot(reader, dlq)
    positions = ReasonPositions(bootstrap, f"{REPLAY_GROUP}.{target}", list(snapshot.end))
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not show_progress,
    )
    try:
        with progress:
            task = progress.add_task(
                f"{'reading' if dry_run else 'replaying'} {dlq}", total=snapshot.total
            )
            async for batch in _read_snapshot(reader, snapshot):
                if limit and sum(summary.sent.values()) >= limit:
                    break
                done: dict[str, dict[TopicPartition, int]] = {}
                futures = []
                for record in batch:
                    if limit and sum(summary.sent.values()) >= limit:
                        break
                    summary.considered += 1
                    tp = TopicPartition(record.topic, record.partition)
                    reason = _reason(record)
                    headers = _headers(record)
                    why = selection.why_not(reason)
                    if why is None and headers.get(REPLAY_ID_HEADER) == summary.replay_id:
                        why = "sent by this replay and dead-lettered again"
                    if (
                        why is None
                        and not from_beginning
                        and record.offset < await positions.position(reason, tp)
                    ):
                        why = "sent by an earlier replay (again with --from-beginning)"
                    if why is not None:
                        summary.skipped[(reason, why)] += 1
                        continue
                    summary.sent[reason] += 1
                    done.setdefault(reason, {})[tp] = record.offset + 1
                    if not dry_run:
                        futures.append(await producer.send(target, **_replayed(record, summary)))
                progress.update(task, completed=summary.considered)
                if dry_run:
                    continue
                await asyncio.gather(*futures)
                for reason, offsets in done.items():
                    await positions.advance(reason, offsets)
    finally:
        await positions.close()
        await producer.stop()
        await reader.stop()
    return summary


def _replayed(record: Record, summary: ReplaySummary) -> dict[str, Any]:
    """The send arguments that put ``record`` back on its topic, marked as replayed."""
    count = int(_headers(record).get(REPLAY_COUNT_HEADER) or 0) + 1
    headers = [(k, v) for k, v in record.headers or () if not k.startswith("x-dlq-")]
    headers += [
        (REPLAY_ID_HEADER, summary.replay_id.encode()),
        (REPLAY_COUNT_HEADER, str(count).encode()),
    ]
    return {"value": record.value, "key": record.key, "headers": headers}


def _print_summary(summary: ReplaySummary) -> None:
    verb = "would replay" if summary.dry_run else "replayed"
    sent = sum(summary.sent.values())
    err.print(
        f"{verb} {sent} records from {summary.dlq} to {summary.topic} "
        f"({summary.considered} dead letters read, replay id {summary.replay_id})"
    )
    for reason, count in sorted(summary.sent.items()):
        err.print(f"  {count:>7}  {reason}")
    if summary.skipped:
        err.print(f"skipped {sum(summary.skipped.values())} records:")
        for (reason, why), count in sorted(summary.skipped.items()):
            err.print(f"  {count:>7}  {reason}: {why}")


@app.command()
def replay(
    topic: str = typer.Argument(..., help="The original topic, e.g. usage.recorded."),
    reason: list[str] = typer.Option(
        [],
        "--reason",
        help="Only dead letters with this reason (repeatable); a permanent reason named "
        "here is sent too.",
    ),
    include_permanent: bool = typer.Option(
        False,
        "--include-permanent",
        help=f"Also send reasons that never succeed as they are ({', '.join(PERMANENT_REASONS)}).",
    ),
    from_beginning: bool = typer.Option(
        False,
        "--from-beginning",
        help="Also send what earlier replays sent already (they are remembered per reason).",
    ),
    limit: int = typer.Option(0, help="At most this many records (0: all)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count, do not send."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    bootstrap: str = typer.Option(None, help="Kafka bootstrap servers."),
    prefix: str = typer.Option("", help="Topic prefix of the deployment."),
) -> None:
    """Send dead letters back to their topic: those dead-lettered before it started, once each.

    Skips reasons that never succeed (malformed, …) unless asked; ends with a summary.
    """
    _check(topic)
    summary = asyncio.run(
        _replay(
            _bootstrap(bootstrap),
            topic,
            prefix,
            selection=Selection(frozenset(reason), include_permanent),
            limit=limit,
            dry_run=dry_run,
            from_beginning=from_beginning,
        )
    )
    _print_summary(summary)
    if as_json:
        out.print_json(json.dumps(summary.as_dict()))
