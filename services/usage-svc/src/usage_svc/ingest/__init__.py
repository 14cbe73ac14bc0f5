"""Ingestion of usage.recorded: decode, classify, dedup and fold in batches."""
