"""What a usage record cost, from one price table that users can override.

Prices are USD per million tokens in ``data/prices.json`` (the table in claude-api-facts.md): input,
output, 5-minute cache write, 1-hour cache write, cache read. Cache reads are not always 0.1 x input, so
every price is explicit per model. ``claude-haiku-5-5`` has a long-prompt tier: when a request's prompt
(input + cache writes + cache reads) is over 100,000 tokens, the whole request, output included, is billed
at the higher prices.
Batch requests cost half (``batch_discount``).

Overrides, merged over the defaults field by field (a new model needs all five prices):
``CLAUDE_HISTORY_PRICES=/path/prices.json`` (same shape as the bundled file), then the ``prices=`` argument
(a dict of that shape, a plain ``{model: {...}}`` dict, a path, or a ``PriceTable``).

Arithmetic is exact (``Decimal``); results are returned as ``float`` USD so they mix with ordinary numbers.
A model the table does not know has no invented price: ``cost_of`` returns ``None`` and warns once per model.
Server-tool fees (web search, web fetch per request) are not in the table and not included.
"""

from __future__ import annotations

import json
import os
import re
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .models import ALIASES
from .usage import TokenUsage, billed_parts

__all__ = [
    "ENV_VAR",
    "CostBreakdown",
    "ModelPrice",
    "PriceTable",
    "PricingWarning",
    "canonical_model",
    "cost_breakdown",
    "cost_of",
    "load_prices",
]

ENV_VAR = "CLAUDE_HISTORY_PRICES"
PRICE_FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
_MILLION = Decimal(1_000_000)
_META_KEYS = frozenset({"currency", "unit", "source", "batch_discount", "aliases", "models"})


class PricingWarning(UserWarning):
    """A cost could not be computed (unknown model); the figure it belongs to is incomplete."""


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens. ``long_prompt`` (with ``long_prompt_threshold``) replaces every price for a
    request whose prompt is over the threshold."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    long_prompt: ModelPrice | None = None
    long_prompt_threshold: int | None = None

    def for_prompt(self, prompt_tokens: int) -> ModelPrice:
        threshold = self.long_prompt_threshold
        if self.long_prompt is not None and threshold is not None and prompt_tokens > threshold:
            return self.long_prompt
        return self


