"""The pure core of a chat turn, shared by ``Chat`` and ``AsyncChat`` (which only do the I/O).

A turn is the user's message, any tool exchanges and the final reply. It is built here in memory (``Turn``),
shaped into requests through ``context.plan_request`` (the one seam), and handed back to the front end as the
entries to commit with ONE ``store.append(..., expected_version=v)``. Nothing here touches the network or a
store, so a failure anywhere before the commit leaves the chat and the store as they were.

How a reply is kept: each content block exactly as the SDK would send it back (``model_dump(mode="json",
exclude_unset=True, by_alias=True)`` minus ``__api_exclude__``, the SDK's own ``openapi_model_dump``), so
thinking signatures, redacted thinking, server-tool blocks and citations round-trip byte for byte
(claude-api-facts.md "Thinking blocks"). The library keeps strict role alternation (history.py), so a reply
continued after ``pause_turn`` is merged into one assistant message; its usage keeps each call's figures
(``usage.combine_usage``).
"""

from __future__ import annotations

import copy
import enum
import json
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal
from functools import cached_property
from typing import Any

from .context.checkpoint import Tail
from .context.plan import RequestPlan, plan_request, settle
from .context.planner import Planner
from .context.report import ContextReport
from .context.sequences import Joined, Prefix
from .errors import ConfigurationError, InvalidHistory, ToolResultsMissing
from .pricing import PriceTable, exact_cost_of
from .stores._checks import check_system
from .stores._validation import MAX_DEPTH, json_depth
from .stores.base import Entry, SessionData, SessionInfo, StoredMessage, Summary
from .tools import ToolErrors, ToolSet
from .turn_requests import CountTokens, Op, SaveSummary, Summarize
from .usage import TokenUsage, combine_usage

__all__ = [
    "Ledger",
    "SessionState",
    "Settings",
    "Step",
    "Turn",
    "assistant_message",
    "begin_turn",
    "dump_block",
    "next_request_report",
    "user_message",
    "utc_now",
]

# Arguments a caller may not pass per call: the chat owns them.
_RESERVED = {"messages": "the history is the chat's; send new content instead", "stream": "use chat.stream()"}




Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock of a chat (looked up at each call, so a patched ``turn.datetime`` is honoured)."""
    return datetime.now(timezone.utc)


def read_clock(clock: Clock) -> datetime:
    """``clock()``, checked: the planner subtracts these stamps from the stores' aware UTC timestamps."""
    now = clock()
    if getattr(now, "tzinfo", None) is None or now.utcoffset() is None:
        raise ConfigurationError(
            f"clock= must return an aware datetime (e.g. datetime.now(timezone.utc)), got {now!r}"
        )
    return now


# Stop reasons after which the response is sent back as it is to let the model go on (claude-api-facts.md:
# pause_turn; and compaction with pause_after_compaction).
_CONTINUE = frozenset({"pause_turn", "compaction"})


class Step(enum.Enum):
    """What the front end does after a reply."""

    DONE = "done"  # commit the turn, return the reply
    CALL = "call"  # call the API again (continuation after pause_turn)
    RUN_TOOLS = "run_tools"  # run the local tool functions, add their results, call again
    WAIT = "wait"  # park the turn: the caller must act (tool results, more content, or resume)


# ---------------------------------------------------------------------------------------------- session state


