"""Generate the checked-in artefacts: one JSON Schema per event type and an AsyncAPI document.

Run ``make contracts`` (``python -m stellara_contracts.generate``) after
changing an event; a test fails while the artefacts and the code differ.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from stellara_contracts import topics
from stellara_contracts.catalogue import EVENT_CLASSES, TOPIC_EVENTS, event_type_of

ARTEFACTS = Path(__file__).resolve().parents[2] / "schemas"


def event_schemas() -> dict[str, dict[str, Any]]:
    """``{event type: JSON Schema}`` of every envelope class."""
    out: dict[str, dict[str, Any]] = {}
    for cls in EVENT_CLASSES:
        schema = cls.model_json_schema(mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:stellara:event:{event_type_of(cls)}"
        out[event_type_of(cls)] = schema
    return out


def asyncapi_document(*, title: str = "Stellara Tenancy events") -> dict[str, Any]:
    """An AsyncAPI 3.0 document for the whole catalogue."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for topic in topics.ALL_TOPICS:
        channel_id = topic.replace(".", "_")
        channel_messages: dict[str, Any] = {}
        for cls in TOPIC_EVENTS[topic]:
            name = cls.__name__
            schema = cls.model_json_schema(
                mode="serialization", ref_template="#/components/schemas/{model}"
            )
            for def_name, definition in schema.pop("$defs", {}).items():
                schemas[def_name] = definition
            schemas[name] = schema
            messages[name] = {
                "name": event_type_of(cls),
                "title": name.removesuffix("Event"),
                "summary": (cls.model_fields["data"].annotation.__doc__ or "").strip(),
                "contentType": "application/cloudevents+json",
                "payload": {"$ref": f"#/components/schemas/{name}"},
                "headers": {"type": "object"},
                "bindings": {
                    "kafka": {
                        "key": {"type": "string", "format": "uuid"},
                        "bindingVersion": "0.5.0",
                    }
                },
            }
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
        bindings: dict[str, Any] = {"bindingVersion": "0.5.0", "topic": topic}
        if topic in topics.COMPACTED_TOPICS:
            bindings["topicConfiguration"] = {"cleanup.policy": ["compact"]}
        channels[channel_id] = {
            "address": topic,
            "messages": channel_messages,
            "bindings": {"kafka": bindings},
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [
                {"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in channel_messages
            ],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": "1.0.0",
            "description": (
                "CloudEvents 1.0 (structured JSON) on Kafka. Key = tenant id. "
                "Consumers ignore unknown types; undecodable records go to <topic>.dlq."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render() -> dict[Path, str]:
    """Every artefact path with its expected content."""
    files: dict[Path, str] = {}
    for event_type, schema in event_schemas().items():
        files[ARTEFACTS / "events" / f"{event_type}.json"] = _dump(schema)
    files[ARTEFACTS / "asyncapi.json"] = _dump(asyncapi_document())
    return files


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main() -> int:
    files = render()
    events_dir = ARTEFACTS / "events"
    events_dir.mkdir(parents=True, exist_ok=True)
    for stale in events_dir.glob("*.json"):
        if stale not in files:
            stale.unlink()
    for path, content in files.items():
        path.write_text(content)
    print(f"wrote {len(files)} artefacts under {ARTEFACTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
