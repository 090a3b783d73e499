"""`claude-history serve`: the HTTP service (stateful proxy and sessions API) on uvicorn. FastAPI and uvicorn
are imported only when the command runs (the `server` extra)."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

import click
from rich.panel import Panel
from rich.text import Text

from ..errors import ConfigurationError
from .chat_command import DEFAULT_MODEL
from .errors import CliSetupError
from .options import err_console, store_option

__all__ = ["serve_command"]

SIMULATOR_BANNER = (
    "SIMULATED REPLIES: the service forwards to claude-history's built-in Messages API simulator, not to "
    "Claude (ANTHROPIC_API_KEY is not set, or --simulator was given). Set ANTHROPIC_API_KEY, or pass "
    "--upstream URL, to reach a real API."
)


@click.command("serve")
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes.")
@click.option("--upstream", metavar="URL", help="The Messages API to call. Default: the SDK's (the real API).")
@click.option("--simulator", is_flag=True, help="Forward to the built-in simulator (default without a key).")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Model of sessions created here.")
@click.option("--system", metavar="TEXT", help="System prompt of new sessions that send none.")
@click.option("--context", "context_policy", default="keep-all", show_default=True,
              help="Context policy: keep-all, last-turns:N or cache-aware:MAX_INPUT_TOKENS.")  # fmt: skip
@click.option("--max-tokens", default=1024, show_default=True, type=click.IntRange(min=1),
              help="max_tokens of turns sent through the sessions API.")  # fmt: skip
@click.option("--no-auth", is_flag=True, help="No keys: one anonymous tenant (local use only).")
@click.option("--forward-client-key", is_flag=True,
              help="Call the upstream with the client's x-api-key; the tenant key then comes as a Bearer token.")
@click.option("--rate-limit", type=click.FloatRange(min=0, min_open=True), metavar="PER_SECOND",
              help="Requests per second per tenant (429 with retry-after beyond it).")  # fmt: skip
@click.option("--rate-burst", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--max-body-bytes", default=32 * 1024 * 1024, show_default=True, type=click.IntRange(min=1024))
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN", help="Allowed browser origin.")
@click.option("--warm-sessions", default=512, show_default=True, type=click.IntRange(min=0),
              help="Sessions per process whose last turn's state is kept for the next request (0: none).")
def serve_command(store_url: str | None, host: str, port: int, workers: int, upstream: str | None,
                  simulator: bool, model: str, system: str | None, context_policy: str, max_tokens: int,
                  no_auth: bool, forward_client_key: bool, rate_limit: float | None, rate_burst: int,
                  max_body_bytes: int, cors_origins: tuple[str, ...], warm_sessions: int) -> None:  # fmt: skip
    """Run the HTTP service: an Anthropic-compatible stateful proxy (POST /v1/messages with x-session-id)
    and the sessions API (/v1/sessions), on the store given by --store. See docs/server.md.

    \b
    Examples:
      claude-history serve --simulator --port 8080
      claude-history serve --store postgresql://app@db/chats --workers 4
    """
    try:
        import uvicorn

        from ..server.config import CONFIG_ENV, parse_policy
    except ImportError as exc:
        raise CliSetupError(
            "the service needs the server extra: pip install 'claude-history[server]'"
        ) from exc
    if simulator and upstream:
        raise click.UsageError("use either --simulator or --upstream URL, not both")
    try:
        parse_policy(context_policy)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--context") from exc
    simulated = simulator or (upstream is None and not os.environ.get("ANTHROPIC_API_KEY"))
    options: dict[str, Any] = {
        "store_url": store_url, "upstream_url": upstream, "model": model, "system": system,
        "context": context_policy, "max_tokens": max_tokens, "auth": not no_auth,
        "forward_client_key": forward_client_key, "rate_limit": rate_limit, "rate_burst": rate_burst,
        "max_body_bytes": max_body_bytes, "cors_origins": list(cors_origins), "warm_sessions": warm_sessions,
    }  # fmt: skip
    with contextlib.ExitStack() as stack:
        if simulated:
            from ..testing import Simulator

            sim = stack.enter_context(Simulator())
            options.update(upstream_url=sim.base_url, upstream_key="simulator")
            err_console().print(Panel(Text(SIMULATOR_BANNER), border_style="yellow", title="simulator"),
                                soft_wrap=False)  # fmt: skip
        os.environ[CONFIG_ENV] = json.dumps(options)
        uvicorn.run(
            "claude_history.server.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,  # the service writes one structured line per request itself
            timeout_graceful_shutdown=30,
        )