@dataclass(frozen=True)
class SessionState:
    """An immutable snapshot of the stored session the chat last saw.

    ``records`` (and ``log``, the messages of the records) are ``Prefix`` views of lists shared by every state
    derived from one load by commits: a commit appends to them and the new state sees a longer prefix, so a
    turn costs its new messages, never a copy of the session (see ``context.sequences``)."""

    session_id: str
    version: int = 0
    records: Sequence[StoredMessage] = ()
    summaries: tuple[Summary, ...] = ()
    info: SessionInfo | None = None
    # The incarnation of the session this state belongs to (stores/base.py): appends are bound to it, so a
    # session deleted and created again under the same id is never written as if it were this one.
    incarnation: str | None = None
    # The same object for every state derived from one load by commits (the log only grew): the planner's
    # word that the messages it saw before are unchanged (context.Planner).
    lineage: object = field(default_factory=object, compare=False, repr=False)
    # The seq of the first record held: 0 for a whole session; more when only the newest part was read from
    # the session's planner checkpoint (turn_path._from_checkpoint): ``log`` is then a ``Tail``.
    start: int = 0

    @classmethod
    def from_data(cls, data: SessionData) -> SessionState:
        return cls(
            session_id=data.info.id,
            version=data.version,
            records=Prefix(list(data.messages)),
            summaries=tuple(data.summaries),
            info=data.info,
            incarnation=data.info.incarnation,
        )

    @cached_property
    def log(self) -> Sequence[dict[str, Any]]:
        """The committed messages (shared, never mutated: copy before handing them out); a ``Tail`` (indexed
        as the whole log, refusing what was not read) when ``start`` > 0."""
        messages = Prefix([r.message for r in self.records])
        return Tail(self.start, messages) if self.start else messages

    @property
    def complete(self) -> bool:
        """Whether the whole session was read (not only its newest part)."""
        return self.start == 0

    @property
    def length(self) -> int:
        """How many messages the session holds."""
        return self.start + len(self.records)

    @property
    def stored_system(self) -> str | list[dict[str, Any]] | None:
        return self.info.system if self.info is not None else None

    def changed(self, **changes: Any) -> SessionState:
        """This state with other ``summaries``, ``info``... (not the records): the log derived so far is kept
        (``replace`` alone would leave it to be derived again from the records, a walk of the whole log)."""
        if "records" in changes:
            raise TypeError("changed() keeps the records; commit new ones with committed()")
        state = replace(self, **changes)
        if "log" in self.__dict__:
            state.__dict__["log"] = self.__dict__["log"]
        return state

    def committed(
        self, entries: Sequence[Entry], version: int, now: datetime | None = None, **changes: Any
    ) -> SessionState:
        """The state after ``entries`` were appended and the store answered ``version``; the new records
        are stamped ``now`` (the chat's clock: the cache TTL is chosen from the gaps between these stamps).
        ``changes``: other fields of the new state (``info``, ``incarnation``). O(new entries): the records
        and the log are grown in place (``Prefix.grown``), this state still sees only its own."""
        now = now if now is not None else utc_now()
        start = self.length
        # The turn's own dicts are taken as they are (a turn builds them and never changes one after): a copy
        # would be a second dict per message in every state a process keeps (WarmSessions), and the planner,
        # which indexed the pending messages, finds the committed ones to be the very same objects.
        new = [
            StoredMessage(
                seq=start + i,
                message=_owned(e.message),
                model=e.model,
                usage=_owned(e.usage) if e.usage is not None else None,
                created_at=now,
            )
            for i, e in enumerate(entries)
        ]
        state = replace(self, version=version, records=Prefix.of(self.records).grown(new), **changes)
        if "log" in self.__dict__:  # the log so far is known: grow it too rather than derive it again
            log = self.__dict__["log"]
            more = (r.message for r in new)
            state.__dict__["log"] = log.grown(more) if isinstance(log, Tail) else Prefix.of(log).grown(more)
        return state

    def awaiting_tool_uses(self) -> list[dict[str, Any]]:
        """tool_use blocks of a committed assistant message that still need results (``commit_pending``)."""
        return _open_tool_uses(self.log[-1]) if self.log else []


