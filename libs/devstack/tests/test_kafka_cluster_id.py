"""The KRaft cluster id the stack formats Kafka's storage with."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import pytest

from stellara_devstack import kafka


def _decode(cluster_id: str) -> bytes:
    return base64.urlsafe_b64decode(cluster_id + "==")


def test_an_id_the_storage_tool_would_read_as_an_option_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 0xF8 as the first byte encodes to "-" in base64url: the storage tool's
    # parser took "-t -…" for a missing argument and refused to format.
    dashed = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))
    plain = uuid.UUID(bytes=bytes([0x10]) + bytes(range(15)))
    draws: Iterator[uuid.UUID] = iter([dashed, plain])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))
    assert base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")

    cluster_id = kafka._kafka_cluster_id()

    assert not cluster_id.startswith("-")
    assert _decode(cluster_id) == plain.bytes


def test_ids_are_22_base64url_characters_of_a_random_uuid() -> None:
    ids = {kafka._kafka_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    for cluster_id in ids:
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert len(_decode(cluster_id)) == 16
