"""tenant-svc HTTP routes (thin: parse, authorize, open the transaction, call the service).

The routes live with their domain (``tenants/api.py``, ``config/api.py``,
``members/api.py``, ``apikeys/api.py``); this router gathers them. Order
matters where literal segments share a position with parameters
(``/tenants/by-slug/{slug}`` before ``/tenants/{id}``,
``/config/history`` before ``/config/{key}``).
"""

from __future__ import annotations

from fastapi import APIRouter

from tenant_svc.apikeys.api import router as api_keys
from tenant_svc.config.api import router as config
from tenant_svc.members.api import router as members
from tenant_svc.tenants.api import router as tenants

router = APIRouter()
router.include_router(tenants)
router.include_router(config)
router.include_router(members)
router.include_router(api_keys)
