"""Test support for services: real infrastructure fixtures and Kafka helpers."""

from stellara_kit.testing.app import RawAnswer, auth_headers, raw_request, running_app
from stellara_kit.testing.infra import Infrastructure, TestDatabase
from stellara_kit.testing.kafka import consume, produce_raw, wait_for

__all__ = [
    "Infrastructure",
    "RawAnswer",
    "TestDatabase",
    "auth_headers",
    "consume",
    "produce_raw",
    "raw_request",
    "running_app",
    "wait_for",
]
