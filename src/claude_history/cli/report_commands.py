"""`claude-history models` and `claude-history cost`: the price and window table, and what the store's sessions
cost (by session, model and day), undone and interrupted replies included."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timezone
from typing import TYPE_CHECKING

import click
from rich.table import Table
from rich.text import Text

from ..errors import SessionNotFound
from .options import out_console, store_option
from .render import format_cost
from .spent import inherited, off_log, priced
from .store_access import opened

if TYPE_CHECKING:
    from ..stores.base import Store

__all__ = ["cost_command", "models_command"]

# Every session is read to add up its replies; a bound keeps a mistyped command on a huge store short.
MAX_SESSIONS = 10_000


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
def models_command(as_json: bool) -> None:
    """Known models with their context window and prices (USD per million tokens), and the short names
    (sonnet, opus, haiku, ...) that -m accepts: each names the newest model of its family that is not deprecated.

    Prices come from the bundled table, overridden by $CLAUDE_HISTORY_PRICES when set.

    \\b
    Example:
      claude-history models
    """
    from ..models import DEPRECATED, MODELS, family_aliases
    from ..pricing import load_prices

    prices = load_prices()
    aliases = {model: alias for alias, model in family_aliases().items()}
    rows = []
    for name, info in MODELS.items():
        price = prices.price_for(name)
        rows.append(
            {
                "model": name,
                "alias": aliases.get(name),
                "deprecated": name in DEPRECATED,
                "context_window": info.context_window,
                "max_output_tokens": info.max_output_tokens,
                "input": float(price.input) if price else None,
                "output": float(price.output) if price else None,
                "cache_write_5m": float(price.cache_write_5m) if price else None,
                "cache_read": float(price.cache_read) if price else None,
            }
        )
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("model", "alias", "window", "max output", "input", "output", "cache write", "cache read"):
        table.add_column(column, justify="left" if column in ("model", "alias") else "right")
    for row in rows:
        cells = [row[k] for k in ("input", "output", "cache_write_5m", "cache_read")]
        label = Text(str(row["model"]))
        if row["deprecated"]:
            label.append(" (deprecated)", style="dim")
        table.add_row(
            label,
            Text(str(row["alias"] or "")),
            f"{row['context_window']:,}",
            f"{row['max_output_tokens']:,}",
            *("" if c is None else f"${c:g}" for c in cells),
        )
    out_console().print(table)


@click.command("cost")
@click.option(
    "--by", type=click.Choice(["session", "model", "day"]), default="session", show_default=True, help="Group by."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
@store_option
def cost_command(by: str, as_json: bool, store_url: str | None) -> None:
    """What the replies of the store's sessions cost, grouped by session, model or day (UTC), undone and
    interrupted replies included.

    \\b
    Examples:
      claude-history cost
      claude-history cost --by model --json
    """
    with opened(store_url) as store:
        totals, unpriced = _totals(store, by)
    ordered = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
    if as_json:
        for key, (cost, replies) in ordered:
            click.echo(json.dumps({by: key, "cost": round(cost, 6), "replies": replies}))
        return
    console = out_console()
    if not ordered:
        console.print("No replies recorded.", style="dim")
        return
    table = Table(show_edge=False, pad_edge=False)
    table.add_column(by)
    table.add_column("replies", justify="right")
    table.add_column("cost", justify="right")
    for key, (cost, replies) in ordered:
        table.add_row(Text(key), str(replies), format_cost(cost))
    total = sum(c for c, _ in totals.values())
    table.add_row(Text("total", style="bold"), str(sum(r for _, r in totals.values())), format_cost(total))
    console.print(table)
    if unpriced:
        console.print(f"{unpriced} replies are from models without a price and are not counted.", style="yellow")


def _totals(store: Store, by: str) -> tuple[dict[str, tuple[float, int]], int]:
    totals: dict[str, tuple[float, int]] = defaultdict(lambda: (0.0, 0))
    unpriced = 0
    for info in store.list_sessions(limit=MAX_SESSIONS):
        # The replies' usage only, never the conversations. An encrypted store keeps models and usage in
        # clear, so its sessions are counted even without the key.
        skip = inherited(info.metadata)  # a fork's copied replies are counted with its parent
        try:
            replies = store.usage_log(info.id)
        except SessionNotFound:  # deleted since it was listed
            continue
        data_messages = [
            (r.model, r.usage, r.created_at.astimezone(timezone.utc).strftime("%Y-%m-%d"))
            for r in replies
            if r.usage and r.seq >= skip
        ]
        records = [
            (r.get("model"), r["usage"], str(r.get("at", ""))[:10] or "unknown") for r in off_log(info.metadata)
        ]
        for model, usage, day in [*data_messages, *records]:
            cost = priced(model if isinstance(model, str) else None, usage)
            if cost is None:
                unpriced += 1
                continue
            key = {"session": info.id, "model": str(model or "unknown"), "day": day}[by]
            old_cost, old_replies = totals[key]
            totals[key] = (old_cost + cost, old_replies + 1)
    return totals, unpriced
