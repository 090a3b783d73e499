"""The request schema, derived from the ``anthropic`` SDK's own param TypedDicts, checked field by field.

Why derived: a hand-kept list of fields drifts from the API; the SDK's request types move with every release, so
a new SDK moves the simulator with it. The tree is compiled once per root type from ``typing.get_type_hints``
(``Required``/``NotRequired``, ``Literal``, ``Optional``, lists, dicts and unions discriminated by ``type``).

Errors follow the API's pydantic-style wording and path format, where a tagged union puts the tag in the path:
- ``messages.65.content.1.tool_use.text: Extra inputs are not permitted`` (github.com/anthropics/claude-code
  issue 4378), ``tools.3.custom.input_examples: ...`` (Wei-Shaw/claude-relay-service issue 667),
  ``context_management: ...`` sent without its beta header (Wei-Shaw/claude-relay-service issue 660);
- ``messages.0.content.1: Input tag 'document' found using 'type' does not match any of the expected tags:
  'text', 'image', 'tool_use', 'tool_result'`` (the same validation, as Bedrock reports it);
- ``Field required``, ``Input should be a valid string`` / ``integer`` / ``list`` / ``dictionary``, ``Input
  should be 'a', 'b' or 'c'`` (pydantic's own texts, which the API returns unchanged).

Where the API is stricter or looser than these types, the rule lives in ``_validation.py`` and is listed in
docs/simulator.md ("Request validation and models").
"""

from __future__ import annotations

import collections.abc
import threading
import types
import typing
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

import typing_extensions

from ._common import bad_request

__all__ = ["Schema", "message_schema"]

# Parameters of ``messages.create`` that the SDK sends as headers, not in the body (see
# anthropic/resources/messages/messages.py: ``anthropic-beta``, ``anthropic-user-profile-id``,
# ``anthropic-workspace-id``): in a body they are unknown fields.
HEADER_PARAMS = frozenset({"betas", "user_profile_id", "workspace_id"})
# Single TypedDicts the API validates as a one-member tagged union, so the tag is in the path:
# ``system.1.cache_control.ephemeral.scope: Extra inputs are not permitted`` (caozhiyuan/copilot-api issue 145).
# Others are not (``system.0.type: Field required`` for a system text block, as Bedrock reports it).
TAGGED_SINGLETONS = frozenset({"CacheControlEphemeralParam", "BetaCacheControlEphemeralParam"})
# Fields of ``messages.create`` outside the base TypedDict (``MessageCreateParamsStreaming.stream``).
EXTRA_FIELDS: dict[str, Any] = {"stream": bool}


class Node:
    """One compiled type: ``check`` raises the API's 400 for a value that does not fit."""

    def check(self, value: Any, path: str, norm: str, ctx: Context) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return "a valid value"


@dataclass
class Context:
    """Per-request state: the beta values the request enabled and the gate each field path needs."""

    betas: Collection[str]
    gate: Callable[[str, Collection[str]], bool]  # (normalised path, betas) -> allowed


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fail(path: str, problem: str) -> Exception:
    return bad_request(f"{path}: {problem}" if path else problem)


class AnyNode(Node):
    def check(self, value: Any, path: str, norm: str, ctx: Context) -> None:
        return None


@dataclass
class Scalar(Node):
    kind: type
    word: str  # pydantic's name for the type: string, integer, number, boolean

    def check(self, value: Any, path: str, norm: str, ctx: Context) -> None:
        if self.kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif self.kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, self.kind)
        if not ok:
            raise _fail(path, f"Input should be a valid {self.word}")

    def describe(self) -> str:
        return f"a valid {self.word}"


@dataclass
class LiteralNode(Node):
    values: tuple[Any, ...]

    def check(self, value: Any, path: str, norm: str, ctx: Context) -> None:
        if value in self.values and type(value) in {type(v) for v in self.values}:
            return
        raise _fail(path, f"Input should be {_alternatives(self.values)}")


def _alternatives(values: tuple[Any, ...]) -> str:
    shown = [repr(v) for v in values]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


@dataclass
class Nullable(Node):
    inner: Node

    def check(self, value: Any, path: str, norm: str, ctx: Context) -> None:
        if value is not None:
            self.inner.check(value, path, norm, ctx)


