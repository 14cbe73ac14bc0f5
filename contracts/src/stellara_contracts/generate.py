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
from stellara_contracts.binding import CLOUDEVENTS_JSON, CONTENT_TYPE_HEADER
from stellara_contracts.catalogue import (
    EVENT_CLASSES,
    MALFORMED,
    TOPIC_EVENTS,
    UNKNOWN_TYPE,
    event_type_of,
)
from stellara_contracts.envelope import NAMESPACE, UUID_PATTERN

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


#: the Kafka key of every event record (AsyncAPI Kafka message binding)
KEY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "format": "uuid",
    "pattern": UUID_PATTERN,
    "description": (
        "The tenant id (the event's `tenantid`) as UTF-8 text, 36 bytes. Partitioned with "
        "Kafka's default partitioner (murmur2 of the key, as the Java client and aiokafka do; "
        "kcat/librdkafka need `-X partitioner=murmur2_random`), so one tenant's events stay "
        "in order on one partition."
    ),
}

#: the headers of every event record: the CloudEvents Kafka binding, structured content mode
EVENT_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": (
        "CloudEvents Kafka protocol binding, structured content mode: the value is the whole "
        "event as JSON; every attribute (traceparent included) travels inside it, none as a "
        "`ce_` header. Consumers decode the value whatever the headers say."
    ),
    "properties": {
        CONTENT_TYPE_HEADER: {
            "type": "string",
            "const": CLOUDEVENTS_JSON,
            "description": "Set by every producer of the platform; send it too.",
        }
    },
    "required": [CONTENT_TYPE_HEADER],
}

#: the headers a consumer adds to a record it dead-letters (``stellara_kit.consumer.dlq_headers``)
DLQ_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "The original record's headers, kept, and these added.",
    "properties": {
        "x-dlq-reason": {
            "type": "string",
            "description": (
                f"Why: `{MALFORMED}` (not a valid event of the topic), `{UNKNOWN_TYPE}` (a "
                f"`{NAMESPACE}` type the topic does not carry), `handler_failed` (a handler "
                "kept failing); on usage.recorded.dlq also the ingester's rules: "
                "`value_out_of_range`, `unknown_tenant`, `tenant_deleted`, `unknown_metric`, "
                "`negative_value`, `future_timestamp`, `too_old`, `missing_property`."
            ),
            "examples": [MALFORMED, UNKNOWN_TYPE, "handler_failed"],
        },
        "x-dlq-error": {"type": "string", "maxLength": 4000, "description": "The error, in words."},
        "x-dlq-original-topic": {"type": "string"},
        "x-dlq-original-partition": {"type": "string", "pattern": "^[0-9]+$"},
        "x-dlq-original-offset": {"type": "string", "pattern": "^[0-9]+$"},
        "x-dlq-attempts": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "Handler attempts made (0: refused without handling).",
        },
        "x-dlq-consumer": {"type": "string", "description": "The consumer group that refused it."},
    },
    "required": [
        "x-dlq-reason",
        "x-dlq-error",
        "x-dlq-original-topic",
        "x-dlq-original-partition",
        "x-dlq-original-offset",
        "x-dlq-attempts",
        "x-dlq-consumer",
    ],
}


def asyncapi_document(*, title: str = "Stellara Tenancy events") -> dict[str, Any]:
    """An AsyncAPI 3.0 document for the whole catalogue, with its dead-letter topics."""
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
                "contentType": CLOUDEVENTS_JSON,
                "payload": {"$ref": f"#/components/schemas/{name}"},
                "headers": {"$ref": "#/components/schemas/EventHeaders"},
                "bindings": {"kafka": {"key": KEY_SCHEMA, "bindingVersion": "0.5.0"}},
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
        dlq = topics.dlq_topic(topic)
        dlq_id = dlq.replace(".", "_")
        channels[dlq_id] = {
            "address": dlq,
            "description": f"Records of {topic} its consumers refused, unchanged, with why.",
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
            "bindings": {"kafka": {"bindingVersion": "0.5.0", "topic": dlq}},
        }
        operations[f"publish_{dlq_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{dlq_id}"},
            "messages": [{"$ref": f"#/channels/{dlq_id}/messages/DeadLetter"}],
        }
    messages["DeadLetter"] = {
        "name": "dead-letter",
        "title": "DeadLetter",
        "summary": "A refused record: the original key and value, its headers and x-dlq-*.",
        "payload": {"description": "The original record's value, byte for byte."},
        "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
        "bindings": {
            "kafka": {"key": {"description": "The original key."}, "bindingVersion": "0.5.0"}
        },
    }
    schemas["EventHeaders"] = EVENT_HEADERS
    schemas["DeadLetterHeaders"] = DLQ_HEADERS
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": "1.0.0",
            "description": (
                "CloudEvents 1.0 on Kafka, structured content mode: the value is the event as "
                f"JSON, header `{CONTENT_TYPE_HEADER}: {CLOUDEVENTS_JSON}`, key = tenant id "
                "(murmur2, Kafka's default partitioner). A type outside the "
                f"`{NAMESPACE}` namespace is ignored; a `{NAMESPACE}` type a topic does not "
                f"carry goes to <topic>.dlq (`{UNKNOWN_TYPE}`), as does a record that is no "
                f"valid event (`{MALFORMED}`)."
            ),
        },
        "defaultContentType": CLOUDEVENTS_JSON,
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
