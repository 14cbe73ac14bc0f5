"""What a request is called in logs and metrics: its route's template, never its raw path.

Read by the request metrics (``observability``) and by the unhandled-error logging
(``problems``); it depends on neither, so neither imports the other for it.
"""

from __future__ import annotations

from fastapi import Request
from starlette.routing import Match


def route_template(request: Request) -> str:
    """The matched route's path template (``/tenants/{id}``), never the raw path."""
    route = request.scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    for candidate in request.app.router.routes:
        match, _ = candidate.matches(request.scope)
        if match == Match.FULL and hasattr(candidate, "path"):
            return str(candidate.path)
    return "unmatched"