@dataclass
class ListNode(Node):
    item: Node

    def check(self, value: Any, path: str, norm: str, ctx: Context) -> None:
        if not isinstance(value, list):
            raise _fail(path, "Input should be a valid list")
        inner = f"{norm}.*"
        for k, item in enumerate(value):
            self.item.check(item, _join(path, str(k)), inner, ctx)

    def describe(self) -> str:
        return "a valid list"


@dataclass
class DictNode(Node):
    value: Node

    def check(self, value: Any, path: str, norm: str, ctx: Context) -> None:
        if not isinstance(value, dict):
            raise _fail(path, "Input should be a valid dictionary")
        for key, item in value.items():
            self.value.check(item, _join(path, str(key)), f"{norm}.*", ctx)

    def describe(self) -> str:
        return "a valid dictionary"


@dataclass(eq=False)
class Obj(Node):
    """A TypedDict: unknown keys are refused unless the SDK marks the type ``extra: allow``."""

    name: str
    fields: dict[str, tuple[Node, bool]] = field(default_factory=dict)  # key -> (node, required)
    extra_allowed: bool = False

    def check(self, value: Any, path: str, norm: str, ctx: Context) -> None:
        if not isinstance(value, dict):
            raise _fail(path, "Input should be a valid dictionary")
        for key, item in value.items():
            spec = self.fields.get(key)
            where = _join(path, str(key))
            key_norm = _join(norm, str(key))
            if spec is None or not ctx.gate(key_norm, ctx.betas):
                if self.extra_allowed and spec is None:
                    continue
                raise _fail(where, "Extra inputs are not permitted")
            spec[0].check(item, where, key_norm, ctx)
        for key, (_node, required) in self.fields.items():
            if required and key not in value:
                raise _fail(_join(path, key), "Field required")

    def describe(self) -> str:
        return "a valid dictionary"


@dataclass(eq=False)
class Tagged(Node):
    """A union of TypedDicts told apart by a literal field (``type``; ``role`` for messages).

    ``in_path``: the API's paths name the member (``content.1.tool_use.text``) for ``type`` unions.
    ``default``: the member a value without the field is (a custom tool's ``type`` is optional)."""

    key: str
    members: dict[str, Obj]
    in_path: bool
    default: str | None = None

    def check(self, value: Any, path: str, norm: str, ctx: Context) -> None:
        if not isinstance(value, dict):
            raise _fail(path, "Input should be a valid dictionary")
        if self.key in value and value[self.key] is not None:
            tag = value[self.key]
        elif self.default is not None:
            tag = self.default
        else:
            raise _fail(path, f"Unable to extract tag using discriminator '{self.key}'")
        member = self.members.get(tag) if isinstance(tag, str) else None
        member_norm = _join(norm, tag) if self.in_path else norm
        if member is None or not ctx.gate(member_norm, ctx.betas):
            expected = ", ".join(
                f"'{t}'" for t in self.members if not self.in_path or ctx.gate(_join(norm, t), ctx.betas)
            )
            raise _fail(
                path,
                f"Input tag '{tag}' found using '{self.key}' does not match any of the expected tags: {expected}",
            )
        member.check(value, _join(path, tag) if self.in_path else path, member_norm, ctx)

    def describe(self) -> str:
        return "a valid dictionary"


@dataclass
class UnionNode(Node):
    """Any other union: the first member that accepts the value wins; otherwise the first member's error for a
    value of its kind (a list is checked as the list member, a string as the string member)."""

    arms: list[Node]

    def check(self, value: Any, path: str, norm: str, ctx: Context) -> None:
        first: Exception | None = None
        for arm in self.arms:
            if not _plausible(arm, value):
                continue
            try:
                arm.check(value, path, norm, ctx)
                return
            except Exception as exc:  # an ApiError: remember the most plausible member's
                first = first or exc
        if first is not None:
            raise first
        raise _fail(path, "Input should be " + " or ".join(dict.fromkeys(a.describe() for a in self.arms)))


def _plausible(node: Node, value: Any) -> bool:
    if isinstance(node, Nullable):
        return value is None or _plausible(node.inner, value)
    if isinstance(node, (Obj, Tagged, DictNode)):
        return isinstance(value, dict)
    if isinstance(node, ListNode):
        return isinstance(value, list)
    if isinstance(node, Scalar):
        return (node.kind is float and isinstance(value, int)) or isinstance(value, node.kind)
    if isinstance(node, LiteralNode):
        return any(type(value) is type(v) for v in node.values)
    return True


