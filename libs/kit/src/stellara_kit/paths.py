"""Request paths that two parts of the system could read differently are refused before routing.

A router matches the path as received (``/tenants/T/members/..`` matches
``/tenants/{id}/members/{user_id}``), while URL libraries, proxies and
servers further on may normalise it (``/tenants/T``): one route would be
authorized and another one served. So every app refuses, with 400
``bad-path`` problem+json and before any route is matched, a path with

- a dot segment, ``.`` or ``..``;
- an empty segment (``//``, or a trailing ``/`` after the root);
- a percent-encoded dot, slash, backslash or percent sign (``%2e``, ``%2f``,
  ``%5c``, ``%25`` in either case: none of them is needed in any of our
  paths, and ``%25`` is how double encoding such as ``%252e`` starts);
- a backslash, or a control character (raw or encoded, ``%00``–``%1f``, ``%7f``).

The refusal does not echo the path (it may carry a secret, such as an
invitation token).
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from stellara_kit.problems import PROBLEM_BASE, PROBLEM_JSON

_ENCODED = re.compile(r"%(2e|2f|5c|25)", re.IGNORECASE)
_ENCODED_CONTROL = re.compile(r"%(0[0-9a-f]|1[0-9a-f]|7f)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAMES = {"2e": "dot", "2f": "slash", "5c": "backslash", "25": "percent sign"}


def path_refusal(path: str) -> str | None:
    """Why ``path`` (as received: percent-encoding intact) is refused, or None when it is fine."""
    if not path.startswith("/"):
        return "The request path must start with `/`."
    if path == "/":
        return None
    if "\\" in path:
        return "The request path holds a backslash; send it without."
    if _CONTROL.search(path) or _ENCODED_CONTROL.search(path):
        return "The request path holds a control character; send it without."
    encoded = _ENCODED.search(path)
    if encoded:
        name = _NAMES[encoded.group(1).lower()]
        return (
            f"The request path holds a percent-encoded {name} (`{encoded.group(0)}`); "
            "paths take none: send the path without it."
        )
    for segment in path[1:].split("/"):
        if segment == "":
            return "The request path has an empty segment (`//` or a trailing `/`); remove it."
        if segment in (".", ".."):
            return "The request path has a dot segment (`.` or `..`); send the path without it."
    return None


class PathGuardMiddleware:
    """Refuse ambiguous request paths (see the module docstring) before the app routes them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path")
            path = raw.decode("latin-1") if raw else scope.get("path", "")
            refusal = path_refusal(path)
            if refusal is not None:
                await _refuse(send, refusal)
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, detail: str) -> None:
    body = json.dumps(
        {
            "type": f"{PROBLEM_BASE}bad-path",
            "title": "Bad request path",
            "status": 400,
            "detail": detail,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


#: what one path parameter may hold for the guard to let the path through (for OpenAPI): not
#: ``.`` or ``..``, and no slash, backslash, percent sign or control character
PATH_PARAMETER_PATTERN = r"^(?!\.\.?$)[^/\\%\u0000-\u001f\u007f]+$"


def document_path_rules(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document says what the guard refuses: a path parameter without a stricter
    rule of its own gets :data:`PATH_PARAMETER_PATTERN`, and its operation the 400."""
    from stellara_kit.problems import problem_responses

    for item in document.get("paths", {}).values():
        for operation in item.values():
            parameters = [p for p in operation.get("parameters", []) if p.get("in") == "path"]
            for parameter in parameters:
                schema = parameter.setdefault("schema", {"type": "string"})
                if not {"pattern", "format", "enum", "const"} & set(schema):
                    schema["pattern"] = PATH_PARAMETER_PATTERN
            if parameters and "responses" in operation:
                operation["responses"].setdefault("400", problem_responses(400)[400])
    return document
