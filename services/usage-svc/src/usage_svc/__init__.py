"""Stellara usage-svc: Usage metering: ingestion with exact dedup, aggregates, queries, quotas and billing figures."""
