"""Refuses, before any route runs, request input that PostgreSQL or JSON peers cannot take.

Python's ``json`` reads ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON at all)
and turns ``1e999`` into ``inf``; PostgreSQL's ``jsonb`` refuses all of them.
A ``\\u0000`` escape gives a string PostgreSQL ``text`` and ``jsonb`` refuse, and a
lone surrogate escape (``\\ud800``) a string no UTF-8 encoder writes. Left to
the database, each of these is a 500; here each is a 422 problem naming where
it was found (``body.metadata.note``, ``query.q``, ``header.idempotency-key``,
``path.key``), in the shape of a request validation error. Bodies past
``max_body_bytes`` are a 413 before they are read whole.

The check costs nearly nothing on ordinary requests: a body is parsed here only
when its raw bytes hold one of the tell-tale spellings, and URLs and headers
are scanned for NUL as bytes.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stellara_kit.problems import Problem, Unprocessable, problem_response

#: raw spellings after which a JSON body is parsed and walked: the non-finite constants,
#: escapes (``\\u0000``, surrogates), and numbers long or exponent-heavy enough to overflow a
#: double (plain substring searches first: they are several times faster than a regex)
_SUSPECT_SPELLINGS = (b"NaN", b"Infinity", b"\\u")
_BIG_EXPONENT = re.compile(rb"[0-9][eE][+-]?[0-9]{3}")
_LONG_DIGITS = re.compile(rb"[0-9]{300}")


def _suspect(body: bytes) -> bool:
    return (
        any(spelling in body for spelling in _SUSPECT_SPELLINGS)
        or _BIG_EXPONENT.search(body) is not None
        or _LONG_DIGITS.search(body) is not None
    )


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class _NotFinite:
    """What the parser makes of ``NaN``, ``Infinity``, ``-Infinity`` and overflowing numbers."""

    def __init__(self, spelling: str) -> None:
        self.spelling = spelling


def _parse_float(spelling: str) -> float | _NotFinite:
    value = float(spelling)
    return _NotFinite(spelling) if math.isinf(value) else value


def unstorable(value: str) -> str | None:
    """Why PostgreSQL cannot store ``value`` as text (None: it can)."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000), which cannot be stored"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone UTF-16 surrogate, which is not a character"
    return None


def _location(parts: list[str | int]) -> str:
    return ".".join(str(p) for p in parts)


def hostile_json(body: bytes) -> list[dict[str, str]]:
    """Every value or key of a JSON document that cannot be stored, as validation errors.

    A body that is not JSON at all gives none: the route's own parsing reports it.
    """
    # json.loads reads UTF-16 and UTF-32 too, whose first four bytes always hold a zero
    # byte; the raw spellings are only searched for in UTF-8
    if b"\x00" not in body[:4] and not _suspect(body):
        return []
    try:
        document = json.loads(body, parse_constant=_NotFinite, parse_float=_parse_float)
    except (ValueError, RecursionError):
        return []
    errors: list[dict[str, str]] = []
    stack: list[tuple[list[str | int], Any]] = [(["body"], document)]
    while stack and len(errors) < 20:
        where, value = stack.pop()
        if isinstance(value, _NotFinite):
            errors.append(
                {
                    "location": _location(where),
                    "message": f"{value.spelling} is not a finite number",
                    "type": "finite_number",
                }
            )
        elif isinstance(value, str):
            reason = unstorable(value)
            if reason:
                errors.append({"location": _location(where), "message": reason, "type": "string"})
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                reason = unstorable(key)
                if reason:
                    errors.append(
                        {"location": _location(where), "message": f"a key {reason}", "type": "key"}
                    )
                stack.append(([*where, key], item))
        elif isinstance(value, list):
            stack.extend(([*where, i], item) for i, item in reversed(list(enumerate(value))))
    return errors


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # FastAPI reads a body without a content type as JSON
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _path_errors(scope: Scope) -> list[dict[str, str]]:
    """NUL in the path, named by the path parameter of the documented operation it is in."""
    path: str = scope.get("path", "")
    if "\x00" not in path:
        return []
    app = scope.get("app")
    openapi = getattr(app, "openapi", None)
    templates = list(openapi().get("paths", {})) if callable(openapi) else []
    for template in templates:
        pattern, _, _ = compile_path(template)
        match = pattern.match(path)
        if match:
            names = [n for n, v in match.groupdict().items() if "\x00" in v]
            return [
                {"location": f"path.{n}", "message": _NUL_MESSAGE, "type": "string"} for n in names
            ]
    return [{"location": "path", "message": _NUL_MESSAGE, "type": "string"}]


_NUL_MESSAGE = "contains a NUL character, which cannot be stored"


def url_and_header_errors(scope: Scope) -> list[dict[str, str]]:
    """NUL characters in the path, query parameters (names or values) and header values."""
    errors = _path_errors(scope)
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                label = name.replace("\x00", "\\u0000")
                errors.append(
                    {"location": f"query.{label}", "message": _NUL_MESSAGE, "type": "string"}
                )
        if not errors:
            errors.append({"location": "query", "message": _NUL_MESSAGE, "type": "string"})
    for name, value in scope.get("headers", ()):
        if b"\x00" in value:
            errors.append(
                {
                    "location": f"header.{name.decode('latin-1').lower()}",
                    "message": _NUL_MESSAGE,
                    "type": "string",
                }
            )
    return errors


def refusal(errors: list[dict[str, str]]) -> Unprocessable:
    """The 422 a request validation error gets (same slug, title and ``errors`` shape)."""
    return Unprocessable(
        "The request does not match the schema: "
        + "; ".join(f"{e['location']}: {e['message']}" for e in errors[:3]),
        slug="validation-error",
        title="Invalid request",
        errors=errors,
    )


class StrictInputMiddleware:
    """Refuses NUL in URLs and headers, unstorable JSON values, and oversized bodies.

    ``check_bodies=False`` leaves bodies to the app (the gateway streams them on to the
    service that owns the route, which checks them).
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, check_bodies: bool = True) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.check_bodies = check_bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        errors = url_and_header_errors(scope)
        if errors:
            await self._refuse(refusal(errors), scope, receive, send)
            return
        if not self.check_bodies or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        content_type = headers.get(b"content-type")
        if not _is_json(content_type.decode("latin-1") if content_type else None):
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(self._too_large(), scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                # the client went away: nothing to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._refuse(self._too_large(), scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        errors = hostile_json(body)
        if errors:
            await self._refuse(refusal(errors), scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The body may be at most {self.max_body_bytes} bytes.", max_bytes=self.max_body_bytes
        )

    async def _refuse(self, problem: Problem, scope: Scope, receive: Receive, send: Send) -> None:
        await problem_response(problem, Request(scope, receive))(scope, receive, send)