# ---- compiling the SDK's types ----------------------------------------------------------------------------

_SCALARS: dict[Any, Scalar] = {
    str: Scalar(str, "string"),
    int: Scalar(int, "integer"),
    float: Scalar(float, "number"),
    bool: Scalar(bool, "boolean"),
}
_LISTS = (list, collections.abc.Iterable, collections.abc.Sequence)
_UNIONS: tuple[Any, ...] = (Union, types.UnionType)
# typing_extensions re-exports typing's own Required / NotRequired where Python has them (3.11+).
_WRAPPERS = (typing_extensions.Required, typing_extensions.NotRequired)


class _Compiler:
    def __init__(self) -> None:
        self._objs: dict[Any, Obj] = {}

    def node(self, tp: Any) -> Node:
        origin = get_origin(tp)
        if origin in _WRAPPERS or origin is typing_extensions.Annotated:
            return self.node(get_args(tp)[0])
        if tp is Any or tp is object:
            return AnyNode()
        if tp in _SCALARS:
            return _SCALARS[tp]
        if origin in (Literal, typing_extensions.Literal):
            return LiteralNode(get_args(tp))
        if typing_extensions.is_typeddict(tp):
            return (self._tagged([tp]) or self.obj(tp)) if tp.__name__ in TAGGED_SINGLETONS else self.obj(tp)
        if origin in _UNIONS:
            return self.union(get_args(tp))
        if (
            origin in _LISTS
            or getattr(tp, "__name__", "") == "SequenceNotStr"
            or (origin is not None and getattr(origin, "__name__", "") == "SequenceNotStr")
        ):
            args = get_args(tp)
            return ListNode(self.node(args[0]) if args else AnyNode())
        if origin in (dict, collections.abc.Mapping):
            args = get_args(tp)
            return DictNode(self.node(args[1]) if len(args) == 2 else AnyNode())
        return AnyNode()  # a type the walker does not know (datetime, a file object): accepted, not modelled

    def obj(self, tp: Any) -> Obj:
        if tp in self._objs:
            return self._objs[tp]
        config = getattr(tp, "__pydantic_config__", None) or {}
        out = Obj(tp.__name__, extra_allowed=config.get("extra") == "allow")
        self._objs[tp] = out  # before the fields: recursive types refer back to it
        for key, hint in typing.get_type_hints(tp, include_extras=True).items():
            out.fields[key] = (self.node(hint), _required(tp, hint))
        return out

    def union(self, args: tuple[Any, ...]) -> Node:
        nullable = type(None) in args
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return Nullable(self.node(rest[0])) if nullable else self.node(rest[0])
        inner: Node = self._tagged(rest) or UnionNode([self.node(a) for a in rest])
        return Nullable(inner) if nullable else inner

    def _tagged(self, args: list[Any]) -> Tagged | None:
        flat = [a for a in _flatten(args) if not _is_response_model(a)]
        if not flat or not all(typing_extensions.is_typeddict(a) for a in flat):
            return None
        for key in ("type", "role"):
            members: dict[str, Obj] = {}
            default: str | None = None
            for a in flat:
                hint = typing.get_type_hints(a, include_extras=True).get(key)
                values = _literal_values(hint)
                if not values:
                    break
                for v in values:
                    members.setdefault(v, self.obj(a))
                if default is None and not _required(a, hint):
                    default = values[0]  # the first optional tag: a custom tool's ``type: Optional["custom"]``
            else:
                return Tagged(key, members, in_path=key == "type", default=default)
        return None


def _required(tp: Any, hint: Any) -> bool:
    """From the hint itself: with ``from __future__ import annotations`` the SDK's ``__required_keys__`` are not
    reliable on Python 3.11 (``Required[...]`` is still a string when the class is built)."""
    origin = get_origin(hint)
    if origin is typing_extensions.Required:
        return True
    if origin is typing_extensions.NotRequired:
        return False
    return bool(getattr(tp, "__total__", True))


def _flatten(args: Collection[Any]) -> list[Any]:
    """Members of nested (and ``Annotated``) unions, in order."""
    out: list[Any] = []
    for a in args:
        if get_origin(a) is typing_extensions.Annotated:
            a = get_args(a)[0]
        out.extend(_flatten(get_args(a)) if get_origin(a) in _UNIONS else [a])
    return out