@dataclass(frozen=True)
class CostBreakdown:
    """USD by kind of token; ``total`` is their sum."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    total: float


@dataclass(frozen=True)
class PriceTable:
    models: Mapping[str, ModelPrice]
    batch_discount: Decimal = Decimal("0.5")
    aliases: Mapping[str, str] = field(default_factory=dict)

    def price_for(self, model: str) -> ModelPrice | None:
        """The prices of ``model``: exact name, the table's aliases, then the canonical name (dated snapshots,
        Bedrock and Vertex ids)."""
        models = self.models
        found = models.get(model)  # the usual case first: canonical_model runs regular expressions
        if found is not None:
            return found
        for name in (self.aliases.get(model), canonical_model(model, models)):
            if name is not None and name in models:
                return models[name]
        return None

    def merged(self, override: Mapping[str, Any]) -> PriceTable:
        """A new table: ``override`` (a price-file dict or a plain ``{model: prices}`` dict) over this one."""
        return _merge(self, override, origin="prices= argument")


def canonical_model(name: str, known: Mapping[str, Any] | None = None) -> str:
    """The table name of a model id: ``claude-sonnet-4-5-20250929``,
    ``anthropic.claude-sonnet-4-5-20250929-v1:0`` (Bedrock, with or without a region prefix or ARN) and
    ``claude-sonnet-4-5@20250929`` (Vertex) all give ``claude-sonnet-4-5``.
    Unknown names come back stripped of those decorations."""
    n = name.strip()
    if "anthropic." in n:  # Bedrock model id, inference profile or ARN
        n = n.rsplit("anthropic.", 1)[1]
    n = re.sub(r"-v\d+(:\d+)?$", "", n)
    n = n.split("@", 1)[0]
    n = ALIASES.get(n, n)
    if known is not None and n not in known:
        undated = re.sub(r"-\d{8}$", "", n)
        if undated in known:
            return undated
    return n


# --------------------------------------------------------------------------------------------------- loading


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ConfigurationError(f"{where}: a price must be a number, got {value!r}")
    try:
        result = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ConfigurationError(f"{where}: a price must be a number, got {value!r}") from None
    if not result.is_finite() or result < 0:
        raise ConfigurationError(f"{where}: a price must be a finite number >= 0, got {value!r}")
    return result


def _model_price(name: str, spec: Any, base: ModelPrice | None, origin: str) -> ModelPrice:
    where = f"{origin}: model {name!r}"
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f"{where}: expected an object with {', '.join(PRICE_FIELDS)}, got {spec!r}")
    unknown = set(spec) - {*PRICE_FIELDS, "long_prompt"}
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown price field(s) {sorted(unknown)}; "
            f"the fields are {', '.join(PRICE_FIELDS)}, long_prompt"
        )
    values: dict[str, Decimal] = {}
    for key in PRICE_FIELDS:
        if key in spec:
            values[key] = _decimal(spec[key], f"{where}, {key}")
        elif base is not None:
            values[key] = getattr(base, key)
        else:
            missing = [k for k in PRICE_FIELDS if k not in spec]
            raise ConfigurationError(f"{where}: a new model needs every price; missing {', '.join(missing)}")
    long_prompt = base.long_prompt if base is not None else None
    threshold = base.long_prompt_threshold if base is not None else None
    if "long_prompt" in spec:
        tier = spec["long_prompt"]
        if tier is None:
            long_prompt, threshold = None, None
        else:
            if not isinstance(tier, Mapping) or "threshold_tokens" not in tier:
                raise ConfigurationError(f"{where}: long_prompt needs threshold_tokens and the five prices")
            raw_threshold = tier["threshold_tokens"]
            if isinstance(raw_threshold, bool) or not isinstance(raw_threshold, (int, Decimal)):
                raise ConfigurationError(f"{where}: long_prompt.threshold_tokens must be an integer")
            threshold = int(raw_threshold)
            prices = {k: v for k, v in tier.items() if k != "threshold_tokens"}
            long_prompt = _model_price(f"{name} (long prompt)", prices, long_prompt, origin)
    return ModelPrice(**values, long_prompt=long_prompt, long_prompt_threshold=threshold)


def _merge(table: PriceTable, data: Mapping[str, Any], *, origin: str) -> PriceTable:
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{origin}: expected a JSON object, got {type(data).__name__}")
    if "models" in data:
        models_spec = data["models"]
        if not isinstance(models_spec, Mapping):
            raise ConfigurationError(f"{origin}: 'models' must be an object of model name -> prices")
    else:  # a plain {model: prices} mapping
        models_spec = {k: v for k, v in data.items() if k not in _META_KEYS}
    models = dict(table.models)
    for name, spec in models_spec.items():
        models[str(name)] = _model_price(str(name), spec, models.get(str(name)), origin)
    discount = table.batch_discount
    if "batch_discount" in data:
        discount = _decimal(data["batch_discount"], f"{origin}: batch_discount")
        if discount > 1:
            raise ConfigurationError(f"{origin}: batch_discount is a multiplier in [0, 1], got {discount}")
    aliases = dict(table.aliases)
    raw_aliases = data.get("aliases", {})
    if not isinstance(raw_aliases, Mapping) or not all(isinstance(v, str) for v in raw_aliases.values()):
        raise ConfigurationError(f"{origin}: 'aliases' must map model names to table names")
    aliases.update({str(k): v for k, v in raw_aliases.items()})
    return replace(table, models=models, batch_discount=discount, aliases=aliases)


def _read_json(path: str | os.PathLike[str], origin: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{origin}: cannot read price file {str(path)!r}: {exc}") from exc
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{origin}: price file {str(path)!r} is not valid JSON: {exc}") from exc


@lru_cache(maxsize=1)
def _bundled() -> PriceTable:
    text = resources.files("claude_history").joinpath("data/prices.json").read_text(encoding="utf-8")
    return _merge(PriceTable(models={}), json.loads(text, parse_float=Decimal), origin="bundled prices.json")


@lru_cache(maxsize=8)
def _with_env(env_path: str | None) -> PriceTable:
    table = _bundled()
    if env_path:
        table = _merge(table, _read_json(env_path, ENV_VAR), origin=f"{ENV_VAR}={env_path}")
    return table


def load_prices(prices: PriceTable | Mapping[str, Any] | str | os.PathLike[str] | None = None) -> PriceTable:
    """The effective table: bundled defaults, then ``$CLAUDE_HISTORY_PRICES``, then ``prices``.

    A ``PriceTable`` is used as it is. Raises ``ConfigurationError`` for a malformed file or value."""
    if isinstance(prices, PriceTable):
        return prices
    table = _with_env(os.environ.get(ENV_VAR) or None)
    if prices is None:
        return table
    if isinstance(prices, (str, os.PathLike)):
        return _merge(table, _read_json(prices, "prices="), origin=f"prices={str(prices)!r}")
    return table.merged(prices)


# --------------------------------------------------------------------------------------------------- cost

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_unknown(model: str | None) -> None:
    key = model or "<none>"
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    what = f"model {model!r}" if model else "a reply without a model name"
    warnings.warn(
        f"claude-history has no price for {what}; its cost is left out of totals (cost_complete is False). "
        f"Add it with prices={{'models': {{...}}}} or a JSON file in ${ENV_VAR}.",
        PricingWarning,
        stacklevel=4,
    )


def _breakdown(usage: TokenUsage, price: ModelPrice, factor: Decimal) -> dict[str, Decimal]:
    tier = price.for_prompt(usage.prompt_tokens)
    return {
        "input": usage.input_tokens * tier.input * factor / _MILLION,
        "output": usage.output_tokens * tier.output * factor / _MILLION,
        "cache_write_5m": usage.ephemeral_5m_input_tokens * tier.cache_write_5m * factor / _MILLION,
        "cache_write_1h": usage.ephemeral_1h_input_tokens * tier.cache_write_1h * factor / _MILLION,
        "cache_read": usage.cache_read_input_tokens * tier.cache_read * factor / _MILLION,
    }


def _exact_cost(usage: Any, model: str | None, prices: Any, batch: bool | None) -> dict[str, Decimal] | None:
    table = load_prices(prices)
    price = table.price_for(model) if model else None
    if price is None:
        _warn_unknown(model)
        return None
    if batch is None:  # the API says so in the usage record itself
        tier = (
            usage.get("service_tier") if isinstance(usage, Mapping) else getattr(usage, "service_tier", None)
        )
        batch = tier == "batch"
    factor = table.batch_discount if batch else Decimal(1)
    total = dict.fromkeys(("input", "output", "cache_write_5m", "cache_write_1h", "cache_read"), Decimal(0))
    for part in billed_parts(usage):  # each request (and compaction iteration) gets its own tier
        for key, value in _breakdown(part, price, factor).items():
            total[key] += value
    return total


def exact_cost_of(
    usage: Any, model: str | None, prices: Any = None, *, batch: bool | None = None
) -> Decimal | None:
    """Like ``cost_of`` but as an exact ``Decimal`` (for summing many records without rounding drift)."""
    parts = _exact_cost(usage, model, prices, batch)
    return None if parts is None else sum(parts.values(), Decimal(0))


def cost_of(
    usage: Any,
    model: str | None,
    prices: PriceTable | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    batch: bool | None = None,
) -> float | None:
    """USD cost of one API call's usage (the SDK's ``Usage``, its dict, or a ``TokenUsage``) on ``model``.

    The long-prompt tier is decided per call, so pass single calls, not sums. ``batch=None`` applies the
    batch discount when the usage record says ``service_tier: "batch"``. ``None`` (with a one-time
    ``PricingWarning``) for a model without a price."""
    exact = exact_cost_of(usage, model, prices, batch=batch)
    return None if exact is None else float(exact)


def cost_breakdown(
    usage: Any,
    model: str | None,
    prices: PriceTable | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    batch: bool | None = None,
) -> CostBreakdown | None:
    """``cost_of`` split by kind of token."""
    parts = _exact_cost(usage, model, prices, batch)
    if parts is None:
        return None
    return CostBreakdown(
        **{k: float(v) for k, v in parts.items()}, total=float(sum(parts.values(), Decimal(0)))
    )
