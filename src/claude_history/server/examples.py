"""Examples for the OpenAPI page at ``/docs``: what the main endpoints take and answer, as data.

The proxy's routes read their body themselves (it is forwarded as the client sent it), so their request
schema is declared here too; the sessions API's bodies are pydantic models and get their examples there."""

from __future__ import annotations

from typing import Any

__all__ = ["MESSAGES_OPENAPI", "responses"]

_SESSION = {
    "id": "user-42",
    "version": 2,
    "message_count": 4,
    "title": "Trip to Lisbon",
    "tags": ["travel"],
    "metadata": {"plan": "pro"},
    "model": "claude-sonnet-4-6",
    "system": "You are concise.",
    "created_at": "2026-12-01T09:30:00+00:00",
    "updated_at": "2026-12-01T09:31:12+00:00",
    "expires_at": None,
}

_REPLY = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [{"type": "text", "text": "About 550,000 people live in Lisbon itself."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "output_tokens": 14,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1088,
    },
}

_ERROR_409 = {
    "type": "error",
    "error": {"type": "conflict_error", "message": "session 'user-42' is at version 3, not 2"},
}

_USAGE = {
    "usage": {
        "input_tokens": 40,
        "output_tokens": 310,
        "cache_creation_input_tokens": 1200,
        "cache_read_input_tokens": 5400,
    },
    "cost_usd": 0.01236,
    "cost_complete": True,
}

EXAMPLES: dict[str, Any] = {
    "reply": _REPLY,
    "session": _SESSION,
    "sessions": {
        "data": [_SESSION],
        "has_more": True,
        "next_cursor": "eyJ1IjoxNzY0NTgxNDcyMDAwMDAwLCJpIjoidXNlci00MiJ9",
    },
    "messages": {
        "data": [
            {
                "seq": 0,
                "role": "user",
                "content": "What is the population of Lisbon?",
                "model": None,
                "usage": None,
                "created_at": "2026-12-01T09:31:10+00:00",
            },
            {
                "seq": 1,
                **{k: _REPLY[k] for k in ("role", "content", "model", "usage")},
                "created_at": "2026-12-01T09:31:12+00:00",
            },
        ],
        "version": 2,
        "has_more": True,
        "next_cursor": "eyJzIjoyfQ",
    },
    "session_usage": _USAGE,
    "tenant_usage": {
        **_USAGE,
        "sessions": 12,
        "passthrough": {
            "usage": {
                "input_tokens": 20,
                "output_tokens": 90,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
            "cost_usd": 0.00141,
            "cost_complete": True,
            "requests": 3,
        },
    },
    "search": {
        "data": [
            {
                "session_id": "user-42",
                "seq": 1,
                "role": "assistant",
                "snippet": "About 550,000 people live in **Lisbon** itself.",
            }
        ]
    },
    "conflict": _ERROR_409,
    "not_found": {"type": "error", "error": {"type": "not_found_error", "message": "no session 'user-43'"}},
}


def responses(ok: str, *, status: int = 200, conflict: bool = False, not_found: bool = True) -> dict[int | str, Any]:
    """The ``responses=`` of a route: its success example and the errors it can answer with."""
    out: dict[int | str, Any] = {status: {"content": {"application/json": {"example": EXAMPLES[ok]}}}}
    if not_found:
        out[404] = {
            "description": "No such session for this tenant (another tenant's is a 404 too).",
            "content": {"application/json": {"example": EXAMPLES["not_found"]}},
        }
    if conflict:
        out[409] = {
            "description": "Another request changed the session first, or x-session-version differs.",
            "content": {"application/json": {"example": EXAMPLES["conflict"]}},
        }
    return out


_HEADERS = [
    {
        "name": "x-session-id",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "example": "user-42",
        "description": "The session this request continues: send only the new message; the service adds the "
        "stored history. Without it the request passes through unchanged.",
    },
    {
        "name": "x-session-version",
        "in": "header",
        "required": False,
        "schema": {"type": "integer"},
        "example": 2,
        "description": "Compare-and-swap: 409 unless the session is at this version.",
    },
]

MESSAGES_OPENAPI: dict[str, Any] = {
    "parameters": _HEADERS,
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "max_tokens", "messages"],
                    "description": "The Messages API request (every field of the API is accepted and forwarded).",
                    "properties": {
                        "model": {"type": "string"},
                        "max_tokens": {"type": "integer", "minimum": 1},
                        "messages": {"type": "array", "items": {"type": "object"}},
                        "system": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
                        "tools": {"type": "array", "items": {"type": "object"}},
                        "stream": {"type": "boolean"},
                    },
                },
                "examples": {
                    "new message only": {
                        "summary": "With x-session-id: only the new user message",
                        "value": {
                            "model": "claude-sonnet-4-6",
                            "max_tokens": 1024,
                            "messages": [{"role": "user", "content": "And its population?"}],
                        },
                    },
                    "tool result": {
                        "summary": "With x-session-id: the results of the tools the last reply asked for",
                        "value": {
                            "model": "claude-sonnet-4-6",
                            "max_tokens": 1024,
                            "messages": [
                                {
                                    "role": "user",
                                    "content": [
                                        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "21 C, sunny"}
                                    ],
                                }
                            ],
                        },
                    },
                },
            }
        },
    },
}
