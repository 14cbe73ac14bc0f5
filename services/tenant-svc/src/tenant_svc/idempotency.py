"""``Idempotency-Key`` on writes: the first response is remembered and replayed.

The key is claimed in the same transaction as the write it guards, so the
remembered response exists if and only if the write committed. A second
request with the same key waits on the first one's row lock; once it
committed, the second gets the stored response (marked
``Idempotent-Replayed: true``). The same key with a different request
(method, path or body) is a 422. A write that failed stored nothing, so
retrying it runs it again. Keys are remembered per caller for
``idempotency_retention_hours``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request, Response
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from stellara_kit.auth import Principal
from tenant_svc.errors import BadIdempotencyKey, IdempotencyMismatch
from tenant_svc.models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 200
#: response headers worth replaying
KEPT_HEADERS = ("etag", "location", "content-type")


#: OpenAPI of the header on a replayed answer
REPLAYED_RESPONSE_HEADER: dict[str, Any] = {
    "description": "`true` when this is the remembered answer to an earlier request with "
    "the same `Idempotency-Key` (nothing was done again).",
    "schema": {"type": "string", "enum": ["true"]},
}


def document_replays(document: dict[str, Any]) -> dict[str, Any]:
    """Every success of a route that takes ``Idempotency-Key`` may be a replay: say so."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            takes_key = any(
                p.get("in") == "header" and p.get("name") == HEADER
                for p in operation.get("parameters", [])
            )
            if not takes_key:
                continue
            for code, response in operation.get("responses", {}).items():
                if code.startswith("2"):
                    response.setdefault("headers", {})[REPLAYED_HEADER] = REPLAYED_RESPONSE_HEADER
    return document


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests "the same": method, path and body (JSON compared by value)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def caller_scope(principal: Principal) -> str:
    return f"{principal.role}|{principal.tenant_id or '-'}|{principal.subject}"


class IdempotencyStore:
    def __init__(self, *, retention: timedelta) -> None:
        self.retention = retention

    async def claim(
        self, session: AsyncSession, scope: str, key: str, print_: str
    ) -> IdempotencyRecord | None:
        """Claim ``key`` for this request; the stored record when it was used before."""
        cutoff = datetime.now(UTC) - self.retention
        await session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.scope == scope,
                IdempotencyRecord.key == key,
                IdempotencyRecord.created_at < cutoff,
            )
        )
        claimed = await session.execute(
            insert(IdempotencyRecord)
            .values(scope=scope, key=key, fingerprint=print_, headers={})
            .on_conflict_do_nothing()
            .returning(IdempotencyRecord.key)
        )
        if claimed.first() is not None:
            return None
        record = (
            await session.execute(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
                )
            )
        ).scalar_one()
        if record.fingerprint != print_:
            raise IdempotencyMismatch(
                f"This {HEADER} was used for a different request; use a new key for a new request.",
                idempotency_key=key,
            )
        return record

    async def remember(
        self, session: AsyncSession, scope: str, key: str, response: Response
    ) -> None:
        headers = {k: v for k, v in response.headers.items() if k.lower() in KEPT_HEADERS}
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
            .values(status=response.status_code, body=bytes(response.body), headers=headers)
        )

    async def purge_expired(self, session: AsyncSession) -> int:
        cutoff = datetime.now(UTC) - self.retention
        result = await session.execute(
            delete(IdempotencyRecord)
            .where(IdempotencyRecord.created_at < cutoff)
            .returning(IdempotencyRecord.key)
        )
        return len(result.all())


def replay(record: IdempotencyRecord) -> Response:
    headers = dict(record.headers or {})
    headers[REPLAYED_HEADER] = "true"
    body = record.body if record.status != 204 else None
    return Response(content=body, status_code=record.status or 200, headers=headers)


async def idempotent(
    store: IdempotencyStore,
    session: AsyncSession,
    request: Request,
    principal: Principal,
    produce: Callable[[], Awaitable[Response]],
    *,
    replay_as: Callable[[Response], Response] | None = None,
) -> Response:
    """Run ``produce`` once per ``Idempotency-Key`` (when the request carries one).

    ``replay_as`` turns the response into what a replay gets, for responses that
    must not be stored (a secret shown once).
    """
    key = request.headers.get(HEADER)
    if key is None:
        return await produce()
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise BadIdempotencyKey(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters (a UUID is a good key)."
        )
    scope = caller_scope(principal)
    stored = await store.claim(
        session, scope, key, fingerprint(request.method, request.url.path, await request.body())
    )
    if stored is not None:
        return replay(stored)
    response = await produce()
    await store.remember(session, scope, key, replay_as(response) if replay_as else response)
    return response