def _is_response_model(tp: Any) -> bool:
    """The SDK also lets a caller pass response blocks (``ContentBlock`` models) back as params; on the wire
    they must have the param shape, so the response models are not part of the request schema."""
    import pydantic

    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def _literal_values(hint: Any) -> tuple[str, ...]:
    while get_origin(hint) in _WRAPPERS or get_origin(hint) in _UNIONS:
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) != 1:
            return ()
        hint = args[0]
    if get_origin(hint) in (Literal, typing_extensions.Literal):
        return tuple(v for v in get_args(hint) if isinstance(v, str))
    return ()


# ---- roots --------------------------------------------------------------------------------------------------


@dataclass
class Schema:
    """A compiled request body type plus the normalised paths (``messages.*.content.*.text.citations``) that
    the generally available (non-beta) types know: every other path is beta-only."""

    root: Obj
    ga_paths: frozenset[str]

    def check(self, body: Any, betas: Collection[str], gate: Callable[[str, Collection[str]], bool]) -> None:
        self.root.check(body, "", "", Context(betas, gate))

    def beta_only(self, norm: str) -> bool:
        return norm not in self.ga_paths

    def paths(self) -> set[str]:
        """Every normalised path the schema knows (generally available and beta)."""
        out: set[str] = set()
        _paths(self.root, "", out, set())
        return out


def _root(tp: Any, compiler: _Compiler, extra: dict[str, Any]) -> Obj:
    base = compiler.obj(tp)
    root = Obj(base.name, dict(base.fields), base.extra_allowed)
    for key in HEADER_PARAMS:
        root.fields.pop(key, None)
    for key, hint in extra.items():
        root.fields.setdefault(key, (compiler.node(hint), False))
    return root


def _paths(node: Node, norm: str, out: set[str], stack: set[int]) -> None:
    if id(node) in stack:
        return
    stack.add(id(node))
    if isinstance(node, Obj):
        for key, (child, _req) in node.fields.items():
            out.add(_join(norm, key))
            _paths(child, _join(norm, key), out, stack)
    elif isinstance(node, Tagged):
        for tag, member in node.members.items():
            tag_norm = _join(norm, tag) if node.in_path else norm
            out.add(tag_norm)
            _paths(member, tag_norm, out, stack)
    elif isinstance(node, (ListNode, DictNode)):
        _paths(node.item if isinstance(node, ListNode) else node.value, f"{norm}.*", out, stack)
    elif isinstance(node, Nullable):
        _paths(node.inner, norm, out, stack)
    elif isinstance(node, UnionNode):
        for arm in node.arms:
            _paths(arm, norm, out, stack)
    stack.discard(id(node))


_SCHEMAS: dict[bool, Schema] = {}
# Built once, on the first request: without the lock, 100 clients arriving at once on a fresh simulator each
# built it (0.1-0.2 s of CPU apiece, 10 s in all before the first reply).
_SCHEMAS_LOCK = threading.Lock()


def message_schema(count_only: bool) -> Schema:
    """The body schema of ``POST /v1/messages`` (or ``/count_tokens``): the beta namespace's types, which are
    a superset of the generally available ones, with the GA paths marked."""
    schema = _SCHEMAS.get(count_only)
    if schema is not None:
        return schema
    with _SCHEMAS_LOCK:
        if count_only not in _SCHEMAS:
            _SCHEMAS[count_only] = _build_schema(count_only)
        return _SCHEMAS[count_only]


def _build_schema(count_only: bool) -> Schema:
    from anthropic.types import message_count_tokens_params, message_create_params
    from anthropic.types.beta import message_count_tokens_params as beta_count
    from anthropic.types.beta import message_create_params as beta_create

    compiler = _Compiler()
    ga: Any = message_create_params.MessageCreateParamsBase
    beta: Any = beta_create.MessageCreateParamsBase
    if count_only:
        ga, beta = message_count_tokens_params.MessageCountTokensParams, beta_count.MessageCountTokensParams
    extra = {} if count_only else EXTRA_FIELDS  # count_tokens takes no ``stream``
    ga_paths: set[str] = set()
    _paths(_root(ga, _Compiler(), extra), "", ga_paths, set())
    return Schema(_root(beta, compiler, extra), frozenset(ga_paths))
