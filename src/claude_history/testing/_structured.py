"""Structured outputs: a default reply whose text is JSON matching the requested schema.

``output_config.format`` (``{"type": "json_schema", "schema": {...}}``; the SDK's ``messages.parse()`` and
``stream(output_format=...)`` send it, anthropic 2.17.0 ``OutputConfigParam`` / ``JSONOutputFormatParam``)
asks for a reply whose text is one JSON document valid against the schema ("Structured outputs",
platform.claude.com/docs/en/build-with-claude/structured-outputs). The simulator writes the value
:func:`from_schema` builds, so the same request always parses to the same object. The older beta top-level
``output_format`` is read alike.
"""

from __future__ import annotations

import json
from typing import Any

from ._common import bad_request
from ._tool_pick import from_schema

__all__ = ["output_schema", "structured_text"]


def output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a request asks its reply to match, or ``None``."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    path = "output_config.format"
    if fmt is None and body.get("output_format") is not None:
        fmt, path = body["output_format"], "output_format"
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise bad_request(f"{path}.type: Input should be 'json_schema'")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise bad_request(
            f"{path}.schema: Field required" if schema is None else f"{path}.schema: Input should be a valid dictionary"
        )
    return schema


def structured_text(schema: dict[str, Any]) -> str:
    """The reply text for ``schema``: a JSON value that fits it."""
    return json.dumps(from_schema(schema), ensure_ascii=False)
