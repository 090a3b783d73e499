"""Saving history: the guides serialise the list to JSON by session id; here every turn is appended to a
SQLite database (one row per message, atomic, safe across processes). Run it twice: the second run continues
the session.

Run: ANTHROPIC_API_KEY=... python examples/saving_history.py "My name is Alice."
     ANTHROPIC_API_KEY=... python examples/saving_history.py "What was my first message?"
The database is ./chats.db (or $CHATS_DB); the session id is "alice" (or $CHAT_SESSION).
"""

import os
import sys

import anthropic

from claude_history import Chat, open_store

store = open_store("sqlite:///" + os.environ.get("CHATS_DB", "chats.db"))
chat = Chat(
    anthropic.Anthropic(),
    model="claude-sonnet-4-6",
    store=store,
    session_id=os.environ.get("CHAT_SESSION", "alice"),
    max_tokens=1024,
)
print(f"(session {chat.session_id}: {len(chat.messages)} messages so far)")

question = " ".join(sys.argv[1:]) or "What was my first message?"
print(f"> {question}")
print(chat.send(question).content[0].text)
print(f"(saved: {len(chat.messages)} messages; cost so far ${chat.cost:.6f})")
store.close()
