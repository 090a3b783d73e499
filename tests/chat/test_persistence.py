"""A session kept in SQLite is continued by another process with its full history."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import anthropic

from claude_history import Chat
from claude_history.stores import open_store
from claude_history.testing import Simulator

from .conftest import MODEL, bodies, normalized

CHILD = textwrap.dedent(
    """
    import sys
    import anthropic
    from claude_history import Chat

    base_url, store_url, text = sys.argv[1:4]
    client = anthropic.Anthropic(api_key="test", base_url=base_url, max_retries=0)
    chat = Chat(client, model="claude-sonnet-4-6", store=store_url, session_id="user-42")
    reply = chat.send(text)
    print(reply.content[0].text)
    print(chat.version, len(chat.messages))
    """
)


def _child(sim: Simulator, store_url: str, text: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, sim.base_url, store_url, text],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()


def test_another_process_continues_the_session(
    sim: Simulator, client: anthropic.Anthropic, sqlite_url: str
) -> None:
    chat = Chat(client, model=MODEL, store=sqlite_url, session_id="user-42", system="You are concise.")
    chat.send("My name is Ada.")
    chat.send("I live in Paris.")

    answer, state = _child(sim, sqlite_url, "what was my first message?")
    assert answer == 'Your first message was: "My name is Ada."'
    assert state == "3 6"
    # The child sent the full history and the system prompt kept with the session.
    body = bodies(sim)[-1]
    system = body["system"]
    assert (system if isinstance(system, str) else system[0]["text"]) == "You are concise."
    assert normalized(body["messages"]) == normalized(
        [*chat.messages, {"role": "user", "content": "what was my first message?"}]
    )

    # And this process continues after the child, without a conflict (it reloads the newer version).
    chat.send("how many messages?")
    assert normalized(bodies(sim)[-1]["messages"][:6]) == normalized(chat.messages[:6])
    store = open_store(sqlite_url)
    assert store.load("user-42").version == 4
    assert len(store.load("user-42").messages) == 8
    store.close()
