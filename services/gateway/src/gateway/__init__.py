"""Stellara Tenancy API: The public API of Stellara Tenancy."""