def _owned(value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` itself when it is a plain dict (a turn's own), else a dict copy of the mapping."""
    return value if type(value) is dict else dict(value)


def _open_tool_uses(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    if message.get("role") != "assistant" or not isinstance(message.get("content"), list):
        return []
    return [b for b in message["content"] if isinstance(b, dict) and b.get("type") == "tool_use"]


class Ledger:
    """Running usage and cost of a session. Both are summed lazily, when someone asks (so an unknown model
    only warns then): a web handler that makes a ``Chat`` per request and never reads ``chat.usage`` does no
    per-message work for them, not even listing the session's records (``reset`` keeps the state to read
    them from)."""

    def __init__(self, prices: PriceTable) -> None:
        self._prices = prices
        self._records: list[tuple[str | None, Mapping[str, Any]]] = []
        self._base: SessionState | None = None  # the state whose records come first, not listed yet
        self._usage = TokenUsage()
        self._summed = 0
        self._priced = 0
        self._cost = Decimal(0)
        self._unpriced: set[str | None] = set()

    def reset(self, state: SessionState) -> None:
        self._records, self._usage, self._summed, self._priced, self._cost = [], TokenUsage(), 0, 0, Decimal(0)
        self._unpriced = set()
        # Only the newest part read: the front end reads all before telling totals. (A state is immutable.)
        self._base = state if state.complete else None

    def add(self, records: Iterable[tuple[str | None, Mapping[str, Any] | None]]) -> None:
        self._records.extend((model, usage) for model, usage in records if usage)

    def _listed(self) -> list[tuple[str | None, Mapping[str, Any]]]:
        """Every record so far: the base state's (listed now, once), then those added since."""
        base = self._base
        if base is not None:
            self._base = None
            added, self._records = self._records, []
            self.add((r.model, r.usage) for r in base.records)
            self.add((s.model, s.usage) for s in base.summaries)
            self._records.extend(added)
        return self._records

    @property
    def usage(self) -> TokenUsage:
        self._listed()
        if self._summed < len(self._records):
            self._usage = sum(
                (TokenUsage.from_api(usage) for _, usage in self._records[self._summed :]), self._usage
            )
            self._summed = len(self._records)
        return self._usage

    def _price_new(self) -> None:
        for model, usage in self._listed()[self._priced :]:
            cost = exact_cost_of(usage, model, self._prices)
            if cost is None:
                self._unpriced.add(model)
            else:
                self._cost += cost
        self._priced = len(self._records)

    @property
    def cost(self) -> float:
        self._price_new()
        return float(self._cost)

    @property
    def exact_cost(self) -> Decimal:
        self._price_new()
        return self._cost

    @property
    def cost_complete(self) -> bool:
        self._price_new()
        return not self._unpriced


# ---------------------------------------------------------------------------------------------- content


def dump_block(block: Any) -> dict[str, Any]:
    """A content block as the API's JSON (what the SDK itself would send back)."""
    if isinstance(block, Mapping):
        return copy.deepcopy(dict(block))
    dump = getattr(block, "model_dump", None)
    if not callable(dump):
        raise TypeError(f"expected a content block dict or SDK block, got {type(block).__name__}")
    result = dump(
        mode="json", exclude_unset=True, by_alias=True, exclude=getattr(block, "__api_exclude__", None)
    )
    if not isinstance(result, dict):  # pragma: no cover - pydantic always returns a dict here
        raise TypeError("model_dump did not return a dict")
    return result


def user_message(content: Any) -> dict[str, Any]:
    """The user message for ``content``: a string, one block, or a list of blocks (strings become text
    blocks; SDK models are dumped)."""
    if isinstance(content, str):
        if not content.strip():
            raise InvalidHistory(
                "the message is empty or only whitespace; the API rejects empty text. "
                "Send some text or blocks.",
                index=None,
            )
        return check_sendable({"role": "user", "content": content})
    if isinstance(content, Mapping) or hasattr(content, "model_dump"):
        content = [content]
    if isinstance(content, (bytes, bytearray)) or not isinstance(content, Iterable):
        raise TypeError(f"content must be a string or a list of content blocks, got {type(content).__name__}")
    blocks: list[dict[str, Any]] = []
    for item in content:
        if isinstance(item, str):
            if item.strip():
                blocks.append({"type": "text", "text": item})
            continue
        if json_depth(item) > MAX_DEPTH - 2:  # before copying it: the copy itself would overflow the stack
            raise InvalidHistory(f"the message nests more than {MAX_DEPTH} levels deep; flatten it", index=None)
        block = dump_block(item)
        if not isinstance(block.get("type"), str):
            raise InvalidHistory(f"content block {block!r} has no 'type'", index=None)
        if block["type"] == "text" and not str(block.get("text", "")).strip():
            raise InvalidHistory("a text block is empty or only whitespace; the API rejects it", index=None)
        blocks.append(block)
    if not blocks:
        raise InvalidHistory("the message has no content; send some text or blocks", index=None)
    return check_sendable({"role": "user", "content": blocks})


def check_sendable(message: dict[str, Any]) -> dict[str, Any]:
    """A new message as the API can take it and every store can give it back: JSON without NaN or Infinity,
    valid Unicode (the request is UTF-8), nested at most ``MAX_DEPTH`` levels. Checked before the request,
    so a bad block is an ``InvalidHistory``, not a traceback from the SDK or a turn the store then refuses."""
    if json_depth(message) > MAX_DEPTH:
        raise InvalidHistory(f"the message nests more than {MAX_DEPTH} levels deep; flatten it", index=None)
    try:
        json.dumps(message, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidHistory(
            "the message contains a lone surrogate (half of a UTF-16 pair), which is not valid text: the API "
            "refuses it as invalid JSON. Replace it with U+FFFD (in Python, decode input with errors='replace')",
            index=None,
        ) from None
    except (TypeError, ValueError) as exc:
        raise InvalidHistory(f"the message is not valid JSON for the API: {exc}", index=None) from None
    return message


def assistant_message(message: Any) -> dict[str, Any]:
    """The reply as a stored assistant ``MessageParam``: every block exactly as the API sent it."""
    return {"role": "assistant", "content": [dump_block(b) for b in message.content]}


def usage_of(message: Any) -> dict[str, Any]:
    usage = message.usage
    if isinstance(usage, Mapping):
        return dict(usage)
    result = usage.model_dump(mode="json", exclude_none=True)
    return dict(result)


def _tool_result_ids(message: Mapping[str, Any]) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [
        str(b.get("tool_use_id")) for b in content if isinstance(b, dict) and b.get("type") == "tool_result"
    ]


def _check_results(message: Mapping[str, Any], awaiting: Sequence[Mapping[str, Any]], index: int) -> None:
    """The new user message must answer exactly the open tool_use ids, tool_result blocks first
    (claude-api-facts.md "Tool use pairing"), and may not answer anything else."""
    given = _tool_result_ids(message)
    wanted = [str(t.get("id")) for t in awaiting]
    if not wanted:
        if given:
            raise InvalidHistory(
                f"tool_result for {', '.join(given)} but no tool_use is waiting for a result; "
                "send tool results only after a reply with stop_reason 'tool_use'",
                index=index,
            )
        return
    missing = [i for i in wanted if i not in given]
    if missing:
        names = ", ".join(f"{t.get('name')} ({t.get('id')})" for t in awaiting if str(t.get("id")) in missing)
        raise ToolResultsMissing(
            f"the turn is waiting for tool results for {names}; send them with "
            "chat.send_tool_results({tool_use_id: result, ...}) or chat.send([tool_result blocks]), "
            "or drop the pending turn with chat.discard_pending()",
            index=index,
            tool_use_ids=missing,
        )
    extra = [i for i in given if i not in wanted]
    if extra or len(given) != len(set(given)):
        raise InvalidHistory(
            f"tool_result ids {', '.join(extra or given)} do not match "
            f"the open tool_use ids {', '.join(wanted)} "
            "(each needs exactly one result)",
            index=index,
        )
    content = message["content"]
    first_other = next((i for i, b in enumerate(content) if b.get("type") != "tool_result"), len(content))
    if any(b.get("type") == "tool_result" for b in content[first_other:]):
        raise InvalidHistory(
            "tool_result blocks must come first in the message, before any text", index=index
        )


def _merge_user(previous: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Two user messages in a row become one (the API would merge them too; the log keeps alternation)."""
    return {"role": "user", "content": [*_blocks(previous), *_blocks(new)]}


def _blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    content = message["content"]
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [dict(b) for b in content]


# ---------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """What a chat was made with (everything but the I/O objects)."""

    model: str
    system: str | list[dict[str, Any]] | None  # as given to the constructor; None: the stored one
    max_tokens: int
    context: Any
    cache: bool | str  # True, False, "5m" or "1h" (context.plan_request)
    toolset: ToolSet
    create_kwargs: Mapping[str, Any]
    max_tool_rounds: int
    tool_errors: ToolErrors
    commit_pending: bool
    clock: Clock = utc_now  # "now" for record stamps (the gaps between turns decide the cache TTL)
    on_concurrent: str = "conflict"  # "conflict", "reject" or "enqueue" (turn_path.turn_path)
    lease_ttl: float = 60.0  # seconds a turn's lease lasts if its holder dies
    lease_timeout: float = 60.0  # seconds "enqueue" waits for the lease before TurnInProgress
    # The planner's memory of this chat's session: a turn plans its new messages, not the whole log.
    planner: Planner = field(default_factory=Planner, compare=False, repr=False)

    def system_for(self, state: SessionState) -> str | list[dict[str, Any]] | None:
        return self.system if self.system is not None else state.stored_system

    def metadata_changes(self, state: SessionState) -> dict[str, Any]:
        """Session metadata to write with the next commit (the system prompt is kept with the session)."""
        changes: dict[str, Any] = {}
        info = state.info
        if self.system is not None and (info is None or info.system != self.system):
            changes["system"] = self.system
        if info is None or info.model != self.model:
            changes["model"] = self.model
        return changes


def split_overrides(settings: Settings, overrides: Mapping[str, Any]) -> tuple[dict[str, Any], ToolSet]:
    """Per-call arguments: ``tools=`` / ``tool_functions=`` give this turn its own tool set; the rest go to
    ``messages.create`` over the chat's own arguments."""
    for key, why in _RESERVED.items():
        if key in overrides:
            raise TypeError(f"{key}= cannot be passed to a chat call: {why}")
    if "system" in overrides:
        check_system(overrides["system"])
    rest = dict(overrides)
    tools = rest.pop("tools", None)
    functions = rest.pop("tool_functions", None)
    if tools is None and functions is None:
        return rest, settings.toolset
    if tools is None:  # more functions for the chat's own tools
        return rest, settings.toolset.with_functions(functions or {})
    return rest, ToolSet.build(tools, functions)  # this call's own tool set


# ---------------------------------------------------------------------------------------------- the turn


@dataclass
class Turn:
    """A turn in progress: the messages not yet committed, on top of the state they started from."""

    base: SessionState
    entries: list[Entry]
    overrides: dict[str, Any]
    toolset: ToolSet
    auto_rounds: int = 0  # automatic follow-up calls since the caller last acted (max_tool_rounds guard)
    carried_usage: list[dict[str, Any]] = field(default_factory=list)  # replies that added no content
    last_stop_reason: str | None = None

    def copy(self) -> Turn:
        return replace(self, entries=list(self.entries), overrides=dict(self.overrides),
                       carried_usage=list(self.carried_usage))  # fmt: skip

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The turn's messages, not copies (see ``SessionState.committed``): for the planner, which never
        changes them; a caller gets a deep copy (``Chat.pending``)."""
        return [_owned(e.message) for e in self.entries]

    @property
    def awaiting(self) -> list[dict[str, Any]]:
        """Open tool_use blocks that need results before the turn can go on."""
        if self.entries:
            return _open_tool_uses(self.entries[-1].message)
        return self.base.awaiting_tool_uses()

    @property
    def paused(self) -> bool:
        """The last reply stopped with pause_turn: the next call continues it as it is."""
        return self.last_stop_reason in _CONTINUE

    # -- building requests -------------------------------------------------------------------------------

    def plan(self, settings: Settings, measured: int | None = None) -> RequestPlan:
        """The context plan for the next call of this turn (``context.plan_request``)."""
        log, pending, arguments = self.plan_arguments(settings)
        return plan_request(log, pending, **arguments, measured_input_tokens=measured)

    def plan_arguments(
        self, settings: Settings
    ) -> tuple[Sequence[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        """``(log, pending, keywords)`` for ``plan_request`` / ``context_report``: the one place a chat's
        settings and session become planner arguments."""
        opts = {**settings.create_kwargs, **self.overrides}
        now = read_clock(settings.clock)
        offset = self.base.length
        # The replies of this turn so far: ``seq`` indexes log + pending, so the planner knows the exact size
        # of what was sent, calibrates its estimate and sees when each turn happened (the cache TTL).
        pending_usage = [
            {"seq": offset + i, "usage": e.usage, "model": e.model, "created_at": now}
            for i, e in enumerate(self.entries)
            if e.usage
        ]
        arguments = {
            **self._planned_with(settings, opts, self.base),
            "summaries": self.base.summaries,
            "usage_history": Joined(self.base.records, pending_usage),  # (not a copy of the records)
            # A top-level cache_control is the API's automatic caching (one breakpoint on the last block): the
            # caller chose it, so no breakpoints are added (together they could pass the API's limit of 4).
            "cache": False if opts.get("cache_control") is not None else settings.cache,
            "now": now,
            "planner": settings.planner,
            "lineage": self.base.lineage,
        }
        return self.base.log, self.messages, arguments

    def _planned_with(self, settings: Settings, opts: Mapping[str, Any], state: SessionState) -> dict[str, Any]:
        """The model, system prompt, tools and policy this turn's requests are planned with."""
        return {
            "model": opts.get("model", settings.model),
            "system": opts.get("system", settings.system_for(state)),
            "tools": list(self.toolset.params) or None,
            "policy": settings.context,
        }

    def settle(self, settings: Settings, state: SessionState) -> None:
        """This turn was committed into ``state``: the chat's planner is brought up to its end with the very
        objects the next turn passes it (``context.plan.settle``), so its checkpoint holds the newest request."""
        settle(
            state.log,
            **self._planned_with(settings, {**settings.create_kwargs, **self.overrides}, state),
            summaries=state.summaries,
            usage_history=state.records,
            planner=settings.planner,
            lineage=state.lineage,
        )

    def _kwargs(self, plan: RequestPlan, settings: Settings) -> tuple[dict[str, Any], bool]:
        opts = {**settings.create_kwargs, **self.overrides}
        opts.pop("system", None)  # the plan carries it (possibly with a summary block and cache markers)
        kwargs: dict[str, Any] = {
            "model": opts.pop("model", settings.model),
            "max_tokens": opts.pop("max_tokens", settings.max_tokens),
        }
        planned = plan.request_kwargs()
        betas = sorted({*opts.pop("betas", ()), *planned.pop("betas", ())})
        headers = {**opts.pop("extra_headers", {}), **planned.pop("extra_headers", {})}
        kwargs.update(planned)
        # The caller's own arguments win over the plan's extras, except the shape of the history itself.
        kwargs.update(opts)
        if betas:
            kwargs["betas"] = betas
        if headers:
            kwargs["extra_headers"] = headers
        return kwargs, bool(betas)

    def prepare(
        self, settings: Settings, on_summary: Callable[[Summary], None] | None = None
    ) -> Generator[Op, Any, tuple[dict[str, Any], bool]]:
        """The request for the next call, as a sans-I/O protocol: it yields the I/O it needs (a summary
        call, saving the summary, a token count) and the front end sends back each result (or throws the
        error into it). Returns the keyword arguments for ``messages.create``/``stream`` and whether they
        are for ``client.beta.messages``. See ``context.plan`` for what each step is for. ``on_summary``
        takes a stored summary into ``self.base`` (default: only the turn sees it)."""
        plan = yield from self._summarised(self.plan(settings), settings, None, on_summary)
        kwargs, beta = self._kwargs(plan, settings)
        budget = plan.report.budget if plan.report is not None else None
        if plan.check_count and budget is not None:
            try:
                counted = yield CountTokens(kwargs, beta)
            except Exception:  # the estimate stands (count_tokens is rate-limited and optional)
                counted = None
            if isinstance(counted, int) and counted > budget:
                again = self.plan(settings, measured=counted)
                plan = yield from self._summarised(again, settings, counted, on_summary)
                kwargs, beta = self._kwargs(plan, settings)
        return kwargs, beta

    def _summarised(
        self,
        plan: RequestPlan,
        settings: Settings,
        measured: int | None,
        on_summary: Callable[[Summary], None] | None,
    ) -> Generator[Op, Any, RequestPlan]:
        """``plan`` with the summary it asks for (Summarize, when the window just moved): written, stored,
        and planned again with it. A failed summary falls back to trimming, never to an error."""
        request = plan.summary_request
        if request is None:
            return plan
        fallback = plan.fallback or replace(plan, summary_request=None)
        try:
            reply = yield Summarize(dict(request.params))
            summary = request.to_summary(reply)
            yield SaveSummary(summary)
        except Exception:
            return fallback
        if on_summary is not None:
            on_summary(summary)
        else:
            self.base = self.base.changed(summaries=(*self.base.summaries, summary))
        again = self.plan(settings, measured=measured)
        if again.summary_request is not None:  # not expected: the summary for this window now exists
            return again.fallback or replace(again, summary_request=None)
        return again

    # -- taking replies ----------------------------------------------------------------------------------

    def accept(self, message: Any, settings: Settings) -> Step:
        """Add the API's reply to the turn and decide what happens next."""
        reply = assistant_message(message)
        usage = usage_of(message)
        self.last_stop_reason = message.stop_reason
        continuing = bool(self.entries) and self.entries[-1].message.get("role") == "assistant"
        if continuing:  # the previous reply paused: this one continues the same assistant message
            previous = self.entries[-1]
            merged = {"role": "assistant", "content": [*previous.message["content"], *reply["content"]]}
            records = [*_requests(previous.usage), *self.carried_usage, usage]
            self.entries[-1] = Entry(merged, model=message.model, usage=combine_usage(records))
            self.carried_usage = []
        elif reply["content"]:
            records = [*self.carried_usage, usage]
            self.entries.append(Entry(reply, model=message.model, usage=combine_usage(records)))
            self.carried_usage = []
        else:
            # An empty reply cannot be stored (the API rejects empty assistant messages before the last).
            # Its usage waits for the next reply of this turn; the turn waits for the caller.
            self.carried_usage.append(usage)
            return Step.WAIT
        if message.stop_reason in _CONTINUE:
            return self._automatic(Step.CALL, settings)
        open_uses = self.awaiting
        if open_uses:
            if self.toolset.can_run(open_uses):
                return self._automatic(Step.RUN_TOOLS, settings)
            return Step.WAIT
        return Step.DONE

    def _automatic(self, step: Step, settings: Settings) -> Step:
        if self.auto_rounds >= settings.max_tool_rounds:
            return Step.WAIT
        self.auto_rounds += 1
        return step

    def add_tool_results(self, results: Sequence[Mapping[str, Any]]) -> None:
        """The local tools' results as the next user message (tool_result blocks only)."""
        message = {"role": "user", "content": [dict(r) for r in results]}
        _check_results(message, self.awaiting, len(self.base.log) + len(self.entries))
        self.entries.append(Entry(message))

    def add_user(self, message: dict[str, Any]) -> None:
        """The caller continues the turn (tool results, more content after an empty reply)."""
        index = len(self.base.log) + len(self.entries)
        _check_results(message, self.awaiting, index)
        if self.entries and self.entries[-1].message.get("role") == "user":
            self.entries[-1] = Entry(_merge_user(self.entries[-1].message, message))
        else:
            self.entries.append(Entry(message))
        self.auto_rounds = 0

    def rebased(self, state: SessionState, committed: int) -> None:
        """After the first ``committed`` entries were stored (``commit_pending``), go on from ``state``."""
        self.base = state
        self.entries = self.entries[committed:]

    def committable(self) -> list[Entry]:
        """The entries to append now: up to the last assistant message (an empty last reply leaves a
        trailing user message, which waits for the next reply)."""
        last = max(
            (i for i, e in enumerate(self.entries) if e.message.get("role") == "assistant"), default=-1
        )
        return self.entries[: last + 1]


def _requests(usage: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if not usage:
        return []
    inner = usage.get("requests")
    return list(inner) if isinstance(inner, list) and inner else [usage]


def begin_turn(
    state: SessionState,
    pending: Turn | None,
    content: Any,
    settings: Settings,
    overrides: Mapping[str, Any],
) -> Turn:
    """A new turn for ``content``, or the pending turn continued with it. Never modifies ``pending``."""
    message = user_message(content)
    opts, toolset = split_overrides(settings, overrides)
    if pending is not None:
        turn = pending.copy()
        turn.overrides.update(opts)
        if "tools" in overrides or "tool_functions" in overrides:
            turn.toolset = toolset
        turn.add_user(message)
        return turn
    turn = Turn(base=state, entries=[], overrides=opts, toolset=toolset)
    turn.add_user(message)
    return turn


def resume_turn(pending: Turn | None, overrides: Mapping[str, Any]) -> Turn:
    """The pending turn, to go on as it stands: a pause or tool rounds beyond ``max_tool_rounds`` (the front
    end runs the open tools first when it has their functions), or an empty reply to try again."""
    if pending is None or not pending.entries:
        raise InvalidHistory("there is no pending turn to resume", index=None)
    if pending.awaiting and not pending.toolset.can_run(pending.awaiting):
        ids = ", ".join(str(t.get("id")) for t in pending.awaiting)
        raise InvalidHistory(
            f"the pending turn waits for tool results ({ids}); send them with chat.send_tool_results()",
            index=None,
        )
    turn = pending.copy()
    turn.overrides.update(overrides)
    turn.auto_rounds = 0
    return turn


def next_request_report(
    state: SessionState,
    pending: Turn | None,
    content: Any,
    settings: Settings,
    overrides: Mapping[str, Any],
) -> ContextReport:
    """What the next request would hold (``context.context_report`` with the arguments a send would plan
    with): ``content`` as a new message (or added to the pending turn); ``None``: the pending turn as it
    stands, or a one-character placeholder message when there is none. No I/O, nothing changes."""
    report = next_request_plan(state, pending, content, settings, overrides).report
    assert report is not None
    return report


def next_request_plan(
    state: SessionState,
    pending: Turn | None,
    content: Any,
    settings: Settings,
    overrides: Mapping[str, Any],
) -> RequestPlan:
    """The plan behind ``next_request_report``: the request itself (messages with their cache markers,
    system, tools, window start), planned as a send would plan it. No I/O, nothing changes."""
    if content is None and pending is not None:
        turn = pending.copy()
        opts, toolset = split_overrides(settings, overrides)
        turn.overrides.update(opts)
        if "tools" in overrides or "tool_functions" in overrides:
            turn.toolset = toolset
    else:
        turn = begin_turn(state, pending, content if content is not None else "…", settings, overrides)
    log, messages, arguments = turn.plan_arguments(settings)
    return plan_request(log, messages, **arguments)
