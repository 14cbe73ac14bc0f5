"""What the gateway's routes share: its parts, built once in ``create_app``.

The gateway's parts are its request pipeline (:class:`gateway.service.Gateway`:
authentication, tenancy, rate limits, the downstream services); every route
hands its request to it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.service import Gateway


def parts_of(request: Request) -> Gateway:
    parts: Gateway = request.app.state.parts
    return parts


#: ``parts: Parts`` in a route signature
Parts = Annotated[Gateway, Depends(parts_of)]
