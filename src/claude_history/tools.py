"""Python functions as tools: their definitions for the API, and their results as ``tool_result`` blocks.

A function's ``input_schema`` comes from its type hints and docstring through the SDK's own ``beta_tool`` (the
same schema the SDK's tool runner would send), and calls are validated against the signature. Explicit tool
dicts can be paired with functions through ``tool_functions={"name": fn}``; those are called as
``fn(**input)``.

Results: a string is sent as it is; a list of content blocks (text, image, document, search_result) as blocks;
``None`` or an empty string as a tool_result without content; anything else as JSON. An exception becomes an
``is_error`` tool_result (``"ValueError: ..."``) so the model can react, unless the chat was made with
``tool_errors="raise"``; ``anthropic.lib.tools.ToolError(content)`` sets the error content exactly.
``BaseException`` that is not an ``Exception`` (KeyboardInterrupt, cancellation) always propagates.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ConfigurationError

__all__ = ["ToolErrors", "ToolSet", "error_result", "tool_result"]

ToolErrors = Literal["report", "raise"]

_BLOCK_TYPES = frozenset({"text", "image", "document", "search_result"})


def _sdk_tools() -> Any:
    from anthropic.lib import tools

    return tools


def _dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_unset=True, by_alias=True)
    return value


@dataclass(frozen=True)
class _Runnable:
    """One callable tool: either an SDK function tool (validated call) or a plain ``fn(**input)``."""

    name: str
    call: Callable[..., Any]
    is_async: bool


@dataclass(frozen=True)
class ToolSet:
    """The tool definitions sent with each request and the functions that answer them locally."""

    params: tuple[dict[str, Any], ...] = ()
    runnables: Mapping[str, _Runnable] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        tools: Iterable[Any] | None = None,
        tool_functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> ToolSet:
        """From a mix of tool dicts, plain functions and SDK ``beta_tool`` objects."""
        if tools is not None and (isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Iterable)):
            raise ConfigurationError(
                f"tools= must be a list of tool dicts or functions, got {type(tools).__name__}"
                + (" (put a single tool in a list: tools=[tool])" if isinstance(tools, Mapping) else "")
            )
        sdk = _sdk_tools()
        params: list[dict[str, Any]] = []
        runnables: dict[str, _Runnable] = {}
        for item in tools or ():
            if isinstance(item, (sdk.BetaFunctionTool, sdk.BetaAsyncFunctionTool)):
                wrapped = item
            elif isinstance(item, Mapping):
                params.append(dict(item))
                continue
            elif callable(item):
                factory = sdk.beta_async_tool if inspect.iscoroutinefunction(item) else sdk.beta_tool
                wrapped = factory(item)
            else:
                dumped = _dump(item)
                if not isinstance(dumped, Mapping):
                    raise ConfigurationError(
                        f"tools=: expected tool dicts or functions, got {type(item).__name__}"
                    )
                params.append(dict(dumped))
                continue
            definition = dict(wrapped.to_dict())
            if not definition.get("description"):
                definition.pop("description", None)
            params.append(definition)
            is_async = isinstance(wrapped, sdk.BetaAsyncFunctionTool)
            runnables[wrapped.name] = _Runnable(wrapped.name, wrapped.call, is_async)
        for name, fn in (tool_functions or {}).items():
            if not callable(fn):
                raise ConfigurationError(f"tool_functions[{name!r}] is not callable")
            is_async = inspect.iscoroutinefunction(fn)
            runnables[name] = _Runnable(name, _keyword_call(fn, is_async), is_async)
        names = [str(p["name"]) for p in params if p.get("name") is not None]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(f"tools=: more than one tool named {', '.join(duplicates)}")
        unknown = sorted(set(runnables) - set(names))
        if unknown:
            raise ConfigurationError(
                f"tool_functions names {', '.join(unknown)} with no tool definition in tools=; "
                "add the tool dicts or pass the functions themselves in tools="
            )
        return cls(params=tuple(params), runnables=runnables)

    def with_functions(self, tool_functions: Mapping[str, Callable[..., Any]]) -> ToolSet:
        """The same tools with more local functions (by tool name)."""
        extra = ToolSet.build(self.params, tool_functions)
        return ToolSet(params=self.params, runnables={**self.runnables, **extra.runnables})

    def can_run(self, tool_uses: Sequence[Mapping[str, Any]]) -> bool:
        """True when every requested tool has a local function (otherwise the caller supplies results)."""
        return bool(tool_uses) and all(t.get("name") in self.runnables for t in tool_uses)

    def runnable(self, name: str) -> _Runnable:
        return self.runnables[name]


def _keyword_call(fn: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    def check(payload: object) -> Mapping[str, Any]:
        if not isinstance(payload, Mapping):
            raise TypeError(f"tool input must be an object, got {type(payload).__name__}")
        return payload

    if is_async:

        async def call_async(payload: object) -> Any:
            return await fn(**check(payload))

        return call_async

    def call(payload: object) -> Any:
        return fn(**check(payload))

    return call


def tool_result(tool_use_id: str, value: Any) -> dict[str, Any]:
    """The ``tool_result`` block for what a tool returned."""
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id}
    content = _content(value)
    if content is not None:
        block["content"] = content
    return block


def error_result(tool_use_id: str, exc: BaseException) -> dict[str, Any]:
    """An ``is_error`` tool_result telling the model what went wrong."""
    sdk = _sdk_tools()
    if isinstance(exc, sdk.ToolError):
        content = _content(exc.content)
    else:
        text = f"{type(exc).__name__}: {exc}".rstrip(": ")
        cause = exc.__cause__
        if cause is not None:  # e.g. the pydantic validation details behind "Invalid arguments"
            text += f"\n{cause}"
        content = text
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "is_error": True}
    if content is not None:
        block["content"] = content
    return block


def _content(value: Any) -> str | list[dict[str, Any]] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, Mapping) and value.get("type") in _BLOCK_TYPES:
        return [dict(value)]
    if isinstance(value, (list, tuple)):
        blocks = [_dump(v) for v in value]
        if blocks and all(isinstance(b, Mapping) and b.get("type") in _BLOCK_TYPES for b in blocks):
            return [dict(b) for b in blocks]
    dumped = _dump(value)
    return json.dumps(dumped, ensure_ascii=False, default=str)
