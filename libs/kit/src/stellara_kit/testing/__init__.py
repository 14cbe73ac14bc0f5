"""Test support for services: real infrastructure fixtures and Kafka helpers."""

from stellara_kit.testing.app import auth_headers, running_app
from stellara_kit.testing.infra import Infrastructure, TestDatabase
from stellara_kit.testing.kafka import consume, produce_raw, wait_for

__all__ = [
    "Infrastructure",
    "TestDatabase",
    "auth_headers",
    "consume",
    "produce_raw",
    "running_app",
    "wait_for",
]
