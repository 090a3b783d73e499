"""``GET /v1/models`` and ``GET /v1/models/{id}`` from the one model table (``claude_history.models``).

Shape from the SDK's ``ModelInfo`` and ``ModelListParams`` (anthropic/types/model_info.py, model_list_params.py):
newest first; ``limit`` 1-1000 (default 20); ``after_id`` / ``before_id`` cursors; ``has_more``, ``first_id``,
``last_id``; ``lifecycle`` filter (default: active and deprecated). A model with a dated snapshot is listed under
that id, and its alias retrieves it (models overview, "Model IDs and versioning"). Deprecated models are the ones
the SDK warns about (``anthropic._data.deprecated_models``). Pure: the server only routes here (and may wrap the
call, e.g. with an API-key check).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from claude_history.models import MODELS, ModelInfo, model_info

from ._common import ApiError, bad_request

__all__ = ["get_model", "list_models"]

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
LIFECYCLES = ("active", "deprecated", "retired")


def _deprecated() -> Mapping[str, str]:
    try:
        from anthropic._data.deprecated_models import DEPRECATED_MODELS
    except ImportError:  # a private module: an SDK without it has no deprecations to report
        return {}
    return DEPRECATED_MODELS


def _lifecycle(info: ModelInfo) -> str:
    deprecated = _deprecated()
    return "deprecated" if info.name in deprecated or info.dated_id in deprecated else "active"


def model_json(info: ModelInfo) -> dict[str, Any]:
    """One model as the API describes it (the SDK's ``ModelInfo``)."""
    return {
        "type": "model",
        "id": info.dated_id or info.name,
        "display_name": info.display_name,
        "created_at": info.created_at,
        "lifecycle": _lifecycle(info),
        "max_input_tokens": info.context_window,
        "max_tokens": info.max_output_tokens,
        "deprecated_at": None,  # not modelled: the SDK gives the end-of-life date, not the deprecation date
        "retires_at": None,
    }


def get_model(model_id: str) -> dict[str, Any]:
    info = model_info(model_id)
    if info is None:
        raise ApiError(404, f"model: {model_id}", "not_found_error")
    return model_json(info)


def list_models(query: str) -> dict[str, Any]:
    """One page of the model list for the URL query string ``query``."""
    params = parse_qs(query, keep_blank_values=True)
    limit = _limit(params.get("limit", [str(DEFAULT_LIMIT)])[-1])
    wanted = params.get("lifecycle[]", []) + params.get("lifecycle", [])
    for value in wanted:
        if value not in LIFECYCLES:
            raise bad_request("lifecycle: Input should be 'active', 'deprecated' or 'retired'")
    lifecycles = set(wanted or ("active", "deprecated"))
    rows = [model_json(info) for info in MODELS.values()]
    rows = [row for row in rows if row["lifecycle"] in lifecycles]
    ids = [row["id"] for row in rows]
    after = params.get("after_id", [None])[-1]
    before = params.get("before_id", [None])[-1]
    if before is not None:
        end = _position(ids, before, "before_id")
        page = rows[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        start = _position(ids, after, "after_id") + 1 if after is not None else 0
        page = rows[start : start + limit]
        has_more = start + limit < len(rows)
    return {
        "data": page,
        "has_more": has_more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }


def _limit(text: str) -> int:
    try:
        limit = int(text)
    except ValueError:
        raise bad_request("limit: Input should be a valid integer, unable to parse string as an integer") from None
    if limit < 1:
        raise bad_request("limit: Input should be greater than or equal to 1")
    if limit > MAX_LIMIT:
        raise bad_request(f"limit: Input should be less than or equal to {MAX_LIMIT}")
    return limit


def _position(ids: list[str], cursor: str, name: str) -> int:
    info = model_info(cursor)
    canonical = (info.dated_id or info.name) if info is not None else cursor
    if canonical not in ids:
        raise bad_request(f"{name}: no model with id '{cursor}' in this list")
    return ids.index(canonical)
