"""Token usage as a small value type that adds up: one API call's ``usage``, or a whole session's.

The API reports, per call (claude-api-facts.md, "Prompt caching"): ``input_tokens`` (only the tokens after
the last cache breakpoint), ``cache_creation_input_tokens`` and ``cache_read_input_tokens`` (the prompt is
the sum of the three), ``output_tokens``, and ``cache_creation`` splitting the writes by TTL. Those are the
fields kept here: they are what pricing needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["TokenUsage", "billed_parts", "combine_usage"]


def _as_mapping(usage: Any) -> Mapping[str, Any]:
    if usage is None:
        return {}
    if isinstance(usage, Mapping):
        return usage
    dump = getattr(usage, "model_dump", None)
    if callable(dump):  # the SDK's Usage / BetaUsage
        result = dump(mode="json", exclude_none=True)
        if isinstance(result, Mapping):
            return result
    raise TypeError(f"expected a usage mapping or the SDK's Usage, got {type(usage).__name__}")


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class TokenUsage:
    """Tokens by kind. ``a + b`` adds field by field; ``TokenUsage()`` is zero.

    ``ephemeral_5m_input_tokens + ephemeral_1h_input_tokens == cache_creation_input_tokens``: writes the API
    did not split by TTL count as 5-minute writes, the API's default TTL.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0

    @classmethod
    def from_api(cls, usage: Any) -> TokenUsage:
        """From the SDK's ``Usage`` or its JSON dict (as stored with each reply); missing fields are 0.

        Counts every billed part (see ``billed_parts``): compaction iterations, which the API leaves out of
        the top-level figures, and each request of a stored reply that took several."""
        if isinstance(usage, Mapping) and "requests" not in usage and "iterations" not in usage:
            return cls._from_fields(usage)  # the usual stored record: one part (read once per message per load)
        return sum(billed_parts(usage), cls())

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any]) -> TokenUsage:
        write_total = _int(data.get("cache_creation_input_tokens"))
        split = data.get("cache_creation")
        w1h = _int(split.get("ephemeral_1h_input_tokens")) if isinstance(split, Mapping) else 0
        w5m = _int(split.get("ephemeral_5m_input_tokens")) if isinstance(split, Mapping) else 0
        # Unsplit writes are 5-minute writes; a split larger than the total wins (the more detailed figure).
        w5m += max(0, write_total - w5m - w1h)
        return cls(
            input_tokens=_int(data.get("input_tokens")),
            output_tokens=_int(data.get("output_tokens")),
            cache_creation_input_tokens=w5m + w1h,
            cache_read_input_tokens=_int(data.get("cache_read_input_tokens")),
            ephemeral_5m_input_tokens=w5m,
            ephemeral_1h_input_tokens=w1h,
        )

    @property
    def prompt_tokens(self) -> int:
        """Every input token of the call(s): uncached + written to the cache + read from it."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def __add__(self, other: object) -> TokenUsage:
        if not isinstance(other, TokenUsage):
            return NotImplemented
        return TokenUsage(  # field by field, spelled out: ``dataclasses.fields`` per addition showed in profiles
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.ephemeral_5m_input_tokens + other.ephemeral_5m_input_tokens,
            self.ephemeral_1h_input_tokens + other.ephemeral_1h_input_tokens,
        )

    def __radd__(self, other: object) -> TokenUsage:
        # sum(usages) starts from 0.
        if other == 0:
            return self
        return NotImplemented


# ``__add__`` spells the fields out: a field added to TokenUsage must be added there too.
assert [f.name for f in fields(TokenUsage)] == [
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens",
]


def billed_parts(usage: Any) -> list[TokenUsage]:
    """The separately billed parts of a usage record, each priced on its own (the long-prompt tier is per
    request):

    - a stored reply that took several API calls (continued after ``pause_turn``) keeps each call's usage in
      ``requests``; the parts are those calls;
    - compaction iterations (beta ``usage.iterations`` entries of type ``compaction``) are not included in the
      top-level figures (SDK ``BetaUsage.iterations`` docs), so each is a part of its own;
    - otherwise the record's top-level figures are the one part.
    """
    if isinstance(usage, TokenUsage):
        return [usage]
    data = _as_mapping(usage)
    requests = data.get("requests")
    if isinstance(requests, list) and requests:
        return [part for request in requests for part in billed_parts(request)]
    parts = [TokenUsage._from_fields(data)]
    iterations = data.get("iterations")
    if isinstance(iterations, list):
        parts += [
            TokenUsage._from_fields(item)
            for item in iterations
            if isinstance(item, Mapping) and item.get("type") == "compaction"
        ]
    return parts


_SUMMED = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def combine_usage(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    """One usage dict for a stored reply that took several API calls: the summed figures, and each call's
    exact usage under ``requests`` (so pricing stays per request). A single record is returned as it is."""
    if len(records) == 1:
        return dict(records[0])
    flat: list[Mapping[str, Any]] = []
    for record in records:
        inner = record.get("requests")
        flat.extend(inner if isinstance(inner, list) and inner else [record])
    total = sum((TokenUsage._from_fields(r) for r in flat), TokenUsage())
    combined: dict[str, Any] = {name: getattr(total, name) for name in _SUMMED}
    combined["cache_creation"] = {
        "ephemeral_5m_input_tokens": total.ephemeral_5m_input_tokens,
        "ephemeral_1h_input_tokens": total.ephemeral_1h_input_tokens,
    }
    combined["requests"] = [dict(r) for r in flat]
    return combined
