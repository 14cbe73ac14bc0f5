"""tenant-svc HTTP routes (thin: parse, authorize, open the transaction, call the service)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
