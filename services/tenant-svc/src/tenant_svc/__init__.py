"""Stellara tenant-svc: Tenants and their lifecycle, configuration, members and API keys."""
