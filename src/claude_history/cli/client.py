"""The Anthropic client of the commands that call the API: the real one with the user's credentials, or the
built-in simulator (``--simulator``), announced so simulated replies are never mistaken for Claude's."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from rich.panel import Panel
from rich.text import Text

from .errors import CliSetupError
from .options import err_console

if TYPE_CHECKING:
    import anthropic

__all__ = ["MISSING_KEY_MESSAGE", "OFFLINE_HINT", "open_client"]

OFFLINE_HINT = (
    "Or try it offline: claude-history chat --simulator   (replies come from the built-in simulator)"
)

MISSING_KEY_MESSAGE = (
    "ANTHROPIC_API_KEY is not set, so there is no way to reach Claude.\n"
    "Set it:            export ANTHROPIC_API_KEY=sk-ant-...\n" + OFFLINE_HINT
)

SIMULATOR_BANNER = (
    "SIMULATED REPLIES: you are talking to claude-history's built-in Messages API simulator, not to Claude.\n"
    "Its answers are canned and deterministic (it can tell you what history it received). "
    "Set ANTHROPIC_API_KEY and drop --simulator to talk to Claude."
)


def open_client(stack: contextlib.ExitStack, simulator: bool) -> anthropic.Anthropic:
    """The client, closed (with the simulator) when ``stack`` closes. The SDK is imported here, by the
    commands that need it only."""
    import anthropic

    if simulator:
        from ..testing import Simulator

        sim = stack.enter_context(Simulator())
        client = anthropic.Anthropic(api_key="simulator", base_url=sim.base_url)
        banner = Panel(Text(SIMULATOR_BANNER), border_style="yellow", title="simulator")
        err_console().print(banner, soft_wrap=False)  # wrap inside the box, never crop it
    else:
        try:
            client = anthropic.Anthropic()
        except anthropic.CredentialsError as exc:  # e.g. a profile that is selected but unreadable
            raise CliSetupError(f"cannot load Anthropic credentials: {exc}\n{OFFLINE_HINT}") from exc
        if not _has_credentials(client):
            raise CliSetupError(MISSING_KEY_MESSAGE)
    stack.callback(client.close)
    return client


def _has_credentials(client: anthropic.Anthropic) -> bool:  # the SDK is loaded by then
    """True when the SDK found some credential (key, token, profile or federation) to send."""
    return bool(client.api_key or client.auth_token or getattr(client, "credentials", None))
