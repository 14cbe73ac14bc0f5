"""gateway Kafka subscribers (thin: decode, open the transaction, call the service)."""

from __future__ import annotations

from stellara_kit.runtime import ServiceRuntime


def register(runtime: ServiceRuntime) -> None:
    """Subscribe this service's handlers on the runtime's broker."""
